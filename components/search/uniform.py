"""The uniform width-multiplier baseline, as MobileNet users know it: one network with *every*
layer's channels scaled by one factor (stem, transitions, each block's hidden width, the head's
input), not a sub-network of the super-network.

The multiplier is the widest whose network meets the budget *by measurement* on the device (the
budget rule of ``RunLatency.fits``, every multiplier below 1 timed in one interleaved run with the
super-network's all-removed and full networks as anchors); the chosen network is trained from
scratch with the same recipe as the discovered one. It has no inherited-weight accuracy (its
weights are nobody's): its figures are the trained ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from components.model.space import SearchSpace, StageSpec
from components.search.mcd import SearchError, SearchOutcome
from components.search.measure import RunLatency

# 15/16, ..., 1/4: MobileNet's multipliers (0.75, 0.5, 0.25) and the steps between them
MULTIPLIERS = tuple(k / 16 for k in range(15, 3, -1))


def make_divisible(value: float, divisor: int) -> int:
    """MobileNet's rounding of a scaled channel count: to the nearest multiple of ``divisor``, at
    least ``divisor``, never more than 10% below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def channel_divisor(space: SearchSpace) -> int:
    """The smallest channel step that keeps every layer's width a multiple of the width step
    (inverted blocks: ``expand`` x channels must be)."""
    return space.width_step // math.gcd(space.width_step, space.expand)


def scaled_space(space: SearchSpace, multiplier: float) -> SearchSpace:
    """``space`` with every stage's channels scaled by ``multiplier`` (MobileNet rounding)."""
    d = channel_divisor(space)
    stages = tuple(StageSpec(make_divisible(s.channels * multiplier, d), s.blocks, s.stride)
                   for s in space.stages)  # fmt: skip
    return replace(space, stages=stages)


def multiplier_spaces(space: SearchSpace) -> list[tuple[float, SearchSpace]]:
    """The distinct networks of ``MULTIPLIERS`` below 1, widest first (a rounding that repeats
    a network keeps its largest multiplier; one that gives the full network back is left out:
    the full network is the super-network's largest, over any budget the search is run for)."""
    full = tuple(s.channels for s in space.stages)
    out: dict[tuple[int, ...], tuple[float, SearchSpace]] = {}
    for m in MULTIPLIERS:
        scaled = scaled_space(space, m)
        key = tuple(s.channels for s in scaled.stages)
        if key != full:
            out.setdefault(key, (m, scaled))
    return list(out.values())


def stage_channels(space: SearchSpace) -> list[int]:
    return [s.channels for s in space.stages]


def uniform_multiplier(
    space: SearchSpace,
    measure: Callable[[Sequence[SearchSpace]], list[RunLatency]],
    budget_ms: float,
    table_full_ms: float,
) -> tuple[SearchOutcome, RunLatency]:
    """The widest multiplier whose plain network (every block at its full hidden width) fits
    ``budget_ms`` by ``RunLatency.fits_confidently`` (the measured checks' rule); ``measure``
    times the networks of several spaces in one run. The narrowest is timed first, alone: when
    even it misses there is no baseline (and the other graphs are not exported); otherwise
    every multiplier is timed in one run, and the widest that fits there wins (none, when not
    even the narrowest does in that run: it is at the budget's edge). Returns the outcome
    (``space`` the scaled space, ``widths`` its largest; no prediction, no inherited accuracy)
    and the chosen network's figures."""
    t0 = time.perf_counter()
    options = multiplier_spaces(space)

    def rows_of(chosen: list[tuple[float, SearchSpace]], runs: list[RunLatency]
                ) -> list[dict[str, Any]]:  # fmt: skip
        return [{"multiplier": m, "stage_channels": stage_channels(s), "measured_ms": r.raw_ms,
                 "aligned_ms": r.aligned_ms, "fits": r.fits_confidently(budget_ms, table_full_ms)}
                for (m, s), r in zip(chosen, runs, strict=True)]  # fmt: skip

    (narrowest,) = rows_of(options[-1:], measure([options[-1][1]]))
    if not narrowest["fits"]:
        raise SearchError(
            f"no uniform width multiplier meets {budget_ms:.4f} ms: the narrowest "
            f"({narrowest['multiplier']}, channels {narrowest['stage_channels']}) measures "
            f"{narrowest['aligned_ms']:.4f} ms aligned"
        )
    runs = measure([s for _, s in options])
    rows = rows_of(options, runs)
    fitting = [i for i, row in enumerate(rows) if row["fits"]]
    if not fitting:
        raise SearchError(
            f"no uniform width multiplier meets {budget_ms:.4f} ms: the narrowest fitted when "
            f"timed alone ({narrowest['aligned_ms']:.4f} ms aligned) but not in the run of all "
            f"multipliers ({rows[-1]['aligned_ms']:.4f} ms): it is at the budget's edge"
        )
    i = fitting[0]
    seconds = time.perf_counter() - t0
    outcome = SearchOutcome("uniform", options[i][1].largest(), float("nan"), float("nan"), [],
                            seconds, [{"multiplier": options[i][0], "measured": rows,
                                       "narrowest_alone": narrowest}],
                            space=options[i][1])  # fmt: skip
    return outcome, runs[i]
