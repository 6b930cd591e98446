"""Latency tables: interpolation, prediction, saving and importing, measured on a fake device."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from components.errors import ConfigError
from components.export.graph import device_graph
from components.latency import Latency
from components.model.space import SearchSpace, StageSpec
from components.model.subnet import SubNetwork, extract_subnet
from components.model.supernet import SuperNet
from components.search import lut
from components.search.lut import (
    DeviceGraph,
    LatencyTable,
    build_table,
    build_table_with,
    interpolate,
    measurement_grid,
    network_latency,
)
from components.search.measure import OnnxRuntimeMeasurer
from components.search.uniform import scaled_space
from tests.helpers.search import QUICK, BackboneGraph
from tests.helpers.spaces import TINY_FEATURES, randomized_supernet
from tests.helpers.spaces import TINY_SPACE as SPACE

GRAPH = DeviceGraph(TINY_FEATURES, 18)
STUB_GRAPH = BackboneGraph(TINY_FEATURES, 18)  # for a stub device: cheaper to export


def test_grid_and_interpolation() -> None:
    choices = [0, 8, 16, 24, 32, 40, 48, 56, 64]
    assert measurement_grid(choices, 1) == [8, 16, 24, 32, 40, 48, 56, 64]
    assert measurement_grid(choices, 3) == [8, 32, 56, 64]
    table = interpolate({8: 1.0, 32: 4.0, 56: 4.0, 64: 2.0}, choices)
    assert table == {0: 0.0, 8: 1.0, 16: 2.0, 24: 3.0, 32: 4.0, 40: 4.0, 48: 4.0, 56: 4.0,
                     64: 2.0}  # fmt: skip


def fake_measurer(costs: dict[int, float], base: float):
    """Stands in for the device: latency = base + sum of per-layer costs * width."""
    seen: list[bytes] = []

    def measurer(models, profile) -> dict[str, Latency]:
        out = {}
        for what, (model, _feed) in models.items():
            widths = json.loads(what.removeprefix("widths "))
            seen.append(model)
            ms = base + sum(costs[i] * w for i, w in enumerate(widths))
            out[what] = Latency(ms, ms, ms, ms, ms, profile.repeats, 1, ms, ms, 0.0)
        return out

    return measurer, seen


def test_build_table_recovers_an_additive_device_and_round_trips(tmp_path: Path) -> None:
    net = SuperNet(SPACE)
    measurer, seen = fake_measurer({0: 0.01, 1: 0.02, 2: 0.03}, base=0.5)
    steps = []
    table = build_table(net, QUICK, STUB_GRAPH, 1, measurer, lambda d, n: steps.append((d, n)))
    assert len(seen) == 1 + 2 + 2 + 2 + 1 and steps[-1] == (9, 9)  # base, 3 layers x 2, full
    assert all(m[:4] != b"" for m in seen)  # real ONNX exports were timed
    assert table.base_ms == pytest.approx(0.5) and table.info["base_measured_ms"] == 0.5
    assert table.info["full_ms"] == pytest.approx(0.5 + 0.16 + 0.32 + 0.48)
    # figures measured in a slower stretch (base 0.8, full 2.0) map back onto the table's
    assert table.align(0.8, 0.8, 2.0) == pytest.approx(0.5)
    assert table.align(2.0, 0.8, 2.0) == pytest.approx(1.46)
    assert table.align(1.4, 0.8, 2.0) == pytest.approx(0.5 + 0.6 * 0.96 / 1.2)
    assert table.layer_ms[2] == {0: 0.0, 8: pytest.approx(0.24), 16: pytest.approx(0.48)}
    assert table.predict([16, 8, 0]) == pytest.approx(0.5 + 0.16 + 0.16)
    path = tmp_path / "lut.json"
    table.save(path)
    again = LatencyTable.load(path, SPACE)
    assert again.predict([16, 8, 0]) == pytest.approx(table.predict([16, 8, 0]))
    assert again.device["name"] == "test"


def test_extra_networks_are_measured_with_the_table() -> None:
    measurer, seen = fake_measurer({0: 0.01, 1: 0.02, 2: 0.03}, base=0.5)
    table, extra = build_table_with(SuperNet(SPACE), QUICK, STUB_GRAPH, [[8, 0, 16], [0, 0, 0]], 1,
                                    measurer)  # fmt: skip
    assert len(seen) == 1 + 2 + 2 + 2 + 1 + 1  # one measurement; the all-removed net once
    assert [m.median_ms for m in extra] == [pytest.approx(0.5 + 0.08 + 0.48), 0.5]
    assert table.predict([8, 0, 16]) == pytest.approx(extra[0].median_ms)


def test_import_refuses_a_table_for_another_space_or_a_broken_file(tmp_path: Path) -> None:
    measurer, _ = fake_measurer({0: 0.01, 1: 0.01, 2: 0.01}, base=0.1)
    table = build_table(SuperNet(SPACE), QUICK, STUB_GRAPH, 1, measurer)
    path = tmp_path / "phone.json"
    table.save(path)
    other = SearchSpace(n_mels=8, frames=12, num_classes=3, stem_stride=(2, 2), width_step=8,
                        stages=(StageSpec(16, 3, 1),))  # fmt: skip
    with pytest.raises(ConfigError, match="another search space"):
        LatencyTable.load(path, other)
    data = json.loads(path.read_text())
    del data["layers"][1]["ms"]["8"]
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"phone.json: layer 1 has no entry for widths \[8\]"):
        LatencyTable.load(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"phone\.json: not valid JSON"):
        LatencyTable.load(path)
    with pytest.raises(ConfigError, match="not found"):
        LatencyTable.load(tmp_path / "missing.json")


def test_network_latency_measures_an_extracted_subnet() -> None:
    net = SuperNet(SPACE).eval()
    result = network_latency(net, [8, 0, 16], QUICK, GRAPH)
    assert np.isfinite(result.median_ms) and result.median_ms > 0


def test_the_table_times_the_graph_the_export_stage_ships() -> None:
    net = randomized_supernet(space=SPACE)
    measurer, seen = fake_measurer({0: 0.01, 1: 0.02, 2: 0.03}, base=0.5)
    network_latency(net, [8, 0, 16], QUICK, GRAPH, measurer)
    shipped = device_graph(extract_subnet(net, [8, 0, 16]).eval(), TINY_FEATURES, 18)
    timed = onnx.load_from_string(seen[0])
    assert [n.op_type for n in timed.graph.node] == [n.op_type for n in shipped.graph.node]
    assert timed.graph.input[0].name == "audio"  # raw audio in: the frontend is timed too
    assert {o.domain: o.version for o in timed.opset_import}[""] == 18
    assert seen[0] == shipped.SerializeToString()


def test_features_that_do_not_make_the_networks_input_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"features: make 8 mels x 101 frames, the "
                                          r"super-network takes 8 x 12"):  # fmt: skip
        DeviceGraph(TINY_FEATURES.model_copy(update={"clip_samples": 16000}), 18).check(SPACE)
    GRAPH.check(SPACE)


def test_graphs_exported_in_worker_processes_are_the_same_bytes(monkeypatch) -> None:
    net = randomized_supernet(space=SPACE)
    archs = [[8, 0, 16], [0, 16, 0], [16, 16, 16]]
    monkeypatch.setattr(lut, "PARALLEL_MIN", 2)
    steps: list[tuple[int, int]] = []
    parallel = GRAPH.onnx_many(net, archs, workers=2, progress=lambda d, n: steps.append((d, n)))
    assert parallel == [GRAPH.onnx(net, w) for w in archs]
    assert steps == [(1, 3), (2, 3), (3, 3)]


def test_plain_networks_of_other_spaces_are_timed_as_the_device_runs_them() -> None:
    """The uniform baseline's networks (every layer scaled, not sub-networks) are exported as
    device graphs and timed in one run with the super-network's two anchors."""
    net = randomized_supernet(space=SPACE)
    measurer = OnnxRuntimeMeasurer(net, QUICK, GRAPH, 1, 5)
    spaces = [scaled_space(SPACE, 1.0), scaled_space(SPACE, 0.5)]
    device, _ = fake_measurer({0: 0.01, 1: 0.01, 2: 0.01}, base=0.5)
    table = build_table(net, QUICK, STUB_GRAPH, measurer=device)
    runs = measurer.plain_latencies(table, spaces)
    assert len(runs) == 2 and all(r.raw_ms > 0 and r.run_full_ms > 0 for r in runs)
    assert set(measurer.exported) == {"plain [16, 16]", "plain [8, 8]", lut.widths_key([0] * 3),
                                      lut.widths_key(SPACE.largest())}  # fmt: skip
    torch.manual_seed(1)
    half = SubNetwork(spaces[1], spaces[1].largest())
    assert measurer.exported["plain [8, 8]"] == device_graph(half.eval(), TINY_FEATURES,
                                                             18).SerializeToString()  # fmt: skip


def test_the_table_is_fitted_to_random_networks_and_predicts_better_than_differences() -> None:
    """An additive device is recovered exactly with or without random networks; on a device
    whose layers cost more together than alone, and whose all-removed network is measured high
    (the two errors a difference table adds up), the fitted table predicts the networks it was
    not fitted to far better than the differences (layer alone - base) do."""
    entries = lut.table_entries(SPACE, 1, fit=6)
    assert [e.role for e in entries] == ["base", *["layer"] * 6, *["fit"] * 6, "full"]
    assert lut.table_entries(SPACE, 1, fit=6) == entries  # the same networks every time
    assert len({e.widths for e in entries}) == len(entries)
    assert len(lut.table_entries(SPACE, 1, fit=100)) == 27  # every network of the space, once

    def additive(w):
        return 0.5 + 0.01 * w[0] + 0.02 * w[1] + 0.03 * w[2]

    def table_of(device):  # the medians a device gives for every entry
        medians = {e.key: device(e.widths) for e in entries}
        return lut.table_from_medians(SPACE, {"name": "stub"}, medians, 1, None, fit=6)

    table = table_of(additive)
    assert table.info["fit_archs"] == 6 and table.base_ms == pytest.approx(0.5)
    assert table.layer_ms[2] == {0: 0.0, 8: pytest.approx(0.24), 16: pytest.approx(0.48)}

    def device(w):  # 0.02 ms more per pair of layers present; the base measured 0.03 ms high
        k = sum(1 for x in w if x)
        return additive(w) + 0.02 * k * (k - 1) / 2 + (0.03 if k == 0 else 0.0)

    fitted = table_of(device)
    held_out = [w for w in itertools.product([0, 8, 16], repeat=3)
                if w not in {e.widths for e in entries}]  # fmt: skip
    assert len(held_out) == 13

    def difference(w):  # the table until 2026-12-07: base + sum of (layer alone - base)
        return device((0, 0, 0)) + sum(
            device(tuple(x if j == i else 0 for j in range(3))) - device((0, 0, 0))
            for i, x in enumerate(w) if x
        )  # fmt: skip

    diff_err = max(abs(difference(w) - device(w)) / device(w) for w in held_out)
    fit_err = max(abs(fitted.predict(w) - device(w)) / device(w) for w in held_out)
    # the three-layer networks: 0.06 ms of pairs unseen and the base's 0.03 counted twice over
    assert diff_err == pytest.approx(0.12 / device((8, 8, 8)))
    assert fit_err < diff_err / 3


def test_alignment_anchors_on_the_measured_base_not_the_fitted_term() -> None:
    table = LatencyTable(SPACE, {}, 0.48, [{0: 0.0}] * 3, [[]] * 3,
                         {"full_ms": 1.5, "base_measured_ms": 0.5})  # fmt: skip
    assert table.align(0.8, 0.8, 2.0) == pytest.approx(0.5)  # the run's base -> its median
    assert table.align(2.0, 0.8, 2.0) == pytest.approx(1.5)
    del table.info["base_measured_ms"]  # a table without it (imported): its base term
    assert table.align(0.8, 0.8, 2.0) == pytest.approx(0.48)


def test_medians_that_cannot_make_a_table_are_refused() -> None:
    entries = lut.table_entries(SPACE, 1)
    medians = {e.key: 1.0 for e in entries}
    medians[entries[3].key] = 0.0
    with pytest.raises(ConfigError, match=r"non-positive median 0\.0 for \[0, 8, 0\]"):
        lut.table_from_medians(SPACE, {}, medians, 1)
    with pytest.raises(ConfigError, match="no median for"):
        lut.table_from_medians(SPACE, {}, {}, 1)
