"""Small Speech Commands folders written by the tests: tones per word, plus bad files on request."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from components.data.labels import KEYWORDS
from components.data.wav import write_wav

RATE = 16000
# Each bad file and the reason the loader must give for it.
BAD_FILES = {
    "yes/0badf11e_nohash_0.wav": "empty file (0 bytes)",
    "no/0badf11e_nohash_1.wav": "not a readable PCM WAV file",
    "up/0badf11e_nohash_2.wav": "sample rate 8000 Hz, expected 16000 Hz",
    "down/0badf11e_nohash_3.wav": "2 channels, expected mono",
    "left/0badf11e_nohash_4.wav": "too short: 0.100 s",
    "right/0badf11e_nohash_5.wav": "truncated: header promises 16000 samples",
    "on/0badf11e_nohash_6.wav": "8-bit samples, expected 16-bit PCM",
    "go/notes.txt": "not a .wav file",
    "go/take1.wav": "name is not <speaker>_nohash_<n>.wav",
}


def tone(word_index: int, speaker_index: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    freq = 300 + 120 * word_index + 7 * speaker_index
    rng = np.random.default_rng(word_index * 1000 + speaker_index)
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))).astype(
        np.float32
    )


def _raw_wav(path: Path, frames: bytes, rate: int, channels: int, width: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(frames)


def write_bad_files(root: Path) -> None:
    (root / "yes").mkdir(parents=True, exist_ok=True)
    (root / "yes/0badf11e_nohash_0.wav").write_bytes(b"")
    (root / "no").mkdir(parents=True, exist_ok=True)
    (root / "no/0badf11e_nohash_1.wav").write_bytes(b"this is not a RIFF file at all" * 10)
    _raw_wav(root / "up/0badf11e_nohash_2.wav", b"\0\0" * 8000, 8000, 1, 2)
    _raw_wav(root / "down/0badf11e_nohash_3.wav", b"\0\0" * 32000, RATE, 2, 2)
    write_wav(root / "left/0badf11e_nohash_4.wav", tone(4, 0, 0.1))
    full = root / "right/0badf11e_nohash_5.wav"
    write_wav(full, tone(5, 0))
    full.write_bytes(full.read_bytes()[: 44 + 2 * 4000])  # header still says 16000 samples
    _raw_wav(root / "on/0badf11e_nohash_6.wav", b"\x80" * 16000, RATE, 1, 1)
    (root / "go").mkdir(parents=True, exist_ok=True)
    (root / "go/notes.txt").write_text("stray file")
    write_wav(root / "go/take1.wav", tone(9, 0))


def write_speech_commands(
    root: Path,
    num_speakers: int = 10,
    words: tuple[str, ...] = (*KEYWORDS, "bed", "cat"),
    lists: bool = False,
    bad_files: bool = False,
) -> list[str]:
    """Write a Speech Commands folder; returns the speaker ids (sorted).

    With ``lists``, the first speaker's clips go to validation_list.txt and the second's to
    testing_list.txt, as the official lists do (by speaker).
    """
    speakers = [f"{0xA0000000 + i:08x}" for i in range(num_speakers)]
    for w, word in enumerate(words):
        for s, speaker in enumerate(speakers):
            write_wav(root / word / f"{speaker}_nohash_0.wav", tone(w, s))
    noise = root / "_background_noise_"
    rng = np.random.default_rng(0)
    write_wav(noise / "white_noise.wav", (0.1 * rng.standard_normal(3 * RATE)).astype(np.float32))
    (noise / "README.md").write_text("noise")
    if lists:
        val = [f"{w}/{speakers[0]}_nohash_0.wav" for w in words]
        test = [f"{w}/{speakers[1]}_nohash_0.wav" for w in words]
        (root / "validation_list.txt").write_text("\n".join(val) + "\n")
        (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    if bad_files:
        write_bad_files(root)
    return speakers
