"""The search stage without timing anything: a stub device whose latency is an exact additive
table, and the stage's inputs (a small super-network checkpoint and the toy prepared data)."""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from components.latency import DeviceProfile, Latency
from components.model.checkpoint import save_supernet
from components.model.space import SearchSpace
from components.model.subnet import extract_subnet
from components.model.supernet import SuperNet
from components.progress import Progress, no_progress
from components.search.lut import DeviceGraph, LatencyTable
from components.search.measure import RunLatency, run_latencies
from tests.helpers.spaces import STAGE_SPACE, randomized_supernet
from tests.helpers.toy_data import write_prepared

# Timing in tests only has to run: few samples, a loose precision, a busy machine no error.
QUICK = DeviceProfile(name="test", warmup=2, repeats=10, min_sample_ms=0.2, precision=0.5,
                      max_seconds=5.0, max_uncertainty=0.9)  # fmt: skip


def onnx_bytes(model: torch.nn.Module, example: tuple[torch.Tensor, ...], opset: int = 18) -> bytes:
    """A module as ONNX in memory with the TorchScript exporter (~0.1 s, the dynamo exporter
    the device graphs use takes ~2 s): for tests that need a model to time, not the device's."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), example, buf, dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=["output"])  # fmt: skip
    return buf.getvalue()


class BackboneGraph(DeviceGraph):
    """For tests whose device is a stub that never runs the graphs: the sub-network alone on
    log-mel input, TorchScript-exported. The real ``DeviceGraph`` (exported end to end as the
    export stage ships it) is tested on its own in tests/search/test_lut.py."""

    @property
    def input_name(self) -> str:
        return "input"

    def onnx(self, net: SuperNet, widths: Sequence[int]) -> bytes:
        space = net.space
        example = torch.zeros(1, space.n_mels, space.frames)
        return onnx_bytes(extract_subnet(net, list(widths)).eval(), (example,))


# STAGE_SPACE's device: 1 ms with both layers removed; layer 0 adds 1 ms per 8 channels, layer 1
# 1.5 ms. The full network [16, 16] takes 6 ms.
BASE_MS = 1.0
LAYER_MS = [{0: 0.0, 8: 1.0, 16: 2.0}, {0: 0.0, 8: 1.5, 16: 3.0}]


def additive_table(space: SearchSpace = STAGE_SPACE, base_ms: float = BASE_MS,
                   layer_ms: Sequence[dict[int, float]] = LAYER_MS) -> LatencyTable:  # fmt: skip
    layers = [dict(t) for t in layer_ms]
    table = LatencyTable(space, {"name": "stub"}, base_ms, layers, [sorted(t) for t in layers])
    table.info["full_ms"] = table.predict(space.largest())
    return table


def latency(ms: float) -> Latency:
    """A measurement with no spread at all."""
    return Latency(ms, ms, ms, ms, ms, 10, 1, ms, ms, 0.0)


class StubMeasurer:
    """``components.search.measure.LatencyMeasurer`` for a device whose whole network
    ``widths`` takes ``device(widths)`` ms in the table's own measurement (default: what the
    table predicts) and ``later(device(widths))`` ms in every later run (default: the same;
    an affine ``later`` is a drift that alignment undoes). A plain network of another space (the
    uniform baseline's) takes ``plain(space)`` ms before ``later`` (default: the full network's
    figure times the ratio of its channels, summed over stages, to the table space's). Later
    runs report confidence intervals of ``+-uncertainty`` (relative) around their medians
    (default: none). Records its calls."""

    def __init__(
        self, table: LatencyTable | None = None,
        device: Callable[[Sequence[int]], float] | None = None,
        later: Callable[[float], float] = lambda ms: ms,
        plain: Callable[[SearchSpace], float] | None = None, uncertainty: float = 0.0,
    ) -> None:  # fmt: skip
        self.table = table or additive_table()
        self.device = device or self.table.predict
        self.later = later
        self.plain = plain or self.channel_ratio
        self.uncertainty = uncertainty
        self.calls: list[str] = []

    def channel_ratio(self, space: SearchSpace) -> float:
        full = self.table.space
        ratio = sum(s.channels for s in space.stages) / sum(s.channels for s in full.stages)
        return self.device(full.largest()) * ratio

    def ms(self, widths: Sequence[int]) -> float:
        """The raw median of ``widths`` in a run after the table's."""
        return self.later(self.device(widths))

    def table_with(
        self, archs: Sequence[Sequence[int]], progress: Progress = no_progress
    ) -> tuple[LatencyTable, list[Latency]]:
        self.calls.append("table_with")
        progress("latency table", 1, 1)
        table = copy.deepcopy(self.table)  # the stage writes into the table's info
        table.info["full_ms"] = self.device(table.space.largest())
        return table, [latency(self.device(a)) for a in archs]

    def latencies(
        self, lut: LatencyTable, archs: Sequence[Sequence[int]], quick: bool = False,
        phase: str = "", progress: Progress = no_progress,
    ) -> list[RunLatency]:  # fmt: skip
        self.calls.append("quick latencies" if quick else "latencies")
        return self.run(lut, [self.ms(a) for a in archs])

    def plain_latencies(
        self, lut: LatencyTable, spaces: Sequence[SearchSpace], phase: str = "",
        progress: Progress = no_progress,
    ) -> list[RunLatency]:  # fmt: skip
        self.calls.append("plain latencies")
        return self.run(lut, [self.later(self.plain(s)) for s in spaces])

    def run(self, lut: LatencyTable, raw_ms: Sequence[float]) -> list[RunLatency]:
        """``raw_ms`` in one later run with the table space's all-removed and full networks."""
        space, u = self.table.space, self.uncertainty
        full = self.ms(space.largest())
        return run_latencies(lut, raw_ms, self.ms(space.smallest()), full,
                             [ms * (1 + u) for ms in raw_ms], full * (1 - u))  # fmt: skip


def write_search_inputs(workdir: Path, train_seconds: float = 1.5) -> None:
    """``data/prepared`` (toy data with a validation split and two clients) and
    ``models/supernet.ckpt`` (STAGE_SPACE, randomized weights) under ``workdir``."""
    write_prepared(workdir / "data/prepared", clients=2, test=4, val=24)
    net = randomized_supernet(space=STAGE_SPACE)
    save_supernet(workdir / "models/supernet.ckpt", net,
                  {"metrics": {"train_seconds": train_seconds}})  # fmt: skip
