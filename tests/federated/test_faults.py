"""The realistic bad updates, exactly: a flipped sign, a 5-20x boost, noise of the honest norm."""

import numpy as np
import pytest

from components.federated import protocol as P
from components.federated.faults import SCALE_RANGE, forge_update, scale_of

F32 = np.float32
RNG = np.random.default_rng(0)
SENT = {"w": RNG.normal(size=(4, 3)).astype(F32), "b": RNG.normal(size=3).astype(F32),
        "z": np.ones(2, F32)}  # fmt: skip
# z: trained, yet unchanged
TRAINED = {"w": SENT["w"] + RNG.normal(scale=0.01, size=(4, 3)).astype(F32),
           "b": SENT["b"] + F32(0.125), "z": SENT["z"].copy()}  # fmt: skip


def delta(values, name):
    return values[name].astype(np.float64) - SENT[name]


def test_sign_flip_uploads_sent_minus_the_honest_delta():
    forged = forge_update(P.SIGN_FLIP, SENT, TRAINED, seed=3)
    assert forged.keys() == TRAINED.keys()
    for name in TRAINED:
        assert forged[name].dtype == F32
        expected = (SENT[name].astype(np.float64) - delta(TRAINED, name)).astype(F32)
        np.testing.assert_array_equal(forged[name], expected)
    np.testing.assert_array_equal(forged["b"], SENT["b"] - F32(0.125))


def test_scaled_multiplies_every_delta_by_one_k_in_range_drawn_from_the_seed():
    ks = [scale_of(seed) for seed in range(200)]
    assert SCALE_RANGE == (5.0, 20.0) and all(5.0 <= k <= 20.0 for k in ks)
    assert min(ks) < 6.0 and max(ks) > 19.0  # uniform over the range
    k = scale_of(11)
    forged = forge_update(P.SCALED, SENT, TRAINED, seed=11)
    for name in TRAINED:
        expected = (SENT[name].astype(np.float64) + k * delta(TRAINED, name)).astype(F32)
        np.testing.assert_array_equal(forged[name], expected)
    ratio = np.linalg.norm(delta(forged, "w")) / np.linalg.norm(delta(TRAINED, "w"))
    assert ratio == pytest.approx(k, rel=1e-5)


def test_random_has_the_honest_norm_per_variable_and_no_direction():
    forged = forge_update(P.RANDOM, SENT, TRAINED, seed=5)
    for name in ("w", "b"):
        honest, noise = delta(TRAINED, name), delta(forged, name)
        assert np.linalg.norm(noise) == pytest.approx(np.linalg.norm(honest), rel=1e-5)
        cosine = noise.ravel() @ honest.ravel() / (np.linalg.norm(noise) * np.linalg.norm(honest))
        assert abs(cosine) < 0.9
    np.testing.assert_array_equal(forged["z"], SENT["z"])  # no update: no noise
    again = forge_update(P.RANDOM, SENT, TRAINED, seed=5)
    other = forge_update(P.RANDOM, SENT, TRAINED, seed=6)
    np.testing.assert_array_equal(again["w"], forged["w"])  # seeded
    assert not np.array_equal(other["w"], forged["w"])


def test_only_the_forged_faults_are_forged():
    with pytest.raises(ValueError, match="not a forged-update fault: 'nan'"):
        forge_update(P.NAN, SENT, TRAINED, seed=0)
    assert P.FORGED == ("sign_flip", "scaled", "random") and set(P.FORGED) <= set(P.FAULTS)
