"""Deployment-like acoustics for synthesized speech: rooms, microphones, codecs, speaker warps.

Pure numpy/scipy, 16 kHz float32 in and out. Whatever is random takes a ``numpy.random.Generator``
(the same generator state gives the same samples), everything else is deterministic.

Peak policy: nothing here clips silently. ``gain`` and ``reverberate`` may leave samples beyond
±1 (they say so); ``fit_peak`` scales a signal down under a peak and never up. The codecs are the
one saturating stage, like the converter they model: ``mu_law`` and ``quantize`` clip at ±1, so
``apply_channel`` fits the peak under 0.99 before its codec and nothing is ever cut off.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy.signal import butter, fftconvolve, resample_poly, sosfilt

SAMPLE_RATE = 16000
TELEPHONE_BAND = (300.0, 3400.0)
_DECAY_60DB = 3.0 * math.log(10.0)  # amplitude exp(-k t / rt60) is 60 dB down at t = rt60


def _f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def gain(x: np.ndarray, db: float) -> np.ndarray:
    """Scale by ``db`` decibels (may exceed ±1: follow with ``fit_peak``)."""
    return _f32(np.asarray(x, dtype=np.float64) * 10 ** (db / 20))


def fit_peak(x: np.ndarray, peak: float = 0.99) -> np.ndarray:
    """Scale down so that max |x| <= ``peak``; a signal already under it is returned unchanged."""
    top = float(np.abs(x).max()) if x.size else 0.0
    return _f32(x * (peak / top) if top > peak else x)


def mix_at_snr(
    speech: np.ndarray, noise: np.ndarray, snr_db: float, speech_power: float | None = None
) -> np.ndarray:
    """``speech`` plus ``noise`` scaled so that 10·log10(P_speech / P_noise) = ``snr_db``.

    Powers are mean squares over the arrays given (same length); pass ``speech_power`` to measure
    the speech where it is active (e.g. the trimmed word before it was padded into a clip).
    """
    if speech.shape != noise.shape:
        raise ValueError(f"speech {speech.shape} and noise {noise.shape} differ in shape")
    s, n = np.asarray(speech, np.float64), np.asarray(noise, np.float64)
    p_speech = float(np.mean(s**2)) if speech_power is None else speech_power
    p_noise = max(float(np.mean(n**2)), 1e-20)
    return _f32(s + n * math.sqrt(p_speech / (p_noise * 10 ** (snr_db / 10))))


# --- rooms -------------------------------------------------------------------------------------


def room_impulse_response(
    rng: np.random.Generator, rt60_s: float, drr_db: float, predelay_s: float = 0.004,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:  # fmt: skip
    """A synthetic room: a direct path at sample 0, then a Gaussian-noise tail from ``predelay_s``
    on whose amplitude falls 60 dB in ``rt60_s`` seconds (Sabine's exponential decay), cut where it
    is 60 dB down. Direct-to-reverberant energy ratio ``drr_db``; unit total energy, so speech keeps
    roughly its level."""
    if rt60_s <= 0:
        raise ValueError(f"rt60_s must be positive, got {rt60_s}")
    start = round(predelay_s * sample_rate)
    t = np.arange(max(round(rt60_s * sample_rate), 1)) / sample_rate
    tail = rng.standard_normal(t.size) * np.exp(-_DECAY_60DB * t / rt60_s)
    tail *= math.sqrt(10 ** (-drr_db / 10) / float(np.sum(tail**2)))
    h = np.zeros(start + t.size)
    h[0] = 1.0
    h[start:] += tail
    return _f32(h / math.sqrt(float(np.sum(h**2))))


def reverberate(x: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """Convolve with an impulse response, keeping the length and alignment of ``x`` (the direct path
    is at sample 0, so the word does not move; the tail past the end is cut). May exceed ±1."""
    return _f32(fftconvolve(np.asarray(x, np.float64), np.asarray(ir, np.float64))[: len(x)])


# --- microphones and codecs ------------------------------------------------------------------


def band_limit(
    x: np.ndarray, low_hz: float | None, high_hz: float | None, order: int = 6,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:  # fmt: skip
    """A microphone's band: causal Butterworth high-pass at ``low_hz`` and/or low-pass at
    ``high_hz`` (``None`` leaves that side open; ``TELEPHONE_BAND`` is 300–3400 Hz)."""
    nyquist = sample_rate / 2
    lo = low_hz if low_hz and low_hz > 0 else None
    hi = high_hz if high_hz and high_hz < nyquist else None
    if lo is None and hi is None:
        return _f32(x)
    if lo is not None and hi is not None:
        sos = butter(order, [lo, hi], btype="bandpass", fs=sample_rate, output="sos")
    elif lo is not None:
        sos = butter(order, lo, btype="highpass", fs=sample_rate, output="sos")
    else:
        sos = butter(order, hi, btype="lowpass", fs=sample_rate, output="sos")
    return _f32(sosfilt(sos, np.asarray(x, np.float64)))


def mu_law(x: np.ndarray, bits: int = 8, mu: float = 255.0) -> np.ndarray:
    """G.711-style companding: compress, quantize to ``2**bits - 1`` levels, expand. Saturates at
    ±1. The error at x is at most δ·ln(1+μ)/μ·(1+μ|x|)·(1+μ)^δ with δ = 1/(2**bits - 2)."""
    k = 2 ** (bits - 1) - 1
    v = np.clip(np.asarray(x, np.float64), -1.0, 1.0)
    y = np.sign(v) * np.log1p(mu * np.abs(v)) / math.log1p(mu)
    q = np.round(y * k) / k
    return _f32(np.sign(q) * np.expm1(np.abs(q) * math.log1p(mu)) / mu)


def quantize(x: np.ndarray, bits: int) -> np.ndarray:
    """Uniform mid-tread quantization to ``bits`` bits (a cheap converter); saturates at ±1."""
    k = 2 ** (bits - 1) - 1
    return _f32(np.round(np.clip(np.asarray(x, np.float64), -1.0, 1.0) * k) / k)


def narrowband(x: np.ndarray) -> np.ndarray:
    """Down to 8 kHz and back (band-limited, scipy's Kaiser polyphase filter): nothing above
    ~3.8 kHz survives, as after a narrowband telephone or Bluetooth SCO link."""
    y = resample_poly(resample_poly(np.asarray(x, np.float64), 1, 2), 2, 1)
    return _f32(y[: len(x)])


CODECS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": _f32,
    "mulaw8": mu_law,  # 8-bit mu-law at 16 kHz
    "g711": lambda x: mu_law(narrowband(x)),  # 8 kHz telephone: band-limited and mu-law
    "pcm8": lambda x: quantize(x, 8),  # a cheap 8-bit converter
}


def encode(x: np.ndarray, codec: str) -> np.ndarray:
    """Pass ``x`` through the named codec of ``CODECS``."""
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; known: {', '.join(CODECS)}")
    return CODECS[codec](x)


# --- speakers --------------------------------------------------------------------------------


def resample_by(x: np.ndarray, factor: float, max_denominator: int = 100) -> np.ndarray:
    """Play ``x`` ``factor`` times faster, band-limited (resample_poly with its Kaiser window):
    every frequency is multiplied by ``factor`` and the duration divided by it. The factor is
    used as the nearest fraction with a denominator up to ``max_denominator``."""
    if factor <= 0:
        raise ValueError(f"factor must be positive, got {factor}")
    frac = Fraction(factor).limit_denominator(max_denominator)
    if frac == 1:
        return _f32(x)
    return _f32(resample_poly(np.asarray(x, np.float64), frac.denominator, frac.numerator))


def vocal_tract_warp(x: np.ndarray, factor: float, keep_length: bool = False) -> np.ndarray:
    """A different speaker from the same voice: scale every frequency by ``factor`` (0.85–1.15
    is a plausible range), formants and pitch together, like a shorter (>1) or longer (<1) vocal
    tract with a matching voice. Not pitch-preserving, and a word lasts 1/``factor`` as long;
    with ``keep_length`` the start stays put and the end is cut or zero-padded to ``len(x)``."""
    y = resample_by(x, factor)
    if not keep_length:
        return y
    out = np.zeros(len(x), dtype=np.float32)
    n = min(len(x), len(y))
    out[:n] = y[:n]
    return out


# --- a whole channel --------------------------------------------------------------------------


@dataclass(frozen=True)
class Channel:
    """What lies between a talker and the recording: a room, a microphone band, a gain, a codec."""

    rt60_s: float | None  # None: no room (close-talking)
    drr_db: float
    low_hz: float | None
    high_hz: float | None
    gain_db: float
    codec: str


def draw_channel(
    rng: np.random.Generator, *, room_prob: float = 0.7, rt60_s: tuple[float, float] = (0.2, 0.9),
    drr_db: tuple[float, float] = (0.0, 12.0), telephone_prob: float = 0.15,
    low_hz: tuple[float, float] = (60.0, 250.0), high_hz: tuple[float, float] = (3500.0, 7500.0),
    gain_db: tuple[float, float] = (-6.0, 6.0),
    codecs: Mapping[str, float] | None = None,
) -> Channel:  # fmt: skip
    """Draw a channel: a room with probability ``room_prob``, a telephone band with probability
    ``telephone_prob`` (else a microphone band drawn from ``low_hz``/``high_hz``), a gain, and a
    codec from ``codecs`` (name -> weight; default mostly clean, some mu-law, G.711, 8-bit)."""
    weights = dict(codecs or {"none": 0.6, "mulaw8": 0.15, "g711": 0.1, "pcm8": 0.15})
    names = sorted(weights)
    p = np.array([weights[n] for n in names], dtype=np.float64)
    room = bool(rng.random() < room_prob)
    rt60 = float(rng.uniform(*rt60_s))
    drr = float(rng.uniform(*drr_db))
    phone = bool(rng.random() < telephone_prob)
    lo, hi = TELEPHONE_BAND if phone else (rng.uniform(*low_hz), rng.uniform(*high_hz))
    return Channel(
        rt60_s=rt60 if room else None,
        drr_db=drr,
        low_hz=float(lo),
        high_hz=float(hi),
        gain_db=float(rng.uniform(*gain_db)),
        codec=names[int(rng.choice(len(names), p=p / p.sum()))],
    )


def apply_channel(x: np.ndarray, channel: Channel, rng: np.random.Generator) -> np.ndarray:
    """Room, then microphone band, then gain, then codec (``rng`` draws the room's tail). The
    peak is fitted under 0.99 before the codec, so the codec never saturates."""
    y = np.asarray(x, np.float32)
    if channel.rt60_s is not None:
        y = reverberate(y, room_impulse_response(rng, channel.rt60_s, channel.drr_db))
    y = band_limit(y, channel.low_hz, channel.high_hz)
    y = fit_peak(gain(y, channel.gain_db))
    return encode(y, channel.codec)
