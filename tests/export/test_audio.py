"""Device-side audio handling: WAV decoding, downmix, resampling, padding and cropping."""

from __future__ import annotations

import re
import struct
import wave

import numpy as np
import pytest

from components.export.audio import AudioRejected, fit_length, read_wav, resample, to_mono


def write(path, frames: bytes, rate: int, channels: int, width: int) -> None:
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(frames)


def float_wav(path, x: np.ndarray, rate: int) -> None:
    """IEEE float 32-bit WAV (format 3), which the standard library cannot write."""
    data = x.astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def tone(rate: int, hz: float = 440.0, seconds: float = 1.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def test_pcm_widths_and_float_decode_to_the_same_signal(tmp_path):
    x = tone(16000)
    pcm16 = np.round(x * 32767).astype("<i2")
    write(tmp_path / "a16.wav", pcm16.tobytes(), 16000, 1, 2)
    pcm24 = np.round(x * (2**23 - 1)).astype(np.int32)
    b24 = np.stack([pcm24 & 0xFF, (pcm24 >> 8) & 0xFF, (pcm24 >> 16) & 0xFF], 1).astype(np.uint8)
    write(tmp_path / "a24.wav", b24.tobytes(), 16000, 1, 3)
    write(tmp_path / "a8.wav", (np.round(x * 127) + 128).astype(np.uint8).tobytes(), 16000, 1, 1)
    float_wav(tmp_path / "af.wav", x, 16000)
    for name, tol in (("a16", 1e-4), ("a24", 1e-6), ("a8", 1e-2), ("af", 0.0)):
        audio = read_wav(tmp_path / f"{name}.wav")
        assert audio.rate == 16000 and audio.samples.shape == (16000, 1)
        assert np.abs(audio.samples[:, 0] - x).max() <= tol + 1e-7, name


def test_stereo_is_averaged(tmp_path):
    left, right = tone(16000, 440), tone(16000, 880)
    frames = np.round(np.stack([left, right], 1) * 32767).astype("<i2")
    write(tmp_path / "s.wav", frames.tobytes(), 16000, 2, 2)
    mono = to_mono(read_wav(tmp_path / "s.wav"))
    assert mono.samples.shape == (16000,)
    assert np.abs(mono.samples - (left + right) / 2).max() < 1e-4
    assert mono.notes == ["downmixed 2 channels to mono"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file (0 bytes)"),
        (b"hello, this is not audio" * 4, "not a WAV file (no RIFF/WAVE header)"),
        (b"RIFF\x04\x00\x00\x00WAVE", "corrupt WAV: no fmt chunk"),
    ],
    ids=["empty", "not-riff", "no-fmt"],
)
def test_unusable_files_get_a_reason(tmp_path, content, reason):
    (tmp_path / "bad.wav").write_bytes(content)
    with pytest.raises(AudioRejected, match=re.escape(reason)):
        read_wav(tmp_path / "bad.wav")


def test_truncated_and_unsupported_files_are_rejected(tmp_path):
    write(tmp_path / "t.wav", b"\x01\x00" * 16000, 16000, 1, 2)
    data = (tmp_path / "t.wav").read_bytes()
    (tmp_path / "t.wav").write_bytes(data[: 44 + 1000])
    with pytest.raises(AudioRejected, match="truncated: header promises 32000 bytes"):
        read_wav(tmp_path / "t.wav")
    fmt = struct.pack("<HHIIHH", 2, 1, 16000, 8000, 1, 4)  # 4-bit ADPCM
    body = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 4) + b"\0" * 4
    (tmp_path / "adpcm.wav").write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    with pytest.raises(AudioRejected, match="unsupported WAV: 4-bit encoding 0x0002"):
        read_wav(tmp_path / "adpcm.wav")


@pytest.mark.parametrize("src", [22050, 44100, 48000])
def test_resampling_keeps_the_band_and_removes_aliases(src):
    x = tone(src, 1000.0) + tone(src, 3000.0) * 0.5
    y = resample(x, src, 16000)
    assert len(y) == 16000
    t = np.arange(16000) / 16000
    expected = 0.5 * np.sin(2 * np.pi * 1000 * t) + 0.25 * np.sin(2 * np.pi * 3000 * t)
    assert np.abs(y - expected)[400:-400].max() < 1e-4  # edges see the zeros outside the file
    alias = resample(tone(src, 10000.0), src, 16000)  # above 8 kHz: must not fold back
    assert np.sqrt(np.mean(alias[400:-400] ** 2)) < 1e-4


def test_short_clips_are_centred_and_long_ones_keep_the_loudest_second():
    short, note = fit_length(np.ones(4000, dtype=np.float32), 16000)
    assert short.shape == (16000,) and short[6000:10000].all() and not short[:6000].any()
    assert note == "padded 4000 samples to 16000"
    long = np.zeros(48000, dtype=np.float32)
    long[30000:34000] = 1.0
    clip, note = fit_length(long, 16000)
    assert clip.sum() == 4000.0 and note == "kept the loudest 16000 of 48000 samples"
    same, note = fit_length(np.zeros(16000, dtype=np.float32), 16000)
    assert note is None and same.shape == (16000,)
