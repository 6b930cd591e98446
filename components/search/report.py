"""The search stage's records: ``search/arch.json``, ``search/history.json`` and its metrics."""

from __future__ import annotations

from typing import Any

from components.model.space import SearchSpace, count_macs
from components.model.subnet import count_parameters
from components.search.mcd import SearchOutcome
from components.search.measure import RunLatency
from components.search.records import SearchResult, TrainedNetwork, arch_key

NAN = float("nan")
BASELINES = ("uniform", "random")
# metrics/search.json (the rest of stage_metrics goes to the details file)
HEADLINE = (
    "latency_budget_ms", "full_latency_ms", "predicted_latency_ms", "measured_latency_ms",
    "aligned_latency_ms", "measured_full_latency_ms", "lut_error_pct", "inherited_val_acc",
    "val_acc", "test_acc", "client_test_acc", "uniform_baseline_val_acc",
    "random_baseline_val_acc", "candidates_evaluated", "search_seconds", "stage_seconds",
)  # fmt: skip


def winner_figures(winner: RunLatency | None) -> dict[str, float]:
    """A winner's figures from the winners' run (NaN where nothing was measured): its own
    median (``measured_latency_ms``), that median aligned onto the table's conditions
    (``aligned_latency_ms``) and the full network's median in the same run
    (``measured_full_latency_ms``)."""
    if winner is None:
        return dict.fromkeys(("measured_latency_ms", "aligned_latency_ms",
                              "measured_full_latency_ms"), NAN)  # fmt: skip
    return {"measured_latency_ms": winner.raw_ms, "aligned_latency_ms": winner.aligned_ms,
            "measured_full_latency_ms": winner.run_full_ms}  # fmt: skip


def arch_record(
    space: SearchSpace, mcd: SearchOutcome, searched: TrainedNetwork, winner: RunLatency | None,
    budget_ms: float, device: str,
) -> dict[str, Any]:  # fmt: skip
    """``search/arch.json``: the discovered architecture and its latency figures."""
    return {
        "space": space.to_dict(),
        "widths": mcd.widths,
        "macs": count_macs(space, mcd.widths),
        "params": count_parameters(searched.model),
        "predicted_latency_ms": mcd.predicted_ms,
        **winner_figures(winner),
        "latency_budget_ms": budget_ms,
        "device": device,
    }


def history_record(
    budget_ms: float, full_ms: float, rounds: list[dict[str, Any]],
    outcomes: dict[str, SearchOutcome], quick_aligned: dict[str, float],
    winners: dict[str, RunLatency | None], trained: dict[str, TrainedNetwork],
) -> dict[str, Any]:  # fmt: skip
    """``search/history.json``: every method's candidates, the measured checks, the training.
    ``winners``: each method's winner from the winners' run, with the verdict of the budget rule
    on its median (``RunLatency.fits``) and on the upper bound (``fits_confidently``, the rule
    the checks accepted it by; null where nothing was measured)."""
    return {
        "budget_ms": budget_ms,
        "full_latency_ms": full_ms,
        "measure_rounds": rounds,
        "mcd": outcomes["mcd"].to_dict(),
        **{name: o.to_dict() for name, o in outcomes.items() if name != "mcd"},
        "quick_aligned_ms": quick_aligned,
        "winners": {
            name: {
                **winner_figures(w),
                "fits_budget": None if w is None else w.fits(budget_ms, full_ms),
                "fits_budget_confidently": (
                    None if w is None else w.fits_confidently(budget_ms, full_ms)
                ),
            }
            for name, w in winners.items()
        },
        "trained": {n: t.to_dict() for n, t in trained.items()},
    }


def candidate_rows(result: SearchResult) -> list[dict[str, Any]]:
    """Every evaluated candidate for ``dvc plots show`` (every row the same keys: where nothing
    was measured, with an imported table, ``aligned_ms`` repeats the prediction)."""
    rows = []
    for name, outcome in result.outcomes.items():
        for c in outcome.evaluated:
            key = arch_key(c.widths)
            aligned = result.quick_aligned_ms.get(key, c.predicted_ms)
            rows.append({"method": name, "widths": key, "predicted_ms": c.predicted_ms,
                         "inherited_val_acc": c.accuracy, "aligned_ms": aligned})  # fmt: skip
    return rows


def stage_metrics(
    arch: dict[str, Any], full_ms: float, lut_error: float, lut_error_source: str,
    lut_seconds: float, outcomes: dict[str, SearchOutcome], trained: dict[str, TrainedNetwork],
    winners: dict[str, RunLatency | None], supernet_seconds: float,
) -> dict[str, Any]:  # fmt: skip
    """``metrics/search.json``: ARCHITECTURE.md's keys, the baselines and the timings.
    ``lut_error_source`` (a string: the details file only) says where ``lut_error_pct`` comes
    from: "measured with the table", "imported" (the imported table's own check) or "none"."""
    mcd, searched = outcomes["mcd"], trained["mcd"]
    metrics: dict[str, Any] = {
        "latency_budget_ms": round(arch["latency_budget_ms"], 5),
        "full_latency_ms": round(full_ms, 5),
        "predicted_latency_ms": round(mcd.predicted_ms, 5),
        **{k: round(v, 5) for k, v in winner_figures(winners["mcd"]).items()},
        "lut_error_pct": round(lut_error, 3),
        "lut_error_source": lut_error_source,
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
        metrics.update(baseline_metrics(name, outcomes.get(name), trained.get(name),
                                        winners.get(name)))  # fmt: skip
    if "netadapt_v1" in outcomes:
        v1, tuned = outcomes["netadapt_v1"], trained["netadapt_v1"]
        phases = v1.iterations[0]
        metrics.update({
            "netadapt_v1_seconds": round(v1.seconds, 2),
            **{f"netadapt_v1_{k}": round(phases[k], 2) for k in
               ("pretrain_seconds", "search_seconds", "long_term_seconds", "monitor_seconds")},
            "netadapt_v1_fine_tuned_val_acc": round(v1.accuracy, 3),
            "netadapt_v1_val_acc": round(tuned.val_acc, 3),
            "netadapt_v1_test_acc": round(tuned.test_acc, 3),
            "netadapt_v1_client_test_acc": round(tuned.client_test_acc, 3),
        })  # fmt: skip
        figures = winner_figures(winners["netadapt_v1"])
        for key in ("measured_latency_ms", "aligned_latency_ms"):
            metrics[f"netadapt_v1_{key}"] = round(figures[key], 5)
    return metrics


def baseline_metrics(name: str, outcome: SearchOutcome | None, trained: TrainedNetwork | None,
                     winner: RunLatency | None) -> dict[str, Any]:  # fmt: skip
    """A baseline's keys, NaN where it did not run (the uniform multiplier with an imported
    table) or was not trained. ``*_val_acc`` is the trained network's when it was trained.
    Random search adds its inherited accuracy; the uniform baseline (no inherited weights) its
    multiplier."""
    o, t = outcome, trained
    out = {f"{name}_baseline_{k}": round(v, 5) for k, v in winner_figures(winner).items()
           if k != "measured_full_latency_ms"}  # fmt: skip
    out[f"{name}_baseline_val_acc"] = round(t.val_acc if t else o.accuracy if o else NAN, 3)
    out[f"{name}_baseline_test_acc"] = round(t.test_acc if t else NAN, 3)
    out[f"{name}_baseline_client_test_acc"] = round(t.client_test_acc if t else NAN, 3)
    if name == "uniform":
        out["uniform_baseline_multiplier"] = o.iterations[0]["multiplier"] if o else NAN
    else:
        out[f"{name}_baseline_inherited_val_acc"] = round(o.accuracy if o else NAN, 3)
    return out
