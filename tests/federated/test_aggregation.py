import numpy as np
import pytest

from components.federated.aggregation import (
    ServerOptimizer,
    aggregate_partial_updates,
    model_rms,
    validate_update,
)


def test_partial_aggregation_over_three_hand_made_clients():
    a = {"w": np.array([1.0, 2.0], np.float32), "b": np.array([10.0], np.float32)}
    b = {"w": np.array([3.0, 6.0], np.float32)}
    c = {"b": np.array([40.0], np.float32), "h": np.array([[1.0, -1.0]], np.float32)}
    out = aggregate_partial_updates([(1.0, a), (3.0, b), (2.0, c)])
    assert set(out) == {"w", "b", "h"}  # a variable nobody trained is absent (left unchanged)
    assert out["w"].tolist() == [2.5, 5.0]  # (1*[1,2] + 3*[3,6]) / 4
    assert out["b"].tolist() == [30.0]  # (1*10 + 2*40) / 3
    assert out["h"].tolist() == [[1.0, -1.0]]  # only client c trained it
    assert out["w"].dtype == np.float32
    with pytest.raises(ValueError, match="example weight must be positive"):
        aggregate_partial_updates([(0.0, a)])


def test_server_sgd_is_fedavg_and_momentum_accumulates():
    current = {"w": np.array([1.0, 1.0], np.float32), "u": np.array([5.0], np.float32)}
    delta = {"w": np.array([0.5, -1.0], np.float32)}
    assert ServerOptimizer("sgd", lr=1.0).step(current, delta)["w"].tolist() == [1.5, 0.0]
    opt = ServerOptimizer("sgd", lr=0.5, momentum=0.9)
    first = opt.step(current, delta)
    assert set(first) == {"w"}  # untrained variables are not touched
    assert first["w"].tolist() == [1.25, 0.5]
    second = opt.step(first, delta)  # m = 0.9 * d + d = 1.9 d
    assert second["w"].tolist() == pytest.approx([1.25 + 0.475, 0.5 - 0.95])


def test_server_adam_step_exact():
    opt = ServerOptimizer("adam", lr=0.1, betas=(0.9, 0.99), tau=1e-3)
    out = opt.step({"w": np.array([0.0], np.float32)}, {"w": np.array([2.0], np.float32)})
    m, v = 0.1 * 2.0, 0.01 * 4.0
    assert out["w"][0] == pytest.approx(0.1 * m / (np.sqrt(v) + 1e-3), rel=1e-6)
    with pytest.raises(ValueError, match="unknown server optimizer"):
        ServerOptimizer("lamb")


REF = {"w": np.ones((2, 2), np.float32), "b": np.full(3, 2.0, np.float32)}


@pytest.mark.parametrize(
    ("values", "assigned", "reason"),
    [
        ({}, ["w"], "empty update"),
        ({"w": REF["w"], "b": REF["b"]}, ["w"], "variables it was not asked to train: ['b']"),
        ({"w": REF["w"]}, ["w", "b"], "missing trained variables: ['b']"),
        ({"w": np.ones(4, np.float32)}, ["w"], "wrong shape for w: (4,), expected (2, 2)"),
        ({"w": np.array([[1, np.nan], [1, 1]], np.float32)}, ["w"], "non-finite values in w"),
        ({"w": np.array([[1, np.inf], [1, 1]], np.float32)}, ["w"], "non-finite values in w"),
        ({"w": 1e4 * REF["w"]}, ["w"], "update RMS 1e+04 above the limit 20"),
    ],
)
def test_rejected_updates_name_the_reason(values, assigned, reason):
    assert validate_update(values, assigned, REF, max_relative_norm=10.0, scale=2.0) == reason


def test_model_rms_and_norm_edge():
    ref = {"v": np.array([3.0, 4.0], np.float32), "z": np.zeros(2, np.float32)}
    assert model_rms(ref, ["v"]) == pytest.approx(np.sqrt(12.5))
    assert model_rms(ref, ["v", "z"]) == pytest.approx(2.5)
    # a variable at zero may still move: the limit is the whole model's scale (2.5 * 2 = 5)
    assert validate_update({"z": np.array([5.0, 5.0], np.float32)}, ["z"], ref, 2.0, 2.5) is None
    assert validate_update({"z": np.array([5.0, 5.01], np.float32)}, ["z"], ref, 2.0, 2.5)
