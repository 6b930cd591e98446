"""The search stage end to end on a stub device: nothing is timed, every latency is exact."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest
import torch

from components.config import params_from_dict
from components.errors import ConfigError
from components.latency import devices_dir, load_profile
from components.model.checkpoint import load_subnet_file
from components.progress import no_progress
from components.search import measure, report
from components.search import stage as search
from components.search.lut import LatencyTable
from components.search.mcd import CachedEvaluator, SearchError, SearchOutcome
from components.search.records import arch_key
from components.search.training import long_term_finetune, train_network
from components.search.uniform import scaled_space
from tests.helpers.search import LAYER_MS, StubMeasurer, additive_table, write_search_inputs
from tests.helpers.spaces import STAGE_SPACE, STAGE_SUPERNET

BUDGET_MS = 4.0
SEARCH = {"budget_ms": BUDGET_MS, "candidates": 4, "step_fraction": 0.5, "lut_check_archs": 8,
          "lut_fit_archs": 0, "train_epochs": 1, "pareto_repeats": 40}  # fmt: skip
# stage_metrics' keys (components/search/report.py), with both baselines trained, and the
# stage's own wall time
METRIC_KEYS = {
    "latency_budget_ms", "full_latency_ms", "predicted_latency_ms", "measured_latency_ms",
    "aligned_latency_ms", "measured_full_latency_ms", "lut_error_pct", "lut_error_source",
    "lut_seconds", "inherited_val_acc", "val_acc", "test_acc", "client_test_acc",
    "candidates_evaluated", "mcd_iterations", "search_seconds", "supernet_train_seconds",
    "total_search_seconds", "train_seconds", "searched_macs", "searched_params",
    *(f"{name}_baseline_{key}" for name in report.BASELINES
      for key in ("val_acc", "test_acc", "measured_latency_ms", "aligned_latency_ms",
                  "client_test_acc")),
    "random_baseline_inherited_val_acc", "uniform_baseline_multiplier",
    "stage_seconds", "devices",
}  # fmt: skip
TABLE = additive_table()  # base 1 ms; layer 0 adds 1 ms per 8 channels, layer 1 1.5 ms


def interacting(extra_ms: float) -> Callable[[Sequence[int]], float]:
    """A device that is the table, plus ``extra_ms`` where both layers are present (something
    the additive table cannot see)."""
    return lambda w: TABLE.predict(w) + (extra_ms if all(w) else 0.0)


# The fixture's device: +0.5 ms where both layers are present (the full network 6.5 ms), and in
# every run after the table's 1.2x + 0.3 ms (a drift that alignment undoes exactly).
DEVICE = interacting(0.5)


def later(ms: float) -> float:
    return 1.2 * ms + 0.3


def params(**search_overrides):
    return params_from_dict({"supernet": STAGE_SUPERNET, "search": {**SEARCH, **search_overrides}})


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("search")
    write_search_inputs(workdir)
    measurer = StubMeasurer(device=DEVICE, later=later)
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


def test_lut_error_is_the_used_tables_error_on_networks_measured_with_it(searched):
    """The check architectures are every one the table is not fitted to (the space holds three
    besides the all-removed network, the layers alone and the full network; no random fit
    networks here), measured in the table's own measurement; the error is the searched table's."""
    _, result, measurer, _ = searched
    lut = LatencyTable.load(result.out_dir / "lut.json", STAGE_SPACE)
    rows = {arch_key(r["widths"]): r for r in lut.info["check"]}
    # predicted 3.5, 5, 4.5 ms; measured 0.5 ms more each
    assert set(rows) == {"8-8", "8-16", "16-8"}
    assert rows["8-16"] == {"widths": [8, 16], "predicted_ms": 5.0, "measured_ms": 5.5,
                            "error_pct": 0.5 / 5.5 * 100}  # fmt: skip
    # errors 12.5, 9.09, 10 %: the median is 16-8's
    expected = 0.5 / 5.0 * 100
    assert lut.info["median_error_pct"] == pytest.approx(expected)
    assert result.metrics["lut_error_pct"] == round(expected, 3) == 10.0
    assert result.metrics["lut_error_source"] == "measured with the table"
    assert lut.info["full_ms"] == result.metrics["full_latency_ms"] == 6.5
    # one table measurement (with its check), nothing measured as a table afterwards
    assert measurer.calls.count("table_with") == 1 and measurer.calls[0] == "table_with"


def test_winners_report_raw_and_aligned_latency(searched):
    _, result, _, _ = searched
    arch, m = result.arch, result.metrics
    widths = arch["widths"]
    assert arch["latency_budget_ms"] == m["latency_budget_ms"] == BUDGET_MS
    assert arch["device"] == load_profile(params().search.profiles[0]).name
    # raw: the winner's own median in the winners' run; aligned: mapped through the all-removed
    # (1.2 * 1 + 0.3 = 1.5 ms) and full (1.2 * 6.5 + 0.3 = 8.1 ms) networks of that run onto the
    # table's 1 and 6.5 ms, which undoes the drift
    raw = 1.2 * DEVICE(widths) + 0.3
    aligned = 1.0 + (raw - 1.5) * (6.5 - 1.0) / (8.1 - 1.5)
    assert aligned == pytest.approx(DEVICE(widths))
    assert arch["measured_latency_ms"] == pytest.approx(raw)
    assert arch["aligned_latency_ms"] == pytest.approx(aligned)
    assert arch["measured_full_latency_ms"] == pytest.approx(8.1)
    assert m["measured_latency_ms"] == round(arch["measured_latency_ms"], 5)
    assert m["aligned_latency_ms"] == round(arch["aligned_latency_ms"], 5)
    # the rule: raw <= budget / table full * the run's raw full = 4 / 6.5 * 8.1 ms
    assert raw <= BUDGET_MS / 6.5 * 8.1
    history = json.loads((result.out_dir / "history.json").read_text())
    assert history["winners"]["mcd"]["fits_budget"] is True
    assert history["budget_ms"] == BUDGET_MS
    assert set(history) >= {"mcd", "random", "uniform", "quick_aligned_ms", "winners",
                            "trained"}  # fmt: skip
    # the quick timings (the plot's) are aligned too
    assert history["quick_aligned_ms"][arch_key(widths)] == pytest.approx(DEVICE(widths))


def test_the_uniform_baseline_is_a_scaled_plain_network_judged_by_the_same_rule(searched):
    """STAGE_SPACE (16 + 16 channels) has one multiplier network below full: 1/2 (MobileNet's
    rounding keeps 16 channels down to 9/16: 8 would be more than 10% below 9). The stub times
    a plain network at its share of the full network's channels: the 8-channel one measures
    1.2 * 3.25 + 0.3 = 4.2 ms, within 4 / 6.5 of the full network's 8.1 ms: it is the baseline,
    every layer at 8 channels (stem and transition too), trained from scratch."""
    _, result, measurer, _ = searched
    uniform = result.outcomes["uniform"]
    assert uniform.space is not None and [s.channels for s in uniform.space.stages] == [8, 8]
    assert uniform.widths == [8, 8] and uniform.evaluated == []
    # the narrowest alone, then every multiplier in one run
    assert measurer.calls.count("plain latencies") == 2
    m = result.metrics
    assert m["uniform_baseline_multiplier"] == 0.5
    assert m["uniform_baseline_measured_latency_ms"] == round(4.2, 5)
    assert m["uniform_baseline_aligned_latency_ms"] == pytest.approx(3.25)
    trained = result.trained["uniform"]
    assert trained.model.space == uniform.space and trained.model.stem[0].out_channels == 8
    assert m["uniform_baseline_val_acc"] == round(trained.val_acc, 3)
    assert result.history["uniform"]["stage_channels"] == [8, 8]


def test_random_search_gets_the_same_measured_check(searched):
    _, result, _, _ = searched
    random = result.outcomes["random"]
    # as many as MCD, unless fewer fit: six architectures are predicted within 4 ms
    assert random.candidates_evaluated == min(result.outcomes["mcd"].candidates_evaluated, 6)
    rounds = random.iterations
    assert rounds and all(set(r) >= {"measured_ms", "fits"} for r in rounds)
    assert rounds[-1]["fits"] is True and rounds[-1]["widths"] == random.widths
    assert all(c.predicted_ms <= BUDGET_MS for c in random.evaluated)


def test_a_random_winner_that_misses_on_the_device_is_replaced_from_its_own_pool(tmp_path):
    """The device is the table plus 0.5 ms where both layers are present, and 1.2x + 0.3 ms in
    every later run: [8, 8] and [0, 16] (4 ms predicted, 1 + 3 = 4 aligned; [8, 8] 4.0 + 0.5)
    miss the rule, so random search takes the best of its own candidates under the smaller
    budget, and evaluates nothing new."""
    measurer = StubMeasurer(device=DEVICE, later=later)
    lut, _ = measurer.table_with([])
    choices = [STAGE_SPACE.width_choices(i) for i in range(STAGE_SPACE.num_layers)]
    scorer = CachedEvaluator(Favours([0, 16]))
    outcome, rounds = search.random_until_measured(
        params(), choices, lut, scorer, BUDGET_MS, np.random.default_rng(0), measurer, 9
    )
    first = rounds[0]
    assert first["widths"] == [0, 16] and first["fits"] is False
    assert len(rounds) == 2 and rounds[1]["fits"] is True
    assert outcome.widths == rounds[1]["widths"] != [0, 16]
    assert len(scorer.cache) == outcome.candidates_evaluated


def test_metrics_have_the_documented_keys(searched):
    _, result, _, reports = searched
    m = result.metrics
    assert set(m) == METRIC_KEYS
    assert set(report.HEADLINE) <= METRIC_KEYS
    assert m["supernet_train_seconds"] == 1.5
    assert m["candidates_evaluated"] == result.outcomes["mcd"].candidates_evaluated
    assert m["mcd_iterations"] == len(result.outcomes["mcd"].iterations) >= 1
    assert {phase for phase, *_ in reports} >= {"latency table", "MCD iteration", "training"}


class Favours:
    """Accuracy: 100 for ``favourite``, otherwise the total width / 100 (never as good)."""

    def __init__(self, favourite: Sequence[int]) -> None:
        self.favourite = list(favourite)

    def evaluate(self, widths: Sequence[int]) -> float:
        return 100.0 if list(widths) == self.favourite else sum(widths) / 100


def search_on(measurer: StubMeasurer, favourite: Sequence[int], tmp_path):
    lut, _ = measurer.table_with([])
    choices = [STAGE_SPACE.width_choices(i) for i in range(STAGE_SPACE.num_layers)]
    return search.search_until_measured(
        params(candidates=16), choices, lut, CachedEvaluator(Favours(favourite)), BUDGET_MS,
        np.random.default_rng(1), measurer, tmp_path / "history.json", no_progress,
    )  # fmt: skip


def test_a_uniform_drift_after_the_table_is_not_a_miss(tmp_path):
    """In the winners' run the device is 1.25x slower than in the table's: the winner measures
    5 ms, above the 4 ms budget, but the full network measures 7.5 ms, so it is within 4 / 6 of
    it; no second search."""
    measurer = StubMeasurer(later=lambda ms: 1.25 * ms)
    outcome, search_budget, rounds = search_on(measurer, [0, 16], tmp_path)
    assert outcome.widths == [0, 16] and search_budget == BUDGET_MS
    assert rounds == [{"search_budget_ms": BUDGET_MS, "widths": [0, 16], "predicted_ms": 4.0,
                       "measured_ms": 5.0, "aligned_ms": 4.0, "measured_full_ms": 7.5,
                       "run_budget_ms": 5.0, "ratio_high": 5.0 / 7.5, "fits": True,
                       "fits_confidently": True}]  # fmt: skip


def test_a_median_in_budget_is_not_enough_where_the_run_is_uncertain(tmp_path):
    """The device is the table (the full network 6 ms) and every later run knows its medians to
    +-1%. The favourite [0, 16] measures exactly 4 ms: its median fits 4 / 6 of the full
    network, but the upper bound of the ratio (4.04 / 5.94) does not, so the stage searches
    again for 4 * (4 / 6) / (4.04 / 5.94) * 0.99 ms, and keeps a winner that fits with its
    interval."""
    measurer = StubMeasurer(uncertainty=0.01)
    outcome, search_budget, rounds = search_on(measurer, [0, 16], tmp_path)
    first, second = rounds
    assert first["widths"] == [0, 16] and first["measured_ms"] == 4.0
    assert first["fits"] is True and first["fits_confidently"] is False
    assert first["ratio_high"] == pytest.approx(4.04 / 5.94)
    expected = 4.0 * (4.0 / 6.0) / (4.04 / 5.94) * 0.99
    assert search_budget == second["search_budget_ms"] == pytest.approx(expected)
    assert second["fits_confidently"] is True and outcome.widths == second["widths"]
    assert second["predicted_ms"] <= expected and second["ratio_high"] <= 4.0 / 6.0


def test_a_re_search_the_table_cannot_meet_keeps_the_last_winner_instead_of_failing():
    """The winner [0, 16] measures 14 ms after the table's run (a table far off this device, or
    a noisy host) and misses; the re-search finds nothing the table predicts under what the
    check asks for. The winner is kept, reported as missing the budget with the reason, and the
    stage goes on; a first search that fails still fails."""
    measurer = StubMeasurer(later=lambda ms: ms if ms >= 6.5 else ms + 10.0)
    lut, _ = measurer.table_with([])
    asked: list[float] = []

    def search_for(budget: float, previous: SearchOutcome | None) -> SearchOutcome:
        asked.append(budget)
        if previous is not None:
            raise SearchError(f"no architecture in the space meets {budget:.4f} ms")
        return SearchOutcome("mcd", [0, 16], 4.0, 0.5, [], 0.0, [])

    outcomes, search_budget, rounds = search.until_measured(search_for, lut, BUDGET_MS,
                                                            measurer, 3)  # fmt: skip
    assert [o.widths for o in outcomes] == [r["widths"] for r in rounds] == [[0, 16]]
    assert rounds[0]["fits"] is False and search_budget == BUDGET_MS
    assert len(asked) == 2 and asked[1] < BUDGET_MS
    assert rounds[0]["re_search_stopped"] == f"no architecture in the space meets {asked[1]:.4f} ms"
    with pytest.raises(SearchError, match="no architecture"):
        search.until_measured(lambda b, p: search_for(b, outcomes[0]), lut, BUDGET_MS, measurer, 3)


def test_within_budget_aligned_but_not_measured_is_searched_again(tmp_path):
    """[0, 16] is exact in the table (4 ms, aligned 4 ms: within the budget), but in the
    winners' run it measures 1.2 * 4 + 0.3 = 5.1 ms while the full network measures
    1.2 * 6.5 + 0.3 = 8.1 ms: above 4 / 6.5 of it (4.985 ms). The rule says it misses, so the
    stage searches again for 4 * 4.985 / 5.1 * 0.99 ms from it, and [0, 8] (3.3 ms) fits."""
    measurer = StubMeasurer(device=interacting(0.5), later=later)
    outcome, search_budget, rounds = search_on(measurer, [0, 16], tmp_path)
    run_budget = BUDGET_MS / 6.5 * 8.1
    first, second = rounds
    assert first["widths"] == [0, 16] and first["fits"] is False
    assert first["measured_ms"] == pytest.approx(5.1)
    assert first["aligned_ms"] == pytest.approx(4.0) and first["aligned_ms"] <= BUDGET_MS
    assert first["measured_full_ms"] == pytest.approx(8.1)
    assert first["run_budget_ms"] == pytest.approx(run_budget)
    assert (
        search_budget == second["search_budget_ms"] == pytest.approx(4.0 * run_budget / 5.1 * 0.99)
    )
    assert outcome.widths == second["widths"] == [0, 8] and second["fits"] is True
    assert second["measured_ms"] == pytest.approx(1.2 * 2.5 + 0.3)


def test_within_budget_measured_but_not_aligned_is_kept(tmp_path):
    """[8, 8] is predicted 3.5 ms but takes 4.1 ms on the device (aligned: above the budget).
    In the winners' run the device is 0.9x - 0.3 ms: [8, 8] measures 3.39 ms, the all-removed
    network 0.6 and the full one (6.6 ms in the table's run) 5.64 ms, so 4 / 6.6 of it is
    3.418 ms: the rule says it fits, and there is no second search."""
    measurer = StubMeasurer(device=interacting(0.6), later=lambda ms: 0.9 * ms - 0.3)
    outcome, _, rounds = search_on(measurer, [8, 8], tmp_path)
    (only,) = rounds
    assert outcome.widths == only["widths"] == [8, 8] and only["fits"] is True
    assert only["measured_ms"] == pytest.approx(0.9 * 4.1 - 0.3)
    aligned = 1.0 + (3.39 - 0.6) * (6.6 - 1.0) / (5.64 - 0.6)
    assert only["aligned_ms"] == pytest.approx(aligned) == pytest.approx(4.1)
    assert only["aligned_ms"] > BUDGET_MS
    assert only["run_budget_ms"] == pytest.approx(BUDGET_MS / 6.6 * 5.64)


def test_an_imported_table_reports_its_own_error_and_measures_nothing(tmp_path):
    write_search_inputs(tmp_path)
    phone = additive_table()
    phone.info["median_error_pct"] = 2.5
    phone.save(tmp_path / "phone.json")
    result = search.run(params(lut_import="phone.json", train_baselines=False), tmp_path)
    m = result.metrics
    assert m["lut_error_pct"] == 2.5 and m["lut_error_source"] == "imported"
    for key in (
        "measured_latency_ms",
        "aligned_latency_ms",
        "measured_full_latency_ms",
        "uniform_baseline_measured_latency_ms",
        "uniform_baseline_aligned_latency_ms",
    ):
        assert math.isnan(m[key]), key
    assert result.history["winners"]["mcd"]["fits_budget"] is None
    assert math.isnan(measure.imported_error(additive_table()))  # a table with no check: NaN


@pytest.mark.timeout(1)  # a fixed draw returns in milliseconds
def test_the_check_draw_stops_when_the_space_has_too_few_architectures():
    choices = [STAGE_SPACE.width_choices(i) for i in range(STAGE_SPACE.num_layers)]
    fitted = measure.fitted_networks(STAGE_SPACE, 1)
    assert fitted == {"0-0", "8-0", "16-0", "0-8", "0-16", "16-16"}
    drawn = measure.draw_check_archs(choices, 8, 0, fitted)
    keys = [arch_key(w) for w in drawn]
    assert len(set(keys)) == len(keys) == 3  # every architecture outside the table's own, once
    assert set(keys) == {"8-8", "8-16", "16-8"}
    # the table's random networks are not checks either
    with_fit = measure.fitted_networks(STAGE_SPACE, 1, fit=2)
    assert len(with_fit) == 8 and fitted < with_fit
    assert len(measure.draw_check_archs(choices, 8, 0, with_fit)) == 1
    assert measure.draw_check_archs(choices, 2, 0, fitted) == drawn[:2]  # the same seed, in order
    assert measure.draw_check_archs(choices, 0, 0, fitted) == []


def test_without_pareto_repeats_no_candidate_is_timed_and_the_plot_shows_predictions(tmp_path):
    write_search_inputs(tmp_path)
    measurer = StubMeasurer(device=DEVICE, later=later)
    result = search.run(params(pareto_repeats=0), tmp_path, measurer=measurer)
    assert "quick latencies" not in measurer.calls and "latencies" in measurer.calls
    assert result.quick_aligned_ms == {}
    rows = report.candidate_rows(result)  # the plot's rows (dvc plots)
    assert rows and all(r["aligned_ms"] == r["predicted_ms"] for r in rows)
    assert (result.out_dir / "pareto.png").stat().st_size > 0


def test_netadapt_v1_is_pretrained_adapted_checked_long_term_tuned_and_scored(tmp_path):
    write_search_inputs(tmp_path)
    measurer = StubMeasurer(device=DEVICE, later=later)
    result = search.run(params(netadapt_v1=True, v1_finetune_steps=2, v1_step_fraction=0.25,
                               train_baselines=False), tmp_path, measurer=measurer)  # fmt: skip
    v1, tuned, m = result.outcomes["netadapt_v1"], result.trained["netadapt_v1"], result.metrics
    phases = v1.iterations[0]
    assert set(phases) == {"pretrain_seconds", "search_seconds", "long_term_seconds",
                           "monitor_seconds", "measure_rounds"}  # fmt: skip
    assert phases["measure_rounds"][-1]["fits"] is True  # the same measured check as MCD
    assert tuned.widths == v1.widths and tuned.model.widths == v1.widths
    assert len(tuned.history) == params().search.train_epochs  # long-term fine-tuning epochs
    assert m["netadapt_v1_val_acc"] == round(tuned.val_acc, 3)
    assert m["netadapt_v1_fine_tuned_val_acc"] == round(v1.accuracy, 3)
    assert {
        "netadapt_v1_test_acc",
        "netadapt_v1_client_test_acc",
        "netadapt_v1_pretrain_seconds",
        "netadapt_v1_long_term_seconds",
        "netadapt_v1_measured_latency_ms",
    } <= set(m)
    assert result.history["winners"]["netadapt_v1"]["fits_budget"] is True
    assert "uniform" not in result.trained and "random" not in result.trained


def test_a_uniform_multiplier_that_never_fits_is_reported_missing_not_fatal(tmp_path):
    write_search_inputs(tmp_path)
    measurer = StubMeasurer(device=DEVICE, later=later, plain=lambda space: 100.0)
    result = search.run(params(pareto_repeats=0), tmp_path, measurer=measurer)
    assert "uniform" not in result.outcomes and "uniform" not in result.trained
    assert "no uniform width multiplier meets" in result.history["missing_baselines"]["uniform"]
    m = result.metrics
    assert set(m) == METRIC_KEYS
    assert math.isnan(m["uniform_baseline_val_acc"])
    assert math.isnan(m["uniform_baseline_multiplier"])
    assert "random" in result.trained  # the other baselines go on


def test_random_search_draws_again_when_none_of_its_candidates_is_under_the_smaller_budget(
    tmp_path,
):
    """Every network but the all-removed one takes 3 ms more on the device than the table says,
    so everything random search drew (one candidate) misses, and none of its candidates is
    under the smaller budget: it draws anew under it, and the all-removed network is what fits."""
    measurer = StubMeasurer(device=lambda w: TABLE.predict(w) + (0.0 if not any(w) else 3.0))
    lut, _ = measurer.table_with([])
    choices = [STAGE_SPACE.width_choices(i) for i in range(STAGE_SPACE.num_layers)]
    scorer = CachedEvaluator(Favours([16, 16]))
    outcome, rounds = search.random_until_measured(
        params(), choices, lut, scorer, BUDGET_MS, np.random.default_rng(0), measurer, 1
    )
    assert rounds[0]["widths"] != [0, 0] and rounds[0]["fits"] is False
    assert rounds[-1]["fits"] is True and outcome.widths == [0, 0]
    assert outcome.candidates_evaluated == len(scorer.cache) == 2


def untimed(record):
    """A record without its wall times (``*seconds`` keys, at any depth)."""
    if isinstance(record, dict):
        return {k: untimed(v) for k, v in record.items() if not k.endswith("seconds")}
    if isinstance(record, list):
        return [untimed(v) for v in record]
    return record


def test_a_fleet_searches_the_one_supernet_once_per_device(tmp_path):
    """Two devices: the primary as in the other tests, and one whose layers cost the other way
    round (layer 0 the dearer). Each gets its own table, budget (a fraction of its own full
    network), check, winner, trained network and files, every candidate its MCD scored on its
    record (scores reused from the other device included); NetAdapt v1 pre-trains once and
    adapts per device; the primary's search is the one it would be alone."""
    swapped = additive_table(layer_ms=LAYER_MS[::-1])  # full network 6 ms
    seen: list[str] = []

    def fleet_measurer(profile):
        seen.append(profile.name)
        return StubMeasurer(table=swapped)

    def run(work, profiles, progress=no_progress):
        write_search_inputs(work)
        return search.run(
            params(profiles=profiles, budget_ms=None, budget_fraction=0.7, netadapt_v1=True,
                   v1_finetune_steps=2, v1_step_fraction=0.25),
            work, progress=progress, measurer=StubMeasurer(device=DEVICE, later=later),
            fleet_measurer=fleet_measurer,
        )  # fmt: skip

    reports: list[tuple] = []
    result = run(tmp_path / "fleet", ["cpu-1thread-quick", "cpu-2threads"],
                 lambda *r: reports.append(r))  # fmt: skip
    alone = run(tmp_path / "alone", ["cpu-1thread-quick"])
    assert seen == ["cpu-2threads"]
    for name in ("mcd", "random", "netadapt_v1"):
        assert untimed(result.outcomes[name].to_dict()) == untimed(alone.outcomes[name].to_dict())
    assert result.arch == alone.arch and result.arch["device"] == "cpu-1thread-quick"
    other = result.devices["cpu-2threads"]
    out = tmp_path / "fleet/search/devices/cpu-2threads"
    assert other.out_dir == out and other.model_path == out / "model.pt"
    assert sorted(p.name for p in out.iterdir()) == [
        "arch.json", "history.json", "lut.json", "model.pt", "pareto.png"
    ]  # fmt: skip
    arch = json.loads((out / "arch.json").read_text())
    lut = LatencyTable.load(out / "lut.json", STAGE_SPACE)
    assert arch["device"] == "cpu-2threads" and lut.info["full_ms"] == 6.0
    assert arch["latency_budget_ms"] == pytest.approx(0.7 * 6.0)
    assert result.arch["latency_budget_ms"] == pytest.approx(0.7 * 6.5)
    assert lut.predict(arch["widths"]) == arch["predicted_latency_ms"] <= 0.7 * 6.0
    assert other.history["winners"]["mcd"]["fits_budget"] is True
    # every proposal MCD scored on this device is on its record, once
    mcd = other.outcomes["mcd"]
    keys = [arch_key(c.widths) for c in mcd.evaluated]
    proposed = {arch_key(p["widths"]) for it in mcd.iterations for p in it["proposals"]}
    assert len(keys) == len(set(keys)) == mcd.candidates_evaluated and proposed <= set(keys)
    model, payload = load_subnet_file(out / "model.pt")
    assert model.widths == arch["widths"] and payload["arch"] == other.arch
    m = result.metrics
    assert m["devices"] == 2 and m["fleet"]["cpu-2threads"]["full_latency_ms"] == 6.0
    # the primary's network file holds the primary's figures only
    assert "fleet" not in load_subnet_file(result.model_path)[1]["metrics"]
    # NetAdapt v1: one pre-training (its epochs reported once), an adaptation per device
    v1 = other.outcomes["netadapt_v1"]
    assert lut.predict(v1.widths) <= 0.7 * 6.0
    assert sum(1 for r in reports if r[0] == "NetAdapt v1 pre-training epoch") == (
        params().supernet.epochs
    )
    assert any(r[0].startswith("cpu-2threads: NetAdapt v1 iteration") for r in reports)


def test_a_fleet_device_that_fails_leaves_the_previous_search_as_it_was(searched):
    """The second device's table cannot be measured: nothing of the stage's outputs changes,
    the primary's (already searched in this run) included."""
    workdir = searched[0]
    files = [*(workdir / "search").rglob("*"), workdir / "models/searched.pt"]
    before = {p: p.read_bytes() for p in files if p.is_file()}

    class Broken(StubMeasurer):
        def table_with(self, archs, progress=no_progress):
            raise RuntimeError("the device went away")

    with pytest.raises(RuntimeError, match="the device went away"):
        search.run(params(profiles=["cpu-1thread-quick", "cpu-2threads"], budget_ms=None),
                   workdir, measurer=StubMeasurer(device=DEVICE, later=later),
                   fleet_measurer=lambda p: Broken())  # fmt: skip
    files = [*(workdir / "search").rglob("*"), workdir / "models/searched.pt"]
    assert {p: p.read_bytes() for p in files if p.is_file()} == before
    assert not [p for p in workdir.iterdir() if p.name.startswith(".search")]


def test_a_fleet_refuses_a_budget_in_one_devices_milliseconds(tmp_path):
    write_search_inputs(tmp_path)
    with pytest.raises(ConfigError, match=r"search.budget_ms \(4.0\) is in one device's"):
        search.run(params(profiles=["cpu-1thread-quick", "cpu-2threads"]), tmp_path,
                   measurer=StubMeasurer(), fleet_measurer=lambda p: StubMeasurer())  # fmt: skip
    assert not (tmp_path / "search").exists()


@pytest.mark.parametrize("name", ["..", "two words"])
def test_a_fleet_refuses_a_device_name_that_cannot_be_a_folder(tmp_path, name):
    write_search_inputs(tmp_path)
    odd = tmp_path / "odd.yaml"
    odd.write_text((devices_dir() / "cpu-2threads.yaml").read_text().replace(
        "name: cpu-2threads", f"name: '{name}'"))  # fmt: skip
    with pytest.raises(ConfigError, match=r"odd.yaml: the profile's name .* names the device's"):
        search.run(params(profiles=["cpu-1thread-quick", str(odd)], budget_ms=None),
                   tmp_path, measurer=StubMeasurer(),
                   fleet_measurer=lambda p: StubMeasurer())  # fmt: skip
    assert not (tmp_path / "search").exists()


def test_a_fleet_refuses_two_profiles_with_one_name(tmp_path):
    write_search_inputs(tmp_path)
    twin = tmp_path / "twin.yaml"
    twin.write_text((devices_dir() / "cpu-2threads.yaml").read_text())
    with pytest.raises(ConfigError, match=r"cpu-2threads and .*twin.yaml are both named"):
        search.run(params(profiles=["cpu-2threads", str(twin)], budget_ms=None), tmp_path,
                   measurer=StubMeasurer(), fleet_measurer=lambda p: StubMeasurer())  # fmt: skip
    assert not (tmp_path / "search").exists()


def test_a_fleet_entry_that_is_a_table_measured_elsewhere_is_searched_without_measuring(tmp_path):
    """search.profiles: [a profile, phone.json]: the phone's table (written by `edgelearn probe`'s
    measure.py on a device the pipeline cannot reach) names the device and gives its profile's
    budget (a fraction of its own full network); the phone gets MCD on its table, the random
    baseline, its network trained and its files, and nothing is measured for it (its winners
    are the table's predictions)."""
    write_search_inputs(tmp_path)
    phone = additive_table(layer_ms=LAYER_MS[::-1])  # full network 6 ms
    phone.device = {"name": "pixel-7", "threads": 4, "budget": {"fraction": 0.6},
                    "execution_provider": "XnnpackExecutionProvider", "os": "android"}  # fmt: skip
    phone.save(tmp_path / "phone.json")
    measured: list[str] = []
    result = search.run(
        params(profiles=["cpu-1thread-quick", "phone.json"], budget_ms=None,
               train_baselines=False),
        tmp_path, measurer=StubMeasurer(device=DEVICE, later=later),
        fleet_measurer=lambda p: measured.append(p.name) or StubMeasurer(),
    )  # fmt: skip
    assert measured == [] and set(result.devices) == {"pixel-7"}
    other = result.devices["pixel-7"]
    out = tmp_path / "search/devices/pixel-7"
    assert sorted(p.name for p in out.iterdir()) == [
        "arch.json", "history.json", "lut.json", "model.pt", "pareto.png"
    ]  # fmt: skip
    assert other.arch["device"] == "pixel-7"
    assert other.arch["latency_budget_ms"] == pytest.approx(0.6 * 6.0)
    assert phone.predict(other.arch["widths"]) == other.arch["predicted_latency_ms"] <= 0.6 * 6.0
    assert math.isnan(other.metrics["measured_latency_ms"])
    assert other.history["winners"]["mcd"]["fits_budget"] is None
    assert "random" in other.outcomes and "uniform" not in other.outcomes  # uniform is measured
    assert LatencyTable.load(out / "lut.json", STAGE_SPACE).to_dict() == phone.to_dict()
    assert result.metrics["devices"] == 2 and result.arch["device"] == "cpu-1thread-quick"


@pytest.mark.parametrize(
    ("profiles", "lut_import", "message"),
    [
        (["cpu-1thread-quick", "gone.json"], None, r"gone.json: no such latency table"),
        (["cpu-1thread-quick", "odd.json"], None, r"odd.json: no `device` record"),
        (["cpu-1thread-quick", "other_space.json"], None, r"other_space.json: .*space"),
        (["phone.json"], "phone.json", r"search.lut_import \(phone.json\) and search.profiles'"),
    ],
)  # fmt: skip
def test_a_fleet_refuses_an_imported_table_it_cannot_use_before_any_work(
    tmp_path, profiles, lut_import, message
):
    write_search_inputs(tmp_path)
    additive_table().save(tmp_path / "phone.json")
    (tmp_path / "odd.json").write_text('{"format": "edgelearn.lut/1"}')
    data = additive_table().to_dict()
    data["space"]["stages"][0]["channels"] = 8  # a table measured for another search space
    (tmp_path / "other_space.json").write_text(json.dumps(data))
    measurer = StubMeasurer()
    with pytest.raises(ConfigError, match=message):
        search.run(params(profiles=profiles, lut_import=lut_import, budget_ms=None), tmp_path,
                   measurer=measurer, fleet_measurer=lambda p: StubMeasurer())  # fmt: skip
    assert measurer.calls == [] and not (tmp_path / "search").exists()


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_train_from_inherited_starts_the_supernets_architectures_from_its_weights(tmp_path):
    """``search.train_from: inherited``: MCD's and random search's winners are trained on from
    the super-network's weights (NetAdapt's long-term fine-tuning), the uniform baseline, another
    network, from scratch; the super-network is not touched. Training is deterministic, so each
    is compared with the training it must equal, and the two starts must differ."""
    write_search_inputs(tmp_path)
    p = params(train_from="inherited")
    inputs = search.load_inputs(p, tmp_path)
    before = _state(inputs.net)
    half = scaled_space(inputs.net.space, 0.5)
    outcomes = {
        "mcd": SearchOutcome("mcd", [16, 8], 1.0, 50.0, [], 0.0),
        "random": SearchOutcome("random", [8, 16], 1.0, 50.0, [], 0.0),
        "uniform": SearchOutcome("uniform", half.largest(), 1.0, math.nan, [], 0.0, space=half),
    }
    trained = search.train_winners(p, inputs, outcomes, no_progress)
    assert _same(_state(inputs.net), before)
    recipe = p.supernet.model_copy(update={"epochs": p.search.train_epochs})
    args = (recipe, p.base.seed, inputs.data, inputs.test, inputs.clients)
    for name in ("mcd", "random"):
        widths = outcomes[name].widths
        inherited = long_term_finetune(inputs.net, widths, *args, method=name).network
        scratch = train_network(name, widths, inputs.net, *args)
        assert trained[name].method == name
        assert _same(_state(trained[name].model), _state(inherited.model))
        assert not _same(_state(trained[name].model), _state(scratch.model))
    uniform = train_network("uniform", half.largest(), inputs.net, *args, space=half)
    assert _same(_state(trained["uniform"].model), _state(uniform.model))
    # the bench's other start: ``start`` overrides search.train_from
    other = search.train_winner(params(train_from="scratch"), inputs, "mcd", [16, 8],
                                start="inherited")  # fmt: skip
    assert _same(_state(other.model), _state(trained["mcd"].model))
    from_scratch = search.train_winners(
        params(train_from="scratch"), inputs, {"mcd": outcomes["mcd"]}, no_progress
    )
    assert _same(
        _state(from_scratch["mcd"].model),
        _state(train_network("mcd", [16, 8], inputs.net, *args).model),
    )
