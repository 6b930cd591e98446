"""Whole-network latency on the device, as the search stage needs it.

The stage asks a ``LatencyMeasurer`` for three things: the per-layer table, whole-network figures
in the table's conditions (for the budget check and the Pareto plot), and a fresh table measured
together with some whole networks (to check the table's error). ``OnnxRuntimeMeasurer`` does it
on this machine; tests inject a stub.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from components.latency import DeviceProfile, Latency
from components.model.supernet import SuperNet
from components.progress import Progress, no_progress
from components.search.lut import LatencyTable, build_table, build_table_with, network_latencies


class LatencyMeasurer(Protocol):
    def table(self, progress: Progress = no_progress) -> LatencyTable:
        """Measure the per-layer table (``info["full_ms"]`` holds the full network's figure)."""
        ...

    def latencies(
        self, lut: LatencyTable, archs: Sequence[Sequence[int]], quick: bool = False,
        phase: str = "", progress: Progress = no_progress,
    ) -> list[float]:  # fmt: skip
        """Whole-network latencies (ms) mapped onto ``lut``'s conditions; ``quick``: fewer
        samples and a looser precision (figures for a plot)."""
        ...

    def table_with(self, archs: Sequence[Sequence[int]]) -> tuple[LatencyTable, list[Latency]]:
        """A fresh table and ``archs`` measured in one measurement (the table check)."""
        ...


class OnnxRuntimeMeasurer:
    """Sub-networks of ``net`` exported to ONNX and timed with ONNX Runtime on ``profile``."""

    def __init__(self, net: SuperNet, profile: DeviceProfile, width_stride: int,
                 quick_repeats: int) -> None:  # fmt: skip
        self.net, self.profile, self.width_stride = net, profile, width_stride
        # for the plot only: fewer samples and a looser precision than the careful checks
        self.quick = profile.model_copy(update={
            "repeats": quick_repeats, "min_seconds": 0.0,
            "precision": max(profile.precision, 0.03),
            "max_uncertainty": max(profile.max_uncertainty, 0.5),
            "max_seconds": min(profile.max_seconds, 10.0),
        })  # fmt: skip

    def table(self, progress: Progress = no_progress) -> LatencyTable:
        return build_table(
            self.net, self.profile, self.width_stride,
            progress=lambda d, n: progress("latency table", d, n),
        )  # fmt: skip

    def latencies(
        self, lut: LatencyTable, archs: Sequence[Sequence[int]], quick: bool = False,
        phase: str = "", progress: Progress = no_progress,
    ) -> list[float]:  # fmt: skip
        """Measured interleaved with the all-removed and the full network, then
        ``LatencyTable.align``-ed through those two."""
        space = self.net.space
        report = (lambda d, n: progress(phase, d, n)) if phase else None
        *lats, low, high = network_latencies(
            self.net, [*archs, space.smallest(), space.largest()],
            self.quick if quick else self.profile, progress=report,
        )  # fmt: skip
        return [lut.align(lat.median_ms, low.median_ms, high.median_ms) for lat in lats]

    def table_with(self, archs: Sequence[Sequence[int]]) -> tuple[LatencyTable, list[Latency]]:
        return build_table_with(self.net, self.profile, archs, width_stride=self.width_stride)
