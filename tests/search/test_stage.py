"""The search stage end to end on a stub device: nothing is timed, the latency table is exact."""

from __future__ import annotations

import json

import pytest

from components.config import params_from_dict
from components.latency import load_profile
from components.model.checkpoint import load_subnet_file
from components.search import report
from components.search import stage as search
from components.search.lut import LatencyTable
from components.search.mcd import SearchOutcome
from components.search.records import arch_key
from tests.helpers.search import StubMeasurer, additive_table, write_search_inputs
from tests.helpers.spaces import STAGE_SPACE, STAGE_SUPERNET

BUDGET_MS = 4.0
SEARCH = {"budget_ms": BUDGET_MS, "candidates": 4, "step_fraction": 0.5, "lut_check_archs": 2,
          "train_epochs": 1}  # fmt: skip
# stage_metrics' keys (components/search/report.py), with both baselines trained, and the
# stage's own wall time
METRIC_KEYS = {
    "latency_budget_ms", "full_latency_ms", "predicted_latency_ms", "measured_latency_ms",
    "lut_error_pct", "lut_seconds", "inherited_val_acc", "val_acc", "test_acc", "client_test_acc",
    "candidates_evaluated", "mcd_iterations", "search_seconds", "supernet_train_seconds",
    "total_search_seconds", "train_seconds", "searched_macs", "searched_params",
    *(f"{name}_baseline_{key}" for name in report.BASELINES
      for key in ("val_acc", "inherited_val_acc", "measured_latency_ms", "client_test_acc")),
    "stage_seconds",
}  # fmt: skip


def params(**search_overrides):
    return params_from_dict({"supernet": STAGE_SUPERNET, "search": {**SEARCH, **search_overrides}})


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("search")
    write_search_inputs(workdir)
    measurer = StubMeasurer()
    reports = []
    result = search.run(params(), workdir, progress=lambda *r: reports.append(r),
                        measurer=measurer)  # fmt: skip
    return workdir, result, measurer, reports


def test_outputs_are_written(searched):
    workdir, result, _, _ = searched
    assert (
        result.out_dir == workdir / "search" and result.model_path == workdir / "models/searched.pt"
    )
    assert sorted(p.name for p in result.out_dir.iterdir()) == [
        "arch.json", "history.json", "lut.json", "pareto.png"
    ]  # fmt: skip
    assert (result.out_dir / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    arch = json.loads((result.out_dir / "arch.json").read_text())
    assert arch == json.loads(json.dumps(result.arch))
    model, payload = load_subnet_file(result.model_path)
    assert model.widths == arch["widths"] and model.space == STAGE_SPACE
    assert payload["arch"] == result.arch and payload["metrics"] == result.metrics
    lut = LatencyTable.load(result.out_dir / "lut.json", STAGE_SPACE)
    assert lut.predict(arch["widths"]) == arch["predicted_latency_ms"]
    assert lut.info["median_error_pct"] == 0.0  # the stub device is the table


def test_the_winner_meets_the_budget_on_the_device(searched):
    _, result, measurer, _ = searched
    arch, m = result.arch, result.metrics
    assert arch["latency_budget_ms"] == m["latency_budget_ms"] == BUDGET_MS
    assert arch["measured_latency_ms"] == measurer.ms(arch["widths"]) <= BUDGET_MS
    assert arch["device"] == load_profile(params().search.profile).name
    assert m["full_latency_ms"] == 6.0 and m["predicted_latency_ms"] <= BUDGET_MS
    # uniform: [16, 16] is 6 ms, [8, 8] 3.5 ms
    assert result.outcomes["uniform"].widths == [8, 8]
    assert all(c.predicted_ms <= BUDGET_MS for c in result.outcomes["random"].evaluated)
    history = json.loads((result.out_dir / "history.json").read_text())
    assert history["budget_ms"] == BUDGET_MS and len(history["measure_rounds"]) == 1
    assert set(history) >= {"mcd", "random", "uniform", "measured_ms", "winners_measured_ms",
                            "trained"}  # fmt: skip


def test_metrics_have_the_documented_keys(searched):
    _, result, _, reports = searched
    m = result.metrics
    assert set(m) == METRIC_KEYS
    assert m["lut_error_pct"] == 0.0 and m["supernet_train_seconds"] == 1.5
    assert m["candidates_evaluated"] == result.outcomes["mcd"].candidates_evaluated
    assert m["mcd_iterations"] == len(result.outcomes["mcd"].iterations) >= 1
    assert {phase for phase, *_ in reports} >= {"latency table", "MCD iteration", "training"}


def test_a_device_slower_than_its_table_is_searched_again(tmp_path):
    """The device measures 1.25x the table: MCD's first winner misses the budget, so the stage
    searches again for proportionally less until the measured figure fits."""
    write_search_inputs(tmp_path)
    measurer = StubMeasurer(slowdown=1.25)
    result = search.run(params(train_baselines=False), tmp_path, measurer=measurer)
    rounds = result.history["measure_rounds"]
    assert len(rounds) >= 2
    assert rounds[0]["measured_ms"] > BUDGET_MS >= rounds[-1]["measured_ms"]
    assert result.arch["measured_latency_ms"] == measurer.ms(result.arch["widths"]) <= BUDGET_MS
    assert set(result.trained) == {"mcd"}


@pytest.mark.timeout(1)  # a fixed check returns in milliseconds
def test_the_table_check_stops_when_the_space_has_too_few_architectures():
    lut = additive_table()
    outcomes = {
        name: SearchOutcome(name, w, lut.predict(w), 0.0, [], 0.0)
        for name, w in (("mcd", [8, 8]), ("random", [16, 0]), ("uniform", [0, 16]))
    }
    choices = [STAGE_SPACE.width_choices(i) for i in range(STAGE_SPACE.num_layers)]
    rows = search.check_table(lut, StubMeasurer(), outcomes, 8, choices, seed=0)
    keys = [arch_key(r["widths"]) for r in rows]
    assert len(set(keys)) == len(keys) == 9  # every architecture of the space, once
    assert {"8-8", "16-0", "0-16"} <= set(keys)
