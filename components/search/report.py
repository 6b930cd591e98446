"""The search stage's records: ``search/arch.json``, ``search/history.json`` and its metrics."""

from __future__ import annotations

from typing import Any

from components.model.space import SearchSpace, count_macs
from components.model.subnet import count_parameters
from components.search.mcd import SearchOutcome
from components.search.records import SearchResult, TrainedNetwork, arch_key

BASELINES = ("uniform", "random")
# metrics/search.json (the rest of stage_metrics goes to the details file)
HEADLINE = (
    "latency_budget_ms", "predicted_latency_ms", "measured_latency_ms", "lut_error_pct",
    "inherited_val_acc", "val_acc", "test_acc", "client_test_acc", "uniform_baseline_val_acc",
    "random_baseline_val_acc", "candidates_evaluated", "search_seconds", "stage_seconds",
)  # fmt: skip


def arch_record(space: SearchSpace, mcd: SearchOutcome, searched: TrainedNetwork,
                measured_ms: float, budget_ms: float, device: str) -> dict[str, Any]:  # fmt: skip
    """``search/arch.json``: the discovered architecture and its latency figures."""
    return {
        "space": space.to_dict(),
        "widths": mcd.widths,
        "macs": count_macs(space, mcd.widths),
        "params": count_parameters(searched.model),
        "predicted_latency_ms": mcd.predicted_ms,
        "measured_latency_ms": measured_ms,
        "latency_budget_ms": budget_ms,
        "device": device,
    }


def history_record(
    budget_ms: float, full_ms: float, rounds: list[dict[str, Any]],
    outcomes: dict[str, SearchOutcome], measured: dict[str, float],
    winners_ms: dict[str, float], trained: dict[str, TrainedNetwork],
) -> dict[str, Any]:  # fmt: skip
    """``search/history.json``: every method's candidates, the measured checks, the training."""
    return {
        "budget_ms": budget_ms,
        "full_latency_ms": full_ms,
        "measure_rounds": rounds,
        "mcd": outcomes["mcd"].to_dict(),
        **{name: o.to_dict() for name, o in outcomes.items() if name != "mcd"},
        "measured_ms": measured,
        "winners_measured_ms": winners_ms,
        "trained": {n: t.to_dict() for n, t in trained.items()},
    }


def candidate_rows(result: SearchResult) -> list[dict[str, Any]]:
    """Every evaluated candidate for ``dvc plots show`` (every row the same keys: where nothing
    was measured, with an imported table, ``measured_ms`` repeats the prediction)."""
    rows = []
    for name, outcome in result.outcomes.items():
        for c in outcome.evaluated:
            key = arch_key(c.widths)
            rows.append({"method": name, "widths": key, "predicted_ms": c.predicted_ms,
                         "inherited_val_acc": c.accuracy,
                         "measured_ms": result.measured.get(key, c.predicted_ms)})  # fmt: skip
    return rows


def stage_metrics(
    arch: dict[str, Any], full_ms: float, lut_error: float, lut_seconds: float,
    outcomes: dict[str, SearchOutcome], trained: dict[str, TrainedNetwork],
    winners_ms: dict[str, float], supernet_seconds: float,
) -> dict[str, Any]:  # fmt: skip
    """``metrics/search.json``: ARCHITECTURE.md's keys, the baselines and the timings."""
    mcd, searched = outcomes["mcd"], trained["mcd"]
    metrics: dict[str, Any] = {
        "latency_budget_ms": round(arch["latency_budget_ms"], 5),
        "full_latency_ms": round(full_ms, 5),
        "predicted_latency_ms": round(mcd.predicted_ms, 5),
        "measured_latency_ms": round(winners_ms["mcd"], 5),
        "lut_error_pct": round(lut_error, 3),
        "lut_seconds": round(lut_seconds, 2),
        "inherited_val_acc": round(mcd.accuracy, 3),
        "val_acc": round(searched.val_acc, 3),
        "test_acc": round(searched.test_acc, 3),
        "client_test_acc": round(searched.client_test_acc, 3),
        "candidates_evaluated": mcd.candidates_evaluated,
        "mcd_iterations": len(mcd.iterations),
        "search_seconds": round(mcd.seconds, 2),
        "supernet_train_seconds": round(supernet_seconds, 2),
        "total_search_seconds": round(supernet_seconds + mcd.seconds, 2),
        "train_seconds": round(searched.seconds, 2),
        "searched_macs": arch["macs"],
        "searched_params": arch["params"],
    }
    for name in BASELINES:
        o, t = outcomes[name], trained.get(name)
        metrics[f"{name}_baseline_val_acc"] = round(t.val_acc if t else o.accuracy, 3)
        metrics[f"{name}_baseline_inherited_val_acc"] = round(o.accuracy, 3)
        metrics[f"{name}_baseline_measured_latency_ms"] = round(winners_ms[name], 5)
        if t:
            metrics[f"{name}_baseline_client_test_acc"] = round(t.client_test_acc, 3)
    if "netadapt_v1" in outcomes:
        v1 = outcomes["netadapt_v1"]
        metrics["netadapt_v1_seconds"] = round(v1.seconds, 2)
        metrics["netadapt_v1_val_acc"] = round(v1.accuracy, 3)
        metrics["netadapt_v1_measured_latency_ms"] = round(winners_ms["netadapt_v1"], 5)
    return metrics
