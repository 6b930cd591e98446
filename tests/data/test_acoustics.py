"""Deployment acoustics: exact or analytic checks of rooms, bands, codecs, warps and mixing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.data import acoustics as ac

SR = 16000
T = np.arange(SR) / SR


def _sine(hz: float) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * T)).astype(np.float32)


def _level_db(x: np.ndarray) -> float:
    """Power in dB, skipping the first quarter second (filter start-up)."""
    return 10 * math.log10(float(np.mean(np.asarray(x[4000:], np.float64) ** 2)))


def _peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / SR)[int(np.argmax(spec))])


def _rt60_from_decay(h: np.ndarray) -> float:
    """Schroeder backward integration of the tail, slope fitted between -5 and -25 dB (T20)."""
    tail = np.asarray(h[1:], np.float64)
    edc = np.cumsum(tail[::-1] ** 2)[::-1]
    db = 10 * np.log10(edc / edc[0])
    idx = np.flatnonzero((db <= -5) & (db >= -25))
    return -60.0 / np.polyfit(idx / SR, db[idx], 1)[0]


@pytest.mark.parametrize("rt60", [0.2, 0.5, 1.0])
def test_impulse_response_decays_60_db_in_rt60(rt60):
    for seed in range(3):
        h = ac.room_impulse_response(np.random.default_rng(seed), rt60, drr_db=3.0)
        assert _rt60_from_decay(h) == pytest.approx(rt60, rel=0.06)


def test_impulse_response_direct_path_energy_and_drr():
    h = ac.room_impulse_response(np.random.default_rng(0), 0.4, drr_db=6.0, predelay_s=0.005)
    assert h.dtype == np.float32 and len(h) == 80 + round(0.4 * SR)
    assert float(np.sum(h.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-5)
    assert np.all(h[1:80] == 0)  # silence between the direct path and the first reflection
    drr = 10 * math.log10(float(h[0]) ** 2 / float(np.sum(h[80:].astype(np.float64) ** 2)))
    assert drr == pytest.approx(6.0, abs=1e-3)


def test_reverberate_keeps_length_and_alignment():
    h = ac.room_impulse_response(np.random.default_rng(1), 0.3, drr_db=0.0)
    x = np.zeros(SR, np.float32)
    x[100] = 1.0
    y = ac.reverberate(x, h)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_allclose(y[100 : 100 + len(h)], h, atol=1e-6)
    assert np.abs(y[:100]).max() < 1e-9  # FFT round-off only: nothing before the sound


def test_telephone_band_keeps_voice_band_and_cuts_outside():
    for hz in (100.0, 6000.0):
        tone = _sine(hz)
        assert _level_db(ac.band_limit(tone, *ac.TELEPHONE_BAND)) - _level_db(tone) <= -40
    tone = _sine(1000.0)
    assert _level_db(ac.band_limit(tone, *ac.TELEPHONE_BAND)) - _level_db(tone) == pytest.approx(
        0.0, abs=0.5
    )


def test_low_pass_only_and_open_band():
    assert _level_db(ac.band_limit(_sine(6000.0), None, 4000.0)) - _level_db(_sine(6000.0)) <= -40
    x = _sine(1000.0)
    assert _level_db(ac.band_limit(x, None, 4000.0)) - _level_db(x) == pytest.approx(0, abs=0.1)
    np.testing.assert_array_equal(ac.band_limit(x, None, None), x)
    np.testing.assert_array_equal(ac.band_limit(x, 0.0, SR / 2), x)


def test_narrowband_removes_the_upper_band():
    assert _level_db(ac.narrowband(_sine(6000.0))) - _level_db(_sine(6000.0)) <= -50
    x = _sine(1000.0)
    y = ac.narrowband(x)
    assert y.shape == x.shape
    assert _level_db(y[:-200]) - _level_db(x[:-200]) == pytest.approx(0, abs=0.1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=64), st.sampled_from([6, 8, 10]))
def test_mu_law_round_trip_error_bound(values, bits):
    x = np.array(values, np.float32)
    mu, delta = 255.0, 1.0 / (2**bits - 2)
    bound = (
        delta * math.log1p(mu) / mu * (1 + mu * np.abs(x.astype(np.float64))) * (1 + mu) ** delta
    )
    assert np.all(np.abs(ac.mu_law(x, bits) - x) <= bound + 1e-6)


def test_mu_law_levels_zero_and_saturation():
    x = np.linspace(-1, 1, 100_001, dtype=np.float32)
    assert len(np.unique(ac.mu_law(x))) == 255
    np.testing.assert_array_equal(ac.mu_law(np.array([0.0, 1.5, -2.0], np.float32)), [0, 1, -1])


def test_quantize_error_bound():
    x = np.random.default_rng(0).uniform(-1, 1, 10_000).astype(np.float32)
    assert np.abs(ac.quantize(x, 8) - x).max() <= 0.5 / 127 + 1e-7
    assert len(np.unique(ac.quantize(x, 4))) == 15


def test_unknown_codec_lists_the_codecs():
    with pytest.raises(ValueError, match="unknown codec 'mp3'; known: none, mulaw8, g711, pcm8"):
        ac.encode(_sine(100.0), "mp3")


@pytest.mark.parametrize("factor", [0.85, 0.9, 1.1, 1.15])
def test_warp_moves_the_dominant_frequency_by_the_factor(factor):
    x = _sine(440.0)
    assert _peak_hz(ac.vocal_tract_warp(x, factor, keep_length=True)) == pytest.approx(
        440 * factor, abs=1.5
    )
    assert len(ac.vocal_tract_warp(x, factor)) == pytest.approx(SR / factor, abs=1)
    assert len(ac.vocal_tract_warp(x, factor, keep_length=True)) == SR


def test_resample_by_one_is_identity():
    x = _sine(300.0)
    np.testing.assert_array_equal(ac.resample_by(x, 1.0), x)
    with pytest.raises(ValueError, match="factor must be positive"):
        ac.resample_by(x, 0.0)


@pytest.mark.parametrize("snr", [-5.0, 0.0, 12.5, 30.0])
def test_mix_at_snr_is_exact(snr):
    rng = np.random.default_rng(3)
    speech, noise = _sine(500.0), rng.standard_normal(SR).astype(np.float32)
    mixed = ac.mix_at_snr(speech, noise, snr).astype(np.float64) - speech
    ratio = np.mean(speech.astype(np.float64) ** 2) / np.mean(mixed**2)
    assert 10 * math.log10(ratio) == pytest.approx(snr, abs=1e-3)
    mixed = ac.mix_at_snr(speech, noise, snr, speech_power=0.5).astype(np.float64) - speech
    assert 10 * math.log10(0.5 / np.mean(mixed**2)) == pytest.approx(snr, abs=1e-3)
    with pytest.raises(ValueError, match="differ in shape"):
        ac.mix_at_snr(speech, noise[:100], snr)


def test_gain_and_fit_peak():
    x = _sine(200.0)
    assert float(np.abs(ac.gain(x, 6.0)).max()) == pytest.approx(0.5 * 10 ** (6 / 20), rel=1e-5)
    np.testing.assert_array_equal(ac.fit_peak(x), x)  # never scales up
    assert float(np.abs(ac.fit_peak(ac.gain(x, 12.0))).max()) == pytest.approx(0.99, rel=1e-6)


def test_channels_are_deterministic_given_the_generator():
    x = ac.reverberate(_sine(300.0), ac.room_impulse_response(np.random.default_rng(9), 0.3, 5))

    def draw(seed: int) -> tuple[ac.Channel, np.ndarray]:
        rng = np.random.default_rng(seed)
        channel = ac.draw_channel(rng, room_prob=1.0)
        return channel, ac.apply_channel(x, channel, rng)

    (c1, y1), (c2, y2), (c3, y3) = draw(5), draw(5), draw(6)
    assert c1 == c2 and c1 != c3
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(y1, y3)
    assert y1.dtype == np.float32 and y1.shape == x.shape


def test_channel_draws_and_peak_policy():
    rng = np.random.default_rng(0)
    loud = ac.gain(_sine(700.0), 12.0)
    for _ in range(40):
        channel = ac.draw_channel(rng, telephone_prob=1.0, gain_db=(6.0, 12.0))
        assert (channel.low_hz, channel.high_hz) == ac.TELEPHONE_BAND
        assert float(np.abs(ac.apply_channel(loud, channel, rng)).max()) <= 1.0
    dry = ac.draw_channel(rng, room_prob=0.0, codecs={"g711": 1.0})
    assert dry.rt60_s is None and dry.codec == "g711"
