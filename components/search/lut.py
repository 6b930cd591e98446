"""Per-layer latency lookup tables measured on the device, for the graph the device runs.

Every network the table is measured from is the graph the export stage ships for that sub-network
(``DeviceGraph``: raw audio in, class scores out, the device frontend, the same exporter and
opset), so the table, the budget and every check are end-to-end figures: the frontend's and the
engine's fixed costs are in ``base_ms``.

Every searchable layer keeps its input width (a removed inverted-residual block is the identity
through its residual; a bypass block passes its dropped channels through), so a layer's latency
depends, to first order, on its own width only. The table therefore holds, per layer and width,
the latency that layer adds to the network, and predicts a network as

    latency(widths) = base_ms + sum_i layer_ms[i][widths[i]]

The terms are fitted by least squares (relative residuals) to whole networks measured in one
interleaved measurement (``table_entries``): the network with every searchable layer removed
(frontend, stem, transitions, head and the engine's per-call overhead: ``base_ms``), each layer
alone at each grid width, ``search.lut_fit_archs`` random networks and the full network. Measuring
each term inside the network rather than as a lone operator keeps the per-call overhead out of the
sum. Widths between measured grid points are linearly interpolated.

Why a fit, not differences (``layer alone - base``, the table until 2026-12-07): the difference
table predicts a network of k layers as k entries minus (k - 1) times the base, so the base's
measurement error reaches the prediction k - 1 times over, and layers cost a little more together
than alone, which no difference sees. Whole networks in the fit measure both (``bench.lut_error``;
the figures: docs/benchmarks.md).
"""

from __future__ import annotations

import io
import json
import logging
import math
import multiprocessing
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from components.config import FeatureParams
from components.errors import ConfigError
from components.export.graph import INPUT_NAME, device_graph
from components.features import num_frames
from components.io import write_json_atomic
from components.latency import DeviceProfile, Latency, measure_many
from components.model.space import SearchSpace
from components.model.subnet import extract_subnet
from components.model.supernet import SuperNet

LUT_FORMAT = "edgelearn.lut/1"
TABLE_METHOD = (
    "least-squares fit of per-layer terms to whole networks (the all-removed network, each layer "
    "alone at each grid width, random networks, the full network), end to end (audio in, "
    "scores out, the exported device graph), batch 1, interleaved"
)


@dataclass(frozen=True)
class DeviceGraph:
    """What is timed for a sub-network: the graph the export stage ships for it (the device
    frontend and the network, exported by ``components.export.graph.export_onnx``: the dynamo
    exporter at ``opset``), fed one clip of silence at batch 1."""

    features: FeatureParams
    opset: int

    @property
    def input_name(self) -> str:
        return INPUT_NAME

    @property
    def input_shape(self) -> list[int]:
        return [1, self.features.clip_samples]

    def feed(self) -> dict[str, np.ndarray]:
        return {self.input_name: np.zeros(self.input_shape, dtype=np.float32)}

    def check(self, space: SearchSpace) -> None:
        """Refuse features that do not make the super-network's input."""
        shape = (self.features.n_mels, num_frames(self.features))
        if shape != (space.n_mels, space.frames):
            raise ConfigError(
                f"features: make {shape[0]} mels x {shape[1]} frames, the super-network takes "
                f"{space.n_mels} x {space.frames}; use the features it was trained on"
            )

    def onnx(self, net: SuperNet, widths: Sequence[int]) -> bytes:
        return self.onnx_module(extract_subnet(net, list(widths)))

    def onnx_module(self, network: torch.nn.Module) -> bytes:
        """Any network on the super-network's input (a sub-network, or the uniform baseline's
        scaled network) as the device runs it."""
        return device_graph(network.eval(), self.features, self.opset).SerializeToString()

    def onnx_many(
        self, net: SuperNet, archs: Sequence[Sequence[int]], workers: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[bytes]:  # fmt: skip
        """``onnx`` of several sub-networks. The dynamo exporter is single-threaded Python (about
        2 s a graph), so with more than ``PARALLEL_MIN`` graphs and more than one core they are
        exported in ``workers`` processes (default: one per core), each holding a copy of
        ``net``; the bytes are the same as ``onnx`` gives (tested)."""
        workers = workers or len(os.sched_getaffinity(0))
        if workers < 2 or len(archs) < PARALLEL_MIN:
            out = []
            for i, widths in enumerate(archs):
                out.append(self.onnx(net, widths))
                if progress is not None:
                    progress(i + 1, len(archs))
            return out
        buffer = io.BytesIO()
        torch.save(net.state_dict(), buffer)
        context = multiprocessing.get_context("spawn")  # no forked copy of a threaded parent
        init = (net.space.to_dict(), buffer.getvalue(), self.features.model_dump(), self.opset)
        with ProcessPoolExecutor(workers, context, _export_init, init) as pool:
            futures = [pool.submit(_export_one, list(w)) for w in archs]
            for i, _ in enumerate(as_completed(futures)):
                if progress is not None:
                    progress(i + 1, len(archs))
            return [f.result() for f in futures]


PARALLEL_MIN = 12  # fewer graphs export faster in this process than workers start
_WORKER: tuple[SuperNet, DeviceGraph] | None = None


def _export_init(space: dict[str, Any], state: bytes, features: dict[str, Any], opset: int
                 ) -> None:  # fmt: skip
    global _WORKER
    torch.set_num_threads(1)
    # a spawned process has none of the parent's logging set-up: the dynamo exporter would warn
    # on every export that torchvision's operators are not registered
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    net = SuperNet(SearchSpace.from_dict(space))
    net.load_state_dict(torch.load(io.BytesIO(state)))
    _WORKER = (net.eval(), DeviceGraph(FeatureParams.model_validate(features), opset))


def _export_one(widths: list[int]) -> bytes:
    assert _WORKER is not None
    net, graph = _WORKER
    return graph.onnx(net, widths)


@dataclass
class LatencyTable:
    """``base_ms`` plus, per layer, the milliseconds each width adds (width 0 adds nothing)."""

    space: SearchSpace
    device: dict[str, Any]
    base_ms: float
    layer_ms: list[dict[int, float]]
    measured_widths: list[list[int]]  # the grid actually measured; the rest is interpolated
    info: dict[str, Any] = field(default_factory=dict)

    def predict(self, widths: Sequence[int]) -> float:
        return self.base_ms + sum(self.layer_ms[i][int(w)] for i, w in enumerate(widths))

    def align(self, ms: float, base_ms: float, full_ms: float) -> float:
        """Map a whole-network figure ``ms``, measured alongside the all-removed network
        (``base_ms``) and the full one (``full_ms``), onto the table's conditions: the affine map
        that takes those two to their figures in the table. A shared machine's speed drifts over
        minutes, and a slower period adds proportionally more to a small network (per-call
        overhead; measured figures in docs/benchmarks.md), so one scale factor would still leave
        an error on the smallest networks; two anchors do not."""
        table_full = self.info["full_ms"]
        # the all-removed network's own median where the table has it (a fitted table's
        # base_ms is a fitted term)
        table_base = float(self.info.get("base_measured_ms", self.base_ms))
        return table_base + (ms - base_ms) * (table_full - table_base) / (full_ms - base_ms)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": LUT_FORMAT,
            "device": self.device,
            "space": self.space.to_dict(),
            "base_ms": self.base_ms,
            "layers": [
                {
                    "layer": i,
                    "channels": self.space.layer_channels[i],
                    "measured_widths": self.measured_widths[i],
                    "ms": {str(w): v for w, v in sorted(entries.items())},
                }
                for i, entries in enumerate(self.layer_ms)
            ],
            "info": self.info,
        }

    def save(self, path: Path) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> LatencyTable:
        if not isinstance(data, dict) or data.get("format") != LUT_FORMAT:
            raise ConfigError(f"{source}: not an edgelearn latency table (format {LUT_FORMAT})")
        try:
            space = SearchSpace.from_dict(data["space"])
            layers = sorted(data["layers"], key=lambda d: d["layer"])
            layer_ms = [{int(w): float(v) for w, v in d["ms"].items()} for d in layers]
            measured = [[int(w) for w in d.get("measured_widths", [])] for d in layers]
            table = cls(space, dict(data["device"]), float(data["base_ms"]), layer_ms, measured,
                        dict(data.get("info", {})))  # fmt: skip
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"{source}: malformed latency table ({err!r})") from None
        if len(layer_ms) != space.num_layers:
            raise ConfigError(f"{source}: {len(layer_ms)} layers, the space has {space.num_layers}")
        for i in range(space.num_layers):
            missing = set(space.width_choices(i)) - set(table.layer_ms[i])
            if missing:
                raise ConfigError(f"{source}: layer {i} has no entry for widths {sorted(missing)}")
        return table

    @classmethod
    def load(cls, path: Path, space: SearchSpace | None = None) -> LatencyTable:
        """Read a table (e.g. one measured on a phone); with ``space``, refuse one for another."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: latency table not found")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: not valid JSON ({err})") from None
        return cls.parse(data, path, space)

    @classmethod
    def parse(cls, data: Any, path: Path, space: SearchSpace | None = None) -> LatencyTable:
        """``load`` of JSON already read from ``path``."""
        table = cls.from_dict(data, str(path))
        if space is not None and table.space.to_dict() != space.to_dict():
            raise ConfigError(
                f"{path}: the table was measured for another search space "
                f"(layers {table.space.layer_channels}, this super-network has "
                f"{space.layer_channels}); measure it again"
            )
        return table


def measurement_grid(choices: Sequence[int], stride: int) -> list[int]:
    """Non-zero widths to measure: every ``stride``-th choice, always the smallest and largest."""
    nonzero = [w for w in choices if w > 0]
    grid = set(nonzero[::stride]) | {nonzero[0], nonzero[-1]}
    return sorted(grid)


def interpolate(measured: dict[int, float], choices: Sequence[int]) -> dict[int, float]:
    """Linear interpolation over the measured widths (width 0 is exactly 0: the layer is gone)."""
    xs = sorted(measured)
    ys = [measured[w] for w in xs]
    out = {0: 0.0}
    for w in choices:
        if w > 0:
            out[w] = measured[w] if w in measured else float(np.interp(w, xs, ys))
    return out


def fit_layers(
    space: SearchSpace, width_stride: int, observations: Sequence[tuple[Sequence[int], float]]
) -> tuple[float, list[dict[int, float]]]:
    """``base_ms`` and each layer's milliseconds at its grid widths (``measurement_grids``),
    fitted by least squares to whole networks' medians: ``observations`` are (widths, ms) pairs,
    every width 0 or on its layer's grid, and together they must pin every term (the base network
    and each layer alone at each grid width do). Residuals are relative (each network's median
    is known to a relative precision), so a small network weighs as much as a large one. Why a
    fit rather than differences: the module's docstring."""
    grids = measurement_grids(space, width_stride)
    column = {(i, w): 1 + j for j, (i, w) in enumerate((i, w) for i, g in enumerate(grids)
                                                          for w in g)}  # fmt: skip
    a = np.zeros((len(observations), 1 + len(column)))
    for n, (widths, ms) in enumerate(observations):
        if ms <= 0:
            raise ValueError(f"latency table: non-positive median {ms} for {list(widths)}")
        a[n, 0] = 1.0
        for i, w in enumerate(widths):
            if w:
                if (i, int(w)) not in column:
                    raise ValueError(f"latency table: layer {i} width {w} is not on its grid "
                                     f"{grids[i]}")  # fmt: skip
                a[n, column[(i, int(w))]] = 1.0
        a[n] /= ms
    if np.linalg.matrix_rank(a) < a.shape[1]:
        raise ValueError("latency table: the networks measured do not pin every layer's entry")
    coef, *_ = np.linalg.lstsq(a, np.ones(len(observations)), rcond=None)
    measured: list[dict[int, float]] = [{} for _ in range(space.num_layers)]
    for (i, w), j in column.items():
        measured[i][w] = float(coef[j])
    return float(coef[0]), measured


def fitted_table(
    space: SearchSpace, device: dict[str, Any], width_stride: int,
    observations: Sequence[tuple[Sequence[int], float]], full_ms: float,
    info: Mapping[str, Any] | None = None,
) -> LatencyTable:  # fmt: skip
    """The table of ``fit_layers``, interpolated over every width choice;
    ``info["full_ms"]`` is the full network's own median ``full_ms``."""
    base, measured = fit_layers(space, width_stride, observations)
    layer_ms = [interpolate(m, space.width_choices(i)) for i, m in enumerate(measured)]
    grids = [sorted(m) for m in measured]
    full = {"width_stride": width_stride, "full_ms": float(full_ms)}
    return LatencyTable(space, device, base, layer_ms, grids, {**(info or {}), **full})


Measurer = Callable[
    [Mapping[str, tuple[bytes, dict[str, np.ndarray]]], DeviceProfile], dict[str, Latency]
]


def widths_key(widths: Sequence[int]) -> str:
    return f"widths {[int(w) for w in widths]}"


@dataclass(frozen=True)
class TableEntry:
    """One network the table is measured from: the all-removed network (``base``), one layer
    alone at one grid width (``layer``), a random network of grid widths (``fit``), or the full
    network (``full``)."""

    role: Literal["base", "layer", "fit", "full"]
    widths: tuple[int, ...]
    layer: int | None = None

    @property
    def key(self) -> str:
        return widths_key(self.widths)


def measurement_grids(space: SearchSpace, width_stride: int) -> list[list[int]]:
    return [measurement_grid(space.width_choices(i), width_stride) for i in range(space.num_layers)]


FIT_SEED = 2029  # the random networks of a table: the same for every device and every run


def table_entries(space: SearchSpace, width_stride: int, fit: int = 0) -> list[TableEntry]:
    """The networks a table is measured from, in measuring order: base, each layer alone at
    each grid width, ``fit`` random networks of grid widths (drawn from ``FIT_SEED``, none of
    the others; fewer when the space holds fewer), full. The host (``build_table_with``) and a
    device probe both measure exactly these."""
    zeros = space.smallest()
    grids = measurement_grids(space, width_stride)
    entries = [TableEntry("base", tuple(zeros))]
    for i, grid in enumerate(grids):
        for w in grid:
            widths = list(zeros)
            widths[i] = w
            entries.append(TableEntry("layer", tuple(widths), i))
    full = TableEntry("full", tuple(space.largest()))
    taken = {e.widths for e in [*entries, full]}
    fit = min(fit, math.prod(len(g) + 1 for g in grids) - len(taken))
    rng = np.random.default_rng(FIT_SEED)
    while fit > 0:
        drawn = tuple(int(rng.choice([0, *g])) for g in grids)
        if drawn not in taken:
            taken.add(drawn)
            entries.append(TableEntry("fit", drawn))
            fit -= 1
    return [*entries, full]


def table_from_medians(
    space: SearchSpace,
    device: dict[str, Any],
    medians: Mapping[str, float],
    width_stride: int,
    info: Mapping[str, Any] | None = None,
    fit: int = 0,
) -> LatencyTable:
    """Assemble the table from the median latency (ms) of every ``table_entries`` network,
    keyed by ``TableEntry.key``: the terms fitted to all of them (``fit_layers``), interpolated
    over the width choices; the full network's median goes to ``info["full_ms"]``, the base
    network's to ``info["base_measured_ms"]``."""
    entries = table_entries(space, width_stride, fit)
    missing = [e.key for e in entries if e.key not in medians]
    if missing:
        more = " ..." if len(missing) > 3 else ""
        raise ConfigError(f"latency table: no median for {', '.join(missing[:3])}{more}")
    observations = [(e.widths, float(medians[e.key])) for e in entries]
    measured = {"fit_archs": sum(e.role == "fit" for e in entries),
                "base_measured_ms": float(medians[entries[0].key])}  # fmt: skip
    try:
        return fitted_table(
            space,
            device,
            width_stride,
            observations,
            float(medians[entries[-1].key]),
            {**(info or {}), **measured},
        )
    except ValueError as err:
        raise ConfigError(str(err)) from None


def network_latencies(
    net: SuperNet,
    archs: Sequence[Sequence[int]],
    profile: DeviceProfile,
    graph: DeviceGraph,
    measurer: Measurer = measure_many,
    progress: Callable[[int, int], None] | None = None,
    exported: dict[str, bytes] | None = None,
) -> list[Latency]:
    """Measure sub-networks of ``net`` (their device graphs) at batch 1, interleaved so that
    figures which will be compared or subtracted share the machine's conditions. ``exported``
    keeps the graphs of ``net`` already exported (by ``widths_key``) across calls."""
    feed = graph.feed()
    exported = {} if exported is None else exported
    todo = {widths_key(w): list(w) for w in archs if widths_key(w) not in exported}
    graphs = graph.onnx_many(net, list(todo.values()), progress=(
        None if progress is None else lambda d, n: progress(d, len(todo) + 1)))  # fmt: skip
    exported.update(zip(todo, graphs, strict=True))
    models = {widths_key(w): (exported[widths_key(w)], feed) for w in archs}
    latencies = measurer(models, profile)
    if progress is not None:
        progress(len(todo) + 1, len(todo) + 1)
    return [latencies[widths_key(w)] for w in archs]


def network_latency(
    net: SuperNet, widths: Sequence[int], profile: DeviceProfile, graph: DeviceGraph,
    measurer: Measurer = measure_many,
) -> Latency:  # fmt: skip
    """Measure one sub-network of ``net`` at batch 1."""
    return network_latencies(net, [widths], profile, graph, measurer)[0]


def build_table(
    net: SuperNet,
    profile: DeviceProfile,
    graph: DeviceGraph,
    width_stride: int = 1,
    measurer: Measurer = measure_many,
    progress: Callable[[int, int], None] | None = None,
    fit: int = 0,
) -> LatencyTable:
    """Measure the table on this machine: the base network, each layer at each grid width,
    ``fit`` random networks and the full network (``info["full_ms"]``), all in one interleaved
    measurement."""
    return build_table_with(net, profile, graph, (), width_stride, measurer, progress,
                            fit=fit)[0]  # fmt: skip


def build_table_with(
    net: SuperNet,
    profile: DeviceProfile,
    graph: DeviceGraph,
    extra: Sequence[Sequence[int]],
    width_stride: int = 1,
    measurer: Measurer = measure_many,
    progress: Callable[[int, int], None] | None = None,
    exported: dict[str, bytes] | None = None,
    fit: int = 0,
) -> tuple[LatencyTable, list[Latency]]:
    """``build_table``, with the ``extra`` whole networks measured in the same interleaved
    measurement (so the table and those figures share the machine's conditions)."""
    entries = table_entries(net.space, width_stride, fit)
    archs = [list(e.widths) for e in entries]
    latencies = network_latencies(net, [*archs, *extra], profile, graph, measurer, progress,
                                  exported)  # fmt: skip
    medians = {
        e.key: lat.median_ms for e, lat in zip(entries, latencies[: len(archs)], strict=True)
    }
    info = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "method": TABLE_METHOD,
        "graph": {"input": graph.input_name, "input_shape": graph.input_shape,
                  "opset": graph.opset, "exporter": "torch.onnx dynamo"},
    }  # fmt: skip
    table = table_from_medians(net.space, profile.model_dump(), medians, width_stride, info, fit)
    return table, latencies[len(archs) :]
