"""The optimizer and the baselines driven by stub interfaces: exact, seeded answers."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pytest

from components.search.mcd import (
    CachedEvaluator,
    MCDConfig,
    SearchError,
    best_under,
    multi_layer_coordinate_descent,
    random_search,
)


class SumLatency:
    """Latency = total channels (ms), plus a fixed part."""

    def __init__(self, fixed: float = 0.0) -> None:
        self.fixed = fixed

    def predict(self, widths: Sequence[int]) -> float:
        return self.fixed + float(sum(widths))


class Weighted:
    """Accuracy = a weighted sum of the widths; counts its calls."""

    def __init__(self, weights: Sequence[float]) -> None:
        self.weights = weights
        self.calls = 0

    def evaluate(self, widths: Sequence[int]) -> float:
        self.calls += 1
        return float(sum(a * w for a, w in zip(self.weights, widths, strict=True)))


CHOICES = [[0, 8, 16], [0, 8, 16]]


def test_mcd_keeps_the_most_accurate_candidate_meeting_the_target(tmp_path) -> None:
    evaluator = Weighted([2.0, 1.0])
    history = tmp_path / "history.json"
    result = multi_layer_coordinate_descent(
        CHOICES, SumLatency(), evaluator, 16.0, np.random.default_rng(0),
        MCDConfig(candidates=16, layers_per_candidate=2, step_fraction=0.5), history_path=history,
    )  # fmt: skip
    # one iteration: target max(16, 32 - 0.5 * 32) = 16; proposals are [16,0], [8,8] or [0,16]
    # and layer 0 is worth twice as much
    assert result.widths == [16, 0]
    assert result.predicted_ms == 16.0
    assert result.accuracy == 32.0
    assert len(result.iterations) == 1
    assert result.iterations[0]["target_ms"] == 16.0
    # the start and each distinct proposal are scored exactly once
    assert evaluator.calls == result.candidates_evaluated
    assert {tuple(c.widths) for c in result.evaluated} <= {(16, 16), (16, 0), (8, 8), (0, 16)}
    saved = json.loads(history.read_text())
    assert saved["budget_ms"] == 16.0
    assert saved["iterations"][0]["kept"]["widths"] == [16, 0]
    assert not list(tmp_path.glob(".*tmp*")), "history must be written via a temp file + rename"


def test_mcd_schedule_and_determinism() -> None:
    choices = [list(range(0, 65, 8))] * 4
    cfg = MCDConfig(candidates=4, layers_per_candidate=2, step_fraction=0.1, step_decay=0.5)

    def go(seed: int):
        return multi_layer_coordinate_descent(
            choices, SumLatency(), Weighted([1, 2, 3, 4]), 100.0, np.random.default_rng(seed), cfg
        )

    a, b = go(3), go(3)
    assert a.widths == b.widths and a.accuracy == b.accuracy
    assert a.predicted_ms <= 100.0
    targets = [it["target_ms"] for it in a.iterations]
    # R_0 = 256: targets fall by 25.6, then 12.8, 6.4 ... (never below the budget) from the kept
    assert targets[0] == pytest.approx(256 - 25.6)
    for prev, it in zip(a.iterations, a.iterations[1:], strict=False):
        step = 25.6 * 0.5 ** (it["iteration"] - 1)
        assert it["target_ms"] == pytest.approx(max(100.0, prev["kept"]["predicted_ms"] - step))
    for it in a.iterations:  # every proposal met its iteration's target
        assert all(p["predicted_ms"] <= it["target_ms"] for p in it["proposals"])


class TableLatency:
    """Per-layer latency tables, like a device where a narrower layer can be slower."""

    def __init__(self, tables: Sequence[dict[int, float]]) -> None:
        self.tables = tables

    def predict(self, widths: Sequence[int]) -> float:
        return float(sum(t[w] for t, w in zip(self.tables, widths, strict=True)))


class FixedPlus:
    """Another predictor plus a fixed part (the network with every searchable layer removed)."""

    def __init__(self, inner: TableLatency, fixed: float) -> None:
        self.inner, self.fixed = inner, fixed

    def predict(self, widths: Sequence[int]) -> float:
        return self.fixed + self.inner.predict(widths)


def test_shrunk_layers_take_the_largest_width_that_meets_the_target() -> None:
    # layer 0 is faster at 16 than at 8: from [16, 16] (20 ms) to a 12 ms target, [16, 8] fits,
    # while a walk that passed layer 0 down to 0 would stop at [0, 8]
    latency = TableLatency([{0: 0.0, 8: 12.0, 16: 4.0}, {0: 0.0, 8: 8.0, 16: 16.0}])
    for seed in range(8):
        result = multi_layer_coordinate_descent(
            CHOICES, latency, Weighted([1.0, 1.0]), 12.0, np.random.default_rng(seed),
            MCDConfig(candidates=4, layers_per_candidate=2, step_fraction=0.4),
        )  # fmt: skip
        assert result.widths == [16, 8]
        for it in result.iterations:
            for proposal in it["proposals"]:
                w = proposal["widths"]
                for i, choices in enumerate(CHOICES):  # no layer could be any wider
                    wider = [c for c in choices if w[i] < c <= 16]
                    assert all(
                        latency.predict([*w[:i], c, *w[i + 1 :]]) > it["target_ms"] for c in wider
                    )


def test_mcd_refuses_an_unreachable_budget() -> None:
    with pytest.raises(SearchError, match="smallest predicted"):
        multi_layer_coordinate_descent(
            CHOICES, SumLatency(fixed=10.0), Weighted([1, 1]), 5.0, np.random.default_rng(0)
        )


def test_random_search_uses_the_budget_and_the_evaluation_count() -> None:
    choices = [list(range(0, 33, 8))] * 3
    evaluator = Weighted([3, 2, 1])
    result = random_search(choices, SumLatency(), evaluator, 40.0, np.random.default_rng(1), 10)
    assert result.candidates_evaluated == 10 == evaluator.calls
    assert all(c.predicted_ms <= 40.0 for c in result.evaluated)
    assert len({tuple(c.widths) for c in result.evaluated}) == 10
    assert result.accuracy == max(c.accuracy for c in result.evaluated)


def test_random_search_asked_again_picks_from_its_own_candidates() -> None:
    choices = [list(range(0, 33, 8))] * 3
    evaluator = Weighted([3, 2, 1])
    first = random_search(choices, SumLatency(), evaluator, 40.0, np.random.default_rng(1), 10)
    again = best_under(first, 24.0)
    assert evaluator.calls == 10  # nothing new evaluated
    pool = [c for c in first.evaluated if c.predicted_ms <= 24.0]
    assert again.predicted_ms <= 24.0 and again.evaluated == first.evaluated
    assert again.accuracy == max(c.accuracy for c in pool)
    with pytest.raises(SearchError, match="no evaluated candidate"):
        best_under(first, -1.0)


def test_cached_evaluator_scores_once() -> None:
    inner = Weighted([1.0])
    cached = CachedEvaluator(inner)
    assert cached.evaluate([8]) == cached.evaluate((8,)) == 8.0
    assert inner.calls == 1


def test_non_monotone_widths_exact_answer() -> None:
    # Layer 0 runs slower narrow than wide (a narrow block slices and concatenates): 8 channels
    # cost 9 ms, 16 cost 3 ms, 24 cost 4 ms; layer 1 costs 2 ms per 8 channels; base 1 ms.
    # The full [24, 24] takes 1 + 4 + 6 = 11 ms; budget 7 ms, step 0.5: the first target is
    # max(7, 11 - 0.5 * 11) = 7, so one iteration, in which layers 0 and 1 (both picked) may
    # add up to 6 ms:
    #   - layer 0 at 8 (9 ms) never fits, so no proposal keeps it there;
    #   - layer 0 at 24 or 16 leaves at most 2 or 3 ms for layer 1: width 8 (2 ms). Layer 0 then
    #     takes the largest width up to its current one that fits: 24 (4 + 2 = 6 ms), so a walk
    #     that went down to [16, 8] (6 ms) or [0, 8] (3 ms) comes back up to [24, 8] (7 ms);
    #   - layer 0 removed leaves 6 ms for layer 1: 24, so [0, 16] and [0, 24] end at [0, 24];
    #     from [0, 0] the widening order decides between [24, 8] and [0, 24].
    # Every proposal is [24, 8] or [0, 24] (both 7 ms); with accuracy = sum of widths, [24, 8]
    # (32) beats [0, 24] (24). A walk that stopped where it first met the target would keep
    # [16, 8] at 24, or worse.
    choices = [[0, 8, 16, 24], [0, 8, 16, 24]]
    latency = TableLatency([{0: 0.0, 8: 9.0, 16: 3.0, 24: 4.0},
                            {0: 0.0, 8: 2.0, 16: 4.0, 24: 6.0}])  # fmt: skip
    for seed in range(8):
        evaluator = Weighted([1.0, 1.0])
        result = multi_layer_coordinate_descent(
            choices, FixedPlus(latency, 1.0), evaluator, 7.0, np.random.default_rng(seed),
            MCDConfig(candidates=16, layers_per_candidate=2, step_fraction=0.5),
        )  # fmt: skip
        assert (result.widths, result.predicted_ms, result.accuracy) == ([24, 8], 7.0, 32.0)
        (iteration,) = result.iterations
        assert iteration["target_ms"] == 7.0
        assert {tuple(p["widths"]) for p in iteration["proposals"]} <= {(24, 8), (0, 24)}
        assert {tuple(c.widths) for c in result.evaluated} <= {(24, 24), (24, 8), (0, 24)}
        assert evaluator.calls == result.candidates_evaluated


def test_removing_a_block_is_the_only_move_that_meets_the_budget() -> None:
    # Layers 0 and 1 cost 5 ms at any width (5 at 8 channels, 5.5 at 16: the block's fixed
    # cost dominates), layer 2 1 ms per 8 channels; base 1 ms. Full [16, 16, 16]:
    # 1 + 5.5 + 5.5 + 2 = 14 ms; budget 8.5 ms; target max(8.5, 14 - 0.5 * 14) = 8.5.
    # With layers 0 and 1 both kept the network takes at least 1 + 5 + 5 = 11 ms, so no
    # narrowing meets the budget: one of the two blocks must go (width 0). One picked layer per
    # proposal: if it is layer 0 or 1 the walk removes it ([8, 16, 16] 13.5 -> [0, 16, 16]
    # 8.5); if it is layer 2, removing it still leaves 12 ms, so another live layer joins and
    # is removed, and layer 2 widens back to 16 (1 + 5.5 + 2 = 8.5). Every proposal is
    # [0, 16, 16] or [16, 0, 16] at 8.5 ms; accuracy weights (1, 2, 1) make [0, 16, 16] (48)
    # beat [16, 0, 16] (32).
    choices = [[0, 8, 16]] * 3
    latency = FixedPlus(TableLatency([{0: 0.0, 8: 5.0, 16: 5.5}, {0: 0.0, 8: 5.0, 16: 5.5},
                                      {0: 0.0, 8: 1.0, 16: 2.0}]), 1.0)  # fmt: skip
    assert latency.predict([16, 16, 16]) == 14.0 and latency.predict([8, 8, 0]) == 11.0
    for seed in range(8):
        result = multi_layer_coordinate_descent(
            choices, latency, Weighted([1.0, 2.0, 1.0]), 8.5, np.random.default_rng(seed),
            MCDConfig(candidates=8, layers_per_candidate=1, step_fraction=0.5),
        )  # fmt: skip
        assert (result.widths, result.predicted_ms, result.accuracy) == ([0, 16, 16], 8.5, 48.0)
        (iteration,) = result.iterations
        assert {tuple(p["widths"]) for p in iteration["proposals"]} <= {(0, 16, 16), (16, 0, 16)}
