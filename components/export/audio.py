"""Device-side audio: decode a WAV, downmix, resample and fit it to the clip (numpy, stdlib only).

Accepts what recorders and tools commonly write: RIFF/WAVE with integer PCM (8, 16, 24, 32 bit)
or IEEE float (32, 64 bit), plain or WAVE_FORMAT_EXTENSIBLE, any number of channels. Anything
else is an ``AudioRejected`` with a one-line reason.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PCM, IEEE_FLOAT, EXTENSIBLE = 1, 3, 0xFFFE


class AudioRejected(Exception):
    """This file cannot be used; ``str(err)`` says why."""


@dataclass
class Audio:
    samples: np.ndarray  # (frames, channels) float32 in [-1, 1]
    rate: int
    notes: list[str] = field(default_factory=list)  # what was done to fit it to the model


def read_wav(path: Path) -> Audio:
    """Decode a WAV file by walking its RIFF chunks."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise AudioRejected(f"unreadable: {err.strerror}") from None
    if not data:
        raise AudioRejected("empty file (0 bytes)")
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioRejected("not a WAV file (no RIFF/WAVE header)")
    fmt: tuple[int, int, int, int] | None = None
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            fmt = _parse_fmt(body)
        elif cid == b"data":
            if fmt is None:
                raise AudioRejected("corrupt WAV: data chunk before its fmt chunk")
            if len(body) < size:
                raise AudioRejected(
                    f"truncated: header promises {size} bytes of audio, file holds {len(body)}"
                )
            return Audio(_decode(body, *fmt), fmt[1])
        pos += 8 + size + (size % 2)
    raise AudioRejected("corrupt WAV: no audio data chunk" if fmt else "corrupt WAV: no fmt chunk")


def _parse_fmt(body: bytes) -> tuple[int, int, int, int]:
    """(encoding, sample rate, channels, bits per sample) of a fmt chunk."""
    if len(body) < 16:
        raise AudioRejected("corrupt WAV: fmt chunk too short")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == EXTENSIBLE:
        if len(body) < 26:
            raise AudioRejected("corrupt WAV: extensible fmt chunk too short")
        tag = struct.unpack("<H", body[24:26])[0]  # first two bytes of the sub-format GUID
    if channels == 0 or rate == 0:
        raise AudioRejected(f"corrupt WAV: {channels} channels at {rate} Hz")
    if (tag, bits) not in {(PCM, 8), (PCM, 16), (PCM, 24), (PCM, 32), (IEEE_FLOAT, 32),
                           (IEEE_FLOAT, 64)}:  # fmt: skip
        kind = {PCM: "integer PCM", IEEE_FLOAT: "float"}.get(tag, f"encoding 0x{tag:04x}")
        raise AudioRejected(f"unsupported WAV: {bits}-bit {kind}")
    return tag, rate, channels, bits


def _decode(raw: bytes, tag: int, rate: int, channels: int, bits: int) -> np.ndarray:
    width = bits // 8
    frames = len(raw) // (width * channels)
    if frames == 0:
        raise AudioRejected("no audio frames")
    raw = raw[: frames * width * channels]
    if tag == IEEE_FLOAT:
        x = np.frombuffer(raw, dtype="<f4" if bits == 32 else "<f8").astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise AudioRejected("float samples that are NaN or infinite")
        x = np.clip(x, -1.0, 1.0)
    elif bits == 8:  # unsigned, 128 = silence
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = (np.where(v >= 1 << 23, v - (1 << 24), v) / float(1 << 23)).astype(np.float32)
    else:
        dtype, scale = ("<i2", 32768.0) if bits == 16 else ("<i4", 2147483648.0)
        x = (np.frombuffer(raw, dtype=dtype).astype(np.float64) / scale).astype(np.float32)
    return x.reshape(frames, channels)


def to_mono(audio: Audio) -> Audio:
    """Average the channels (a plain downmix; keeps the level of identical channels)."""
    if audio.samples.shape[1] == 1:
        return Audio(audio.samples[:, 0], audio.rate, audio.notes)
    notes = [*audio.notes, f"downmixed {audio.samples.shape[1]} channels to mono"]
    return Audio(audio.samples.mean(axis=1, dtype=np.float64).astype(np.float32), audio.rate, notes)


def resample(x: np.ndarray, src: int, dst: int, zeros: int = 24, beta: float = 8.6) -> np.ndarray:
    """Band-limited resampling with a Kaiser-windowed sinc kernel (``zeros`` zero crossings each
    side), low-passed at 0.95 of the lower of the two Nyquist frequencies."""
    if src == dst:
        return x
    g = math.gcd(src, dst)
    up, down = dst // g, src // g
    cutoff = 0.95 * min(1.0, up / down)  # as a fraction of the input Nyquist frequency
    half = math.ceil(zeros / cutoff)  # kernel half-width, in input samples
    taps = np.arange(-half + 1, half + 1)
    padded = np.concatenate([np.zeros(half), x.astype(np.float64), np.zeros(half + 1)])

    def kernel(phase: np.ndarray) -> np.ndarray:
        t = taps[None, :] - (phase / up)[:, None]  # each tap's distance from the output instant
        return cutoff * np.sinc(cutoff * t) * _kaiser(t / half, beta)

    table = kernel(np.arange(up)) if up <= 4096 else None  # one row per polyphase branch
    n_out = math.ceil(len(x) * up / down)
    out = np.empty(n_out)
    for start in range(0, n_out, 2048):
        m = np.arange(start, min(start + 2048, n_out))
        base, phase = m * down // up, m * down % up  # input sample at/before each output instant
        weights = table[phase] if table is not None else kernel(phase)
        out[start : start + len(m)] = np.sum(padded[base[:, None] + taps + half] * weights, axis=1)
    return out.astype(np.float32)


def _kaiser(u: np.ndarray, beta: float) -> np.ndarray:
    """Kaiser window at positions ``u`` in [-1, 1] (zero outside)."""
    inside = np.abs(u) <= 1.0
    w = np.i0(beta * np.sqrt(np.clip(1.0 - u**2, 0.0, 1.0))) / np.i0(beta)
    return np.where(inside, w, 0.0)


def fit_length(x: np.ndarray, samples: int, hop: int = 160) -> tuple[np.ndarray, str | None]:
    """Pad a short clip with silence around its middle, or keep the loudest window of a long one
    (the keyword is where the energy is); returns the clip and a note of what was done."""
    if len(x) == samples:
        return x, None
    if len(x) < samples:
        left = (samples - len(x)) // 2
        out = np.zeros(samples, dtype=np.float32)
        out[left : left + len(x)] = x
        return out, f"padded {len(x)} samples to {samples}"
    energy = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    starts = np.arange(0, len(x) - samples + 1, hop)
    window = energy[starts + samples] - energy[starts]
    start = int(starts[int(np.argmax(window))])
    return x[start : start + samples], f"kept the loudest {samples} of {len(x)} samples"
