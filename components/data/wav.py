"""Strict reading and atomic writing of 16-bit PCM WAV files, with a reason for every rejection."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.io import atomic_file


class WavRejected(Exception):
    """This one file cannot be used; ``str(err)`` is the reason written to the rejection report."""


@dataclass(frozen=True)
class WavInfo:
    sample_rate: int
    channels: int
    sample_width: int
    frames: int


def read_wav(path: Path, expected_rate: int = 16000) -> np.ndarray:
    """Return the samples of a mono 16-bit PCM WAV at ``expected_rate`` as float32 in [-1, 1).

    Raises ``WavRejected`` with a one-line reason for anything else: unreadable or truncated files,
    empty audio, another sample rate or width, more than one channel.
    """
    try:
        size = path.stat().st_size
    except OSError as err:
        raise WavRejected(f"unreadable: {err.strerror}") from None
    if size == 0:
        raise WavRejected("empty file (0 bytes)")
    try:
        with wave.open(str(path), "rb") as f:
            info = WavInfo(f.getframerate(), f.getnchannels(), f.getsampwidth(), f.getnframes())
            raw = f.readframes(info.frames)
    except (wave.Error, EOFError, OSError) as err:
        raise WavRejected(f"not a readable PCM WAV file ({err})") from None
    if info.channels != 1:
        raise WavRejected(f"{info.channels} channels, expected mono")
    if info.sample_width != 2:
        raise WavRejected(f"{8 * info.sample_width}-bit samples, expected 16-bit PCM")
    if info.sample_rate != expected_rate:
        raise WavRejected(f"sample rate {info.sample_rate} Hz, expected {expected_rate} Hz")
    if info.frames == 0:
        raise WavRejected("no audio frames")
    got = len(raw) // 2
    if got < info.frames:
        raise WavRejected(f"truncated: header promises {info.frames} samples, file holds {got}")
    return np.frombuffer(raw[: 2 * info.frames], dtype="<i2").astype(np.float32) / 32768.0


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Clip float audio to [-1, 1) and convert to little-endian int16."""
    return (np.clip(audio, -1.0, 32767 / 32768) * 32768.0).round().astype("<i2")


def write_wav(path: Path, audio: np.ndarray, sample_rate: int = 16000) -> None:
    """Write mono float or int16 audio as 16-bit PCM, atomically (temp file, then rename)."""
    pcm = audio if audio.dtype == np.int16 else to_pcm16(audio)
    with atomic_file(path) as tmp, wave.open(str(tmp), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(pcm.astype("<i2").tobytes())
