import numpy as np
import pytest

from components.federated.variables import layer_name, select_trainable
from tests.helpers.federated import LAYOUT, NET


def test_layout_lists_float_state_in_order_with_layers():
    names = LAYOUT.names
    assert names[:3] == ["norm.mean", "norm.std", "stem.0.weight"]
    assert not any("num_batches_tracked" in n for n in names)
    assert LAYOUT.variables == [n for n, _ in NET.named_parameters()]
    assert len(LAYOUT.variables) == 3 + 6 * 4 + 2  # stem, 3 blocks + transition, head
    assert LAYOUT.entry("body.1.pw.0.weight").shape == (8, 16, 1, 1)
    assert [LAYOUT.depth(v) for v in ("stem.0.weight", "body.0.dw.0.weight", "head.bias")] == [
        0.0, 0.2, 1.0
    ]  # fmt: skip
    assert layer_name("body.3.pw.1.bias") == "body.3" and layer_name("head.weight") == "head"


def test_all_and_fixed_strategies():
    rng = np.random.default_rng(0)
    assert select_trainable(LAYOUT, "all", rng) == LAYOUT.variables
    assert select_trainable(LAYOUT, "fixed", rng, fixed=("head.*", "body.3.pw.*")) == [
        "body.3.pw.0.weight", "body.3.pw.1.weight", "body.3.pw.1.bias", "head.weight", "head.bias"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="no variable matches"):
        select_trainable(LAYOUT, "fixed", rng, fixed=("nope.*",))
    with pytest.raises(ValueError, match="unknown PVT strategy"):
        select_trainable(LAYOUT, "magic", rng)


def test_random_selection_is_seeded_sized_and_respects_min_depth():
    picks = select_trainable(LAYOUT, "random", np.random.default_rng(7), 0.1, 0.5)
    # candidates: body.2 (depth 0.6), body.3 (0.8), head (1.0): 14 variables, 10% -> 1
    assert picks == select_trainable(LAYOUT, "random", np.random.default_rng(7), 0.1, 0.5)
    assert len(picks) == 1 and LAYOUT.depth(picks[0]) >= 0.5
    many = [
        select_trainable(LAYOUT, "random", np.random.default_rng(s), 0.5, 0.5) for s in range(50)
    ]
    assert all(len(p) == 7 for p in many)
    assert {v for p in many for v in p} == {v for v in LAYOUT.variables if LAYOUT.depth(v) >= 0.5}
    assert (
        select_trainable(LAYOUT, "random", np.random.default_rng(1), 1.0, 0.0) == LAYOUT.variables
    )
    tiny = select_trainable(LAYOUT, "random", np.random.default_rng(1), 0.001, 0.0)
    assert len(tiny) == 1  # at least one variable


def test_random_selection_exact_values():
    # 8 candidates at depth >= 0.8 (body.3's six, head's two); 20% -> 2, drawn by the seeded rng
    assert select_trainable(LAYOUT, "random", np.random.default_rng(3), 0.2, 0.8) == [
        "body.3.dw.0.weight", "body.3.pw.1.bias"
    ]  # fmt: skip


def test_size_budget_bounds_the_parameters_trained():
    candidates = [v for v in LAYOUT.variables if LAYOUT.depth(v) >= 0.5]
    total = sum(LAYOUT.entry(v).numel for v in candidates)
    # body.2 (the 16->24 transition), body.3 (24 channels) and the head
    assert total == (144 + 384 + 2 * 16 + 2 * 24) + (216 + 576 + 4 * 24) + (288 + 12)
    counts = []
    for seed in range(40):
        picks = select_trainable(LAYOUT, "random", np.random.default_rng(seed), 0.1, 0.5,
                                 budget="size")  # fmt: skip
        size = sum(LAYOUT.entry(v).numel for v in picks)
        assert size <= 0.1 * total or len(picks) == 1
        counts.append(len(picks))
    assert max(counts) >= 4  # small tensors fill the budget together
    with pytest.raises(ValueError, match="unknown PVT budget"):
        select_trainable(LAYOUT, "random", np.random.default_rng(0), 0.1, budget="bytes")
