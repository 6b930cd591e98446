"""Synthetic background-noise recordings for the `_background_noise_` folder of the corpus."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

SAMPLE_RATE = 16000
NOISE_RMS = 0.1  # -20 dBFS: loud enough to be useful, far from clipping after normalization
BABBLE_FILE = "babble.wav"

# Babble talkers say these; none is a keyword or sounds like one, so babble never leaks a label.
BABBLE_WORDS: tuple[str, ...] = (
    "the", "and", "people", "water", "morning", "because", "table", "window", "garden", "coffee",
    "market", "yellow", "paper", "number", "little", "music", "about", "river", "summer", "would",
    "their", "could", "family", "station", "doctor", "answer", "minute", "pencil", "kitchen",
    "letter", "picture", "evening", "basket", "silver", "country", "painting", "orange", "rabbit",
    "simple", "problem", "blanket", "travel", "believe", "carpet", "holiday", "monkey", "pocket",
)  # fmt: skip

# (voice, variant) pairs speaking the babble: a mix of accents and sexes.
BABBLE_VOICES: tuple[tuple[str, str], ...] = (
    ("en-us", "m3"), ("en-gb", "f2"), ("en-029", "m1"), ("en-us-nyc", "f4"),
    ("en-gb-scotland", "m5"), ("en-gb-x-rp", "f1"), ("en-gb-x-gbcwmd", "m7"), ("en-us", "f5"),
)  # fmt: skip

Synth = Callable[[str, str, str, int, int], np.ndarray]
"""``synth(text, voice, variant, rate, pitch)`` -> float32 16 kHz audio of that utterance."""


def _normalize(x: np.ndarray, rms: float = NOISE_RMS) -> np.ndarray:
    """Scale to the common RMS, then pull the peak under full scale if needed."""
    x = x - x.mean()
    x = x * (rms / max(float(np.sqrt(np.mean(x**2))), 1e-12))
    peak = float(np.abs(x).max())
    if peak > 0.99:
        x = x * (0.99 / peak)
    return x.astype(np.float32)


def _shaped(rng: np.random.Generator, n: int, exponent: float, f_lo: float = 20.0) -> np.ndarray:
    """White noise whose power spectrum falls as 1/f**exponent (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    spec *= np.maximum(freqs, f_lo) ** (-exponent / 2.0)
    spec[0] = 0.0
    return np.fft.irfft(spec, n)


def _band(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    """White noise band-limited to [lo, hi] Hz with a brick-wall FFT mask."""
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    spec[(freqs < lo) | (freqs > hi)] = 0.0
    return np.fft.irfft(spec, n)


def _smooth_envelope(rng: np.random.Generator, n: int, hz: float) -> np.ndarray:
    """A positive random envelope varying at roughly ``hz`` (noise low-passed, then mapped > 0)."""
    env = _band(rng, n, 0.0, hz)
    return env / (np.abs(env).max() + 1e-12)


def hum(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mains hum: 50 Hz with decaying harmonics, slight wobble, and a low white-noise floor."""
    t = np.arange(n) / SAMPLE_RATE
    wobble = 0.2 * _smooth_envelope(rng, n, 0.5)  # the grid frequency drifts a little
    phase = 2 * np.pi * np.cumsum(50.0 + wobble) / SAMPLE_RATE
    x = np.zeros(n)
    for k in range(1, 9):
        x += (0.8**k) * (1.5 if k % 2 else 1.0) * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    x += 0.05 * rng.standard_normal(n) + 0.02 * np.sin(2 * np.pi * 1000.0 * t)
    return x


def running_tap(rng: np.random.Generator, n: int) -> np.ndarray:
    """Running water: 300-5000 Hz band noise under slow surges and fast gurgling modulation."""
    body = _band(rng, n, 300.0, 5000.0)
    hiss = _band(rng, n, 2000.0, 7000.0)
    surge = 0.7 + 0.3 * _smooth_envelope(rng, n, 0.7)
    gurgle = 1.0 + 0.6 * _smooth_envelope(rng, n, 12.0)
    return body * surge * gurgle + 0.3 * hiss * surge


def babble(rng: np.random.Generator, n: int, synth: Synth, talkers: int = 7) -> np.ndarray:
    """Crowd babble: several talkers, each saying random word strings at random offsets."""
    out = np.zeros(n)
    for i in range(talkers):
        voice, variant = BABBLE_VOICES[i % len(BABBLE_VOICES)]
        stream = np.zeros(n)
        pos = int(rng.integers(0, SAMPLE_RATE))
        while pos < n:
            words = rng.choice(len(BABBLE_WORDS), size=int(rng.integers(3, 9)))
            text = " ".join(BABBLE_WORDS[w] for w in words)
            speech = synth(
                text, voice, variant, int(rng.integers(130, 200)), int(rng.integers(25, 75))
            )
            speech = speech[: n - pos]
            rms = float(np.sqrt(np.mean(speech**2))) if speech.size else 0.0
            if rms > 0:
                stream[pos : pos + speech.size] += speech / rms * rng.uniform(0.6, 1.0)
            pos += speech.size + int(rng.uniform(0.05, 0.6) * SAMPLE_RATE)
        out += stream
    return out + 0.01 * rng.standard_normal(n)


def make_noises(rng: np.random.Generator, seconds: float, synth: Synth) -> dict[str, np.ndarray]:
    """All background noises, ``seconds`` long at 16 kHz and RMS-normalized, by file name.

    The babble (``BABBLE_FILE``) is speech-like noise that only client speakers are mixed with.
    """
    n = round(seconds * SAMPLE_RATE)
    raw = {
        "white_noise.wav": rng.standard_normal(n),
        "pink_noise.wav": _shaped(rng, n, 1.0),
        "brown_noise.wav": _shaped(rng, n, 2.0),
        "hum.wav": hum(rng, n),
        "running_tap.wav": running_tap(rng, n),
        BABBLE_FILE: babble(rng, n, synth),
    }
    return {name: _normalize(x) for name, x in raw.items()}
