"""Whole-network latency on the device, as the search stage needs it.

The stage asks a ``LatencyMeasurer`` for two things: the per-layer table measured together with
some whole networks (the table's check, ``measure_table``), and later whole-network figures for
the winners and the Pareto plot, each timed in a run of its own together with the all-removed
and the full network (``RunLatency``). ``OnnxRuntimeMeasurer`` does it on this machine; tests
inject a stub.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from components.latency import DeviceProfile, Latency, measure_many, median_of
from components.model.space import SearchSpace
from components.model.subnet import SubNetwork
from components.model.supernet import SuperNet
from components.progress import Progress, no_progress
from components.search.lut import (
    DeviceGraph,
    LatencyTable,
    build_table_with,
    network_latencies,
    table_entries,
    widths_key,
)
from components.search.records import arch_key


@dataclass(frozen=True)
class RunLatency:
    """One network timed in an interleaved run together with the all-removed and the full
    network. ``raw_ms`` is its own median in that run; ``aligned_ms`` is that figure mapped onto
    a table's conditions (``LatencyTable.align``, through the two anchors); ``run_full_ms`` and
    ``run_base_ms`` are the anchors' raw medians in the same run (all ms). ``raw_high_ms`` is the
    upper end of the 95% confidence interval of the network's median and ``run_full_low_ms`` the
    lower end of the full network's (``Latency.ci_*``; without them, the medians: a measurer
    that knows no interval)."""

    raw_ms: float
    aligned_ms: float
    run_full_ms: float
    run_base_ms: float
    raw_high_ms: float | None = None
    run_full_low_ms: float | None = None

    def fits(self, budget_ms: float, table_full_ms: float) -> bool:
        """The budget rule, the verdict reported. The budget is a fraction of the full network's
        latency (``budget_ms / table_full_ms``, in the table's conditions), so a network fits
        when its raw median is at most that fraction of the full network's raw median in the
        same run: within the budget in the conditions of its own measurement, with no mapping
        involved. (Compared as ratios, so a figure exactly at the budget is not lost to
        rounding.)"""
        return self.raw_ms / self.run_full_ms <= budget_ms / table_full_ms

    @property
    def ratio_high(self) -> float:
        """The largest ratio to the full network that the run's intervals allow: the network's
        upper bound over the full network's lower bound (conservative: the two intervals are
        combined as if their errors were opposite)."""
        high = self.raw_ms if self.raw_high_ms is None else self.raw_high_ms
        low = self.run_full_ms if self.run_full_low_ms is None else self.run_full_low_ms
        return high / low

    def fits_confidently(self, budget_ms: float, table_full_ms: float) -> bool:
        """The acceptance rule of the measured checks (every method's, and the uniform
        multiplier's): ``fits`` with the ratio's upper bound (``ratio_high``) in place of its
        median. A search spends its budget to the edge, and a network whose median sits just
        under the budget is over it in about half of the next measurements; accepting only
        networks that fit with the run's uncertainty keeps the winner in budget when it is
        measured again."""
        return self.ratio_high <= budget_ms / table_full_ms

    def run_budget_ms(self, budget_ms: float, table_full_ms: float) -> float:
        """The budget scaled to this run: ``budget_ms / table_full_ms * run_full_ms``."""
        return budget_ms / table_full_ms * self.run_full_ms


def run_latencies(
    lut: LatencyTable, raw_ms: Sequence[float], run_base_ms: float, run_full_ms: float,
    raw_high_ms: Sequence[float] | None = None, run_full_low_ms: float | None = None,
) -> list[RunLatency]:  # fmt: skip
    """``raw_ms``, timed in one run with the all-removed (``run_base_ms``) and the full network
    (``run_full_ms``), each with its figure aligned onto ``lut``'s conditions; ``raw_high_ms``
    and ``run_full_low_ms``: the confidence bounds (``RunLatency``), where the run has them."""
    highs: list[float | None] = [None] * len(raw_ms) if raw_high_ms is None else [*raw_high_ms]
    return [RunLatency(ms, lut.align(ms, run_base_ms, run_full_ms), run_full_ms, run_base_ms,
                       high, run_full_low_ms)
            for ms, high in zip(raw_ms, highs, strict=True)]  # fmt: skip


def measured_runs(lut: LatencyTable, lats: Sequence[Latency], low: Latency, high: Latency
                  ) -> list[RunLatency]:  # fmt: skip
    """``run_latencies`` of a measurement: ``lats`` timed with the all-removed (``low``) and
    the full network (``high``), with their confidence bounds."""
    return run_latencies(lut, [lat.median_ms for lat in lats], low.median_ms, high.median_ms,
                         [lat.ci_high_ms for lat in lats], high.ci_low_ms)  # fmt: skip


class LatencyMeasurer(Protocol):
    def table_with(
        self, archs: Sequence[Sequence[int]], progress: Progress = no_progress
    ) -> tuple[LatencyTable, list[Latency]]:
        """The per-layer table (``info["full_ms"]`` holds the full network's median) and the
        whole networks ``archs``, measured in one interleaved measurement."""
        ...

    def latencies(
        self, lut: LatencyTable, archs: Sequence[Sequence[int]], quick: bool = False,
        phase: str = "", progress: Progress = no_progress,
    ) -> list[RunLatency]:  # fmt: skip
        """``archs`` timed in one run with the all-removed and the full network; ``quick``:
        fewer samples and a looser precision (figures for a plot)."""
        ...

    def plain_latencies(
        self, lut: LatencyTable, spaces: Sequence[SearchSpace], phase: str = "",
        progress: Progress = no_progress,
    ) -> list[RunLatency]:  # fmt: skip
        """The plain network of each space (every block at its widest; the uniform baseline's
        scaled networks) timed in one run with the super-network's all-removed and full
        networks."""
        ...


class OnnxRuntimeMeasurer:
    """Sub-networks of ``net`` as the device runs them (``graph``), timed with ONNX Runtime on
    ``profile``; each graph is exported once."""

    def __init__(self, net: SuperNet, profile: DeviceProfile, graph: DeviceGraph,
                 width_stride: int, quick_repeats: int, fit: int = 0) -> None:  # fmt: skip
        self.net, self.profile, self.width_stride, self.fit = net, profile, width_stride, fit
        self.graph = graph
        self.exported: dict[str, bytes] = {}
        # for the plot only: fewer samples and a looser precision than the careful checks
        self.quick = profile.model_copy(update={
            "repeats": quick_repeats, "min_seconds": 0.0,
            "precision": max(profile.precision, 0.03),
            "max_uncertainty": max(profile.max_uncertainty, 0.5),
            "max_seconds": min(profile.max_seconds, 10.0),
        })  # fmt: skip

    def table_with(
        self, archs: Sequence[Sequence[int]], progress: Progress = no_progress
    ) -> tuple[LatencyTable, list[Latency]]:
        return build_table_with(
            self.net, self.profile, self.graph, archs, width_stride=self.width_stride,
            progress=lambda d, n: progress("latency table", d, n), exported=self.exported,
            fit=self.fit,
        )  # fmt: skip

    def latencies(
        self, lut: LatencyTable, archs: Sequence[Sequence[int]], quick: bool = False,
        phase: str = "", progress: Progress = no_progress,
    ) -> list[RunLatency]:  # fmt: skip
        space = self.net.space
        report = (lambda d, n: progress(phase, d, n)) if phase else None
        *lats, low, high = network_latencies(
            self.net, [*archs, space.smallest(), space.largest()],
            self.quick if quick else self.profile, self.graph, progress=report,
            exported=self.exported,
        )  # fmt: skip
        return measured_runs(lut, lats, low, high)

    def plain_latencies(
        self, lut: LatencyTable, spaces: Sequence[SearchSpace], phase: str = "",
        progress: Progress = no_progress,
    ) -> list[RunLatency]:  # fmt: skip
        space = self.net.space
        anchors = [space.smallest(), space.largest()]
        todo = [a for a in anchors if widths_key(a) not in self.exported]
        self.exported.update(zip(map(widths_key, todo), self.graph.onnx_many(self.net, todo),
                                 strict=True))  # fmt: skip
        models = {widths_key(a): (self.exported[widths_key(a)], self.graph.feed()) for a in anchors}
        keys = []
        for i, scaled in enumerate(spaces):
            key = f"plain {[s.channels for s in scaled.stages]}"
            if key not in self.exported:
                with torch.random.fork_rng(devices=[]):  # the caller's random state stays
                    torch.manual_seed(i)  # the weights do not matter for latency; the shapes do
                    network = SubNetwork(scaled, scaled.largest())
                self.exported[key] = self.graph.onnx_module(network)
            models[key] = (self.exported[key], self.graph.feed())
            keys.append(key)
            if phase:
                progress(phase, i + 1, len(spaces) + 1)
        latencies = measure_many(models, self.profile)
        if phase:
            progress(phase, len(spaces) + 1, len(spaces) + 1)
        low, high = (latencies[widths_key(a)] for a in anchors)
        return measured_runs(lut, [latencies[k] for k in keys], low, high)


def draw_check_archs(
    choices: Sequence[Sequence[int]], n: int, seed: int, exclude: set[str]
) -> list[list[int]]:
    """``n`` distinct random architectures (as many as the space holds outside ``exclude``),
    drawn from ``seed`` before the search, to be measured whole together with the table."""
    rng = np.random.default_rng(seed + 17)
    wanted = min(n, math.prod(len(c) for c in choices) - len(exclude))
    archs: dict[str, list[int]] = {}
    while len(archs) < wanted:
        w = [int(rng.choice(c)) for c in choices]
        if arch_key(w) not in exclude:
            archs.setdefault(arch_key(w), w)
    return list(archs.values())


def fitted_networks(space: SearchSpace, width_stride: int, fit: int = 0) -> set[str]:
    """The architectures the table is fitted to (``table_entries``): a check on them would not
    be held out."""
    return {arch_key(e.widths) for e in table_entries(space, width_stride, fit)}


def check_table(
    lut: LatencyTable, archs: Sequence[Sequence[int]], latencies: Sequence[Latency]
) -> list[dict[str, Any]]:
    """The table's error against whole networks measured in the same interleaved measurement as
    the table's own entries. The host's speed drifts between regimes that do not scale all
    operators alike, so a check measured minutes after the table would mix that drift into the
    error; measured together, the error is the additive model's alone."""
    rows = []
    for widths, latency in zip(archs, latencies, strict=True):
        measured, predicted = latency.median_ms, lut.predict(widths)
        rows.append({"widths": list(widths), "predicted_ms": predicted, "measured_ms": measured,
                     "error_pct": abs(predicted - measured) / measured * 100})  # fmt: skip
    return rows


def measure_table(
    measure: LatencyMeasurer, space: SearchSpace, n_check: int, width_stride: int, seed: int,
    progress: Progress = no_progress, fit: int = 0,
) -> tuple[LatencyTable, float]:  # fmt: skip
    """The table the search uses, measured in one run with ``n_check`` random whole networks
    (``search.lut_check_archs``); returns it (its check rows in ``info["check"]``) and its
    median error (%) on them, NaN with no check architectures."""
    choices = [space.width_choices(i) for i in range(space.num_layers)]
    archs = draw_check_archs(choices, n_check, seed,
                             fitted_networks(space, width_stride, fit))  # fmt: skip
    lut, latencies = measure.table_with(archs, progress)
    rows = check_table(lut, archs, latencies)
    error = median_of([r["error_pct"] for r in rows])
    lut.info["check"] = rows
    lut.info["median_error_pct"] = error
    return lut, error


def imported_error(lut: LatencyTable) -> float:
    """An imported table's own check (``info["median_error_pct"]``), NaN when it has none."""
    error = lut.info.get("median_error_pct")
    return float(error) if isinstance(error, int | float) else float("nan")
