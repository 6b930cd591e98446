"""The uniform width-multiplier baseline: a plain network with every layer's channels scaled."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from components.model.space import SearchSpace, StageSpec, count_macs
from components.search.mcd import SearchError
from components.search.measure import RunLatency
from components.search.uniform import (
    make_divisible,
    multiplier_spaces,
    scaled_space,
    stage_channels,
    uniform_multiplier,
)

# params.yaml's space: 16 / 32 / 48 channels, hidden up to 2x in steps of 16
STAGES = (StageSpec(16, 4, 1), StageSpec(32, 4, 2), StageSpec(48, 4, 2))
DEFAULT = SearchSpace(width_step=16, block="inverted", expand=2, stages=STAGES)


def test_channels_round_as_mobilenet_rounds_them() -> None:
    assert make_divisible(12, 8) == 16  # to the nearest multiple
    assert make_divisible(42, 8) == 40  # 5% below: kept
    assert make_divisible(18, 8) == 24  # 16 would be 11% below
    assert make_divisible(3, 8) == 8  # never below the divisor


def test_every_layer_is_scaled_stem_to_head() -> None:
    half = scaled_space(DEFAULT, 0.5)
    assert stage_channels(half) == [8, 16, 24]
    assert half.layer_channels == [16] * 4 + [32] * 4 + [48] * 4  # hidden = 2 x channels
    assert (half.block, half.expand, half.width_step) == ("inverted", 2, 16)
    # every conv shrinks: a fraction of the MACs, not only the searchable layers'
    assert count_macs(half, half.largest()) < 0.35 * count_macs(DEFAULT, DEFAULT.largest())


def test_the_multipliers_are_distinct_networks_widest_first() -> None:
    options = multiplier_spaces(DEFAULT)
    channels = [stage_channels(s) for _, s in options]
    assert channels[0] == [16, 32, 40] and options[0][0] == 0.875  # 15/16 rounds back to full
    assert len({tuple(c) for c in channels}) == len(channels)
    assert all(sum(a) > sum(b) for a, b in itertools.pairwise(channels))
    assert [8, 16, 24] in channels


def fake_runs(fits: Sequence[bool]) -> list[RunLatency]:
    """Runs whose raw figure is 0.5 (fits a budget of 0.6 of full) or 0.7 of the full network."""
    return [RunLatency(0.5 if f else 0.7, 0.5 if f else 0.7, 1.0, 0.1) for f in fits]


def test_the_widest_that_fits_by_measurement_wins() -> None:
    options = multiplier_spaces(DEFAULT)
    asked: list[list[SearchSpace]] = []

    def measure(spaces: Sequence[SearchSpace]) -> list[RunLatency]:
        asked.append(list(spaces))
        if len(spaces) == 1:
            return fake_runs([True])
        # not monotone: the third fits, the fourth does not, the fifth does
        return fake_runs([False, False, True, False] + [True] * (len(spaces) - 4))

    outcome, run = uniform_multiplier(DEFAULT, measure, 0.6, 1.0)
    # the narrowest alone first, then every multiplier in one run
    assert [len(a) for a in asked] == [1, len(options)] and asked[0] == [options[-1][1]]
    assert outcome.space == options[2][1] and outcome.widths == options[2][1].largest()
    assert outcome.iterations[0]["multiplier"] == options[2][0]
    assert [r["fits"] for r in outcome.iterations[0]["measured"]][:4] == [False, False, True,
                                                                          False]  # fmt: skip
    assert run.raw_ms == 0.5 and outcome.evaluated == []
    assert outcome.to_dict()["stage_channels"] == stage_channels(options[2][1])


def test_a_multiplier_fits_only_with_its_interval() -> None:
    """The second multiplier's median fits a budget of 0.6 of full, but its upper bound (0.62
    over the full network's lower 0.99) does not: the third, which fits with its interval, wins."""
    options = multiplier_spaces(DEFAULT)

    def measure(spaces: Sequence[SearchSpace]) -> list[RunLatency]:
        if len(spaces) == 1:
            return fake_runs([True])
        return [RunLatency(0.7, 0.7, 1.0, 0.1), RunLatency(0.59, 0.59, 1.0, 0.1, 0.62, 0.99),
                *fake_runs([True] * (len(spaces) - 2))]  # fmt: skip

    outcome, run = uniform_multiplier(DEFAULT, measure, 0.6, 1.0)
    assert run.fits(0.6, 1.0) and outcome.space == options[2][1]
    measured = outcome.iterations[0]["measured"]
    assert [r["fits"] for r in measured[:3]] == [False, False, True]
    assert RunLatency(0.59, 0.59, 1.0, 0.1, 0.62, 0.99).fits(0.6, 1.0)  # by its median it fits


def test_no_multiplier_that_fits_is_an_error_naming_the_narrowest() -> None:
    asked: list[int] = []

    def measure(spaces: Sequence[SearchSpace]) -> list[RunLatency]:
        asked.append(len(spaces))
        return fake_runs([False] * len(spaces))

    with pytest.raises(SearchError, match=r"narrowest \(0.25"):
        uniform_multiplier(DEFAULT, measure, 0.6, 1.0)
    assert asked == [1]  # the wider ones are never exported


def test_where_the_joint_run_has_none_fitting_there_is_no_baseline() -> None:
    """The narrowest fits alone but not in the run of all: at the budget's edge."""

    def measure(spaces: Sequence[SearchSpace]) -> list[RunLatency]:
        return fake_runs([len(spaces) == 1] * len(spaces))

    with pytest.raises(SearchError, match="budget's edge"):
        uniform_multiplier(DEFAULT, measure, 0.6, 1.0)
