"""Search benchmark: NetAdaptV2 (super-network + MCD + training the discovered network) against
the uniform width multiplier, random search and NetAdapt v1, at the stage's budget, in one run per
seed, on the same splits.

Per seed: trains the super-network with the stage's parameters (``base.seed`` = the seed), then
runs the search stage with NetAdapt v1 switched on and the baselines trained. Every method gets
the same budget, the same measured budget rule and re-search, and is scored on the same server
validation, server test and client test clips:

- MCD: the super-network's candidates (inherited weights), the winner trained for
  ``search.train_epochs`` from ``search.train_from`` (scratch or the super-network's weights), and
  again from the other start (row ``mcd_from_<other>``, not a method of its own: the same
  searched network, so search time at equal accuracy can be read for both starts);
- random search: as many evaluated candidates as MCD, the same scorer, trained alike;
- uniform: a plain network with every layer's channels scaled by one multiplier, the widest that
  fits by measurement, trained alike (it has no inherited accuracy);
- NetAdapt v1: the full network pre-trained conventionally (the super-network's epochs), adapted
  (one layer per proposal, largest-L2-norm channels, short-term fine-tuning), then long-term
  fine-tuned for ``search.train_epochs`` from its adapted weights.

Search time at equal accuracy: NetAdaptV2 = super-network training + MCD + training the
discovered network; NetAdapt v1 = pre-training + adaptation + long-term fine-tuning; every
training phase without its monitoring (scoring at epoch ends), which is reported apart.

    python -m bench.search [--seeds 1234 1 2] [--params params.yaml] [--profile cpu-1thread]
                           [--budget-fraction F] [--name search]
    python -m bench.search --report bench/results/search.json   # the tables again

Writes bench/results/<name>.json and the first seed's Pareto plot to
bench/results/<name>_pareto.png; the stage's outputs (paths.search, paths.searched) are left
alone.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import RESULTS, arguments, compare, mean_spread, quiet, save, table
from components.config import Params, load_params
from components.search import stage as search_stage
from components.search.figures import pareto_figure
from components.supernet import stage as supernet_stage

METHODS = ("mcd", "random", "uniform", "netadapt_v1")
STARTS = ("scratch", "inherited")


def other_start(params: Params) -> str:
    """The start of the discovered network's training that the stage did not use."""
    return STARTS[1 - STARTS.index(params.search.train_from)]


@contextmanager
def seeded_workspace(params: Params, seed: int, bench: str) -> Iterator[tuple[Params, Path, Any]]:
    """A scratch workspace for one seed: ``params`` with ``base.seed`` = ``seed``, the prepared
    data (and an imported table) linked in, and the super-network trained there. Yields the
    params, the workspace and the super-network stage's result; removed afterwards."""
    params = params.model_copy(update={"base": params.base.model_copy(update={"seed": seed})})
    root = Path.cwd()
    with tempfile.TemporaryDirectory(prefix=f"bench-{bench}-") as tmp:
        work = Path(tmp)
        for rel in (params.paths.prepared, params.search.lut_import):
            if rel is None or Path(rel).is_absolute():
                continue
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).symlink_to((root / rel).resolve())
        print(f"seed {seed}: training the super-network ({params.supernet.epochs} epochs) ...",
              flush=True)  # fmt: skip
        yield params, work, supernet_stage.run(params, work)


def print_progress(
    phase: str, done: int, total: int, figures: Mapping[str, float] | None = None
) -> None:
    """A line per finished phase (and per open-ended step)."""
    if not total or done == total:
        print(f"  {phase}: {done}" + (f"/{total}" if total else ""), flush=True)


def run_seed(params: Params, seed: int, first: bool, pareto: Path) -> dict[str, Any]:
    """One seed: the super-network and the search stage in a scratch workspace."""
    with seeded_workspace(params, seed, "search") as (params, work, supernet):
        print(f"seed {seed}: searching (table, MCD, baselines, NetAdapt v1, training) ...",
              flush=True)  # fmt: skip
        t0 = time.perf_counter()
        result = search_stage.run(params, work, progress=print_progress)
        search_wall = time.perf_counter() - t0
        if first:
            pareto.parent.mkdir(parents=True, exist_ok=True)
            pareto_figure(result).savefig(pareto, dpi=110)
        other = other_start(params)
        print(f"seed {seed}: training MCD's winner again, from {other} ...", flush=True)
        again = search_stage.train_winner(
            params,
            search_stage.load_inputs(params, work),
            "mcd",
            result.outcomes["mcd"].widths,
            start=other,
        )
    m, h = result.metrics, result.history
    methods: dict[str, Any] = {}
    for name, o in result.outcomes.items():
        t, w = result.trained.get(name), h["winners"][name]
        methods[name] = {
            "widths": o.widths,
            "stage_channels": [s.channels for s in (o.space or result.lut.space).stages],
            "predicted_ms": o.predicted_ms,
            "measured_ms": w["measured_latency_ms"],
            "aligned_ms": w["aligned_latency_ms"],
            "measured_full_ms": w["measured_full_latency_ms"],
            "fits_budget": w["fits_budget"],
            "fits_budget_confidently": w["fits_budget_confidently"],
            "inherited_val_acc": o.accuracy,
            "val_acc": t.val_acc if t else math.nan,
            "test_acc": t.test_acc if t else math.nan,
            "client_test_acc": t.client_test_acc if t else math.nan,
            "candidates_evaluated": o.candidates_evaluated,
            "search_seconds": o.seconds,
            "train_seconds": t.seconds if t else math.nan,
        }
    methods["mcd"]["train_from"] = params.search.train_from
    methods[f"mcd_from_{other}"] = {**methods["mcd"], "train_from": other,
                                    "val_acc": again.val_acc, "test_acc": again.test_acc,
                                    "client_test_acc": again.client_test_acc,
                                    "train_seconds": again.seconds}  # fmt: skip
    v1 = result.outcomes["netadapt_v1"].iterations[0]
    times = {
        "supernet_train_seconds": supernet.metrics["train_seconds"],
        "supernet_monitor_seconds": supernet.metrics["monitor_seconds"],
        "lut_seconds": m["lut_seconds"],
        "mcd_seconds": m["search_seconds"],
        "mcd_train_seconds": m["train_seconds"],
        "v1_pretrain_seconds": v1["pretrain_seconds"],
        "v1_search_seconds": v1["search_seconds"],
        "v1_long_term_seconds": v1["long_term_seconds"],
        "v1_monitor_seconds": v1["monitor_seconds"],
        "search_stage_wall_seconds": search_wall,
    }
    times["v2_total_seconds"] = (times["supernet_train_seconds"] + times["mcd_seconds"]
                                 + times["mcd_train_seconds"])  # fmt: skip
    times["v1_total_seconds"] = (times["v1_pretrain_seconds"] + times["v1_search_seconds"]
                                 + times["v1_long_term_seconds"])  # fmt: skip
    times[f"mcd_from_{other}_train_seconds"] = again.seconds
    times[f"v2_from_{other}_total_seconds"] = (
        times["v2_total_seconds"] - times["mcd_train_seconds"] + again.seconds
    )
    return {"seed": seed, "budget_ms": m["latency_budget_ms"], "full_ms": m["full_latency_ms"],
            "lut_error_pct": m["lut_error_pct"], "uniform_multiplier":
            m.get("uniform_baseline_multiplier"), "methods": methods, "times": times,
            "metrics": m, "supernet": supernet.metrics,
            "mcd_measure_rounds": h["measure_rounds"]}  # fmt: skip


def spread(runs: list[dict[str, Any]], get: Any, fmt: str = ".1f") -> str:
    values = [get(r) for r in runs]
    values = [v for v in values if v is not None and not math.isnan(v)]
    return mean_spread(values, fmt) if values else "-"


def verdict(runs: list[dict[str, Any]], a: str, b: str, key: str) -> str:
    """``a`` against ``b`` on ``key`` (``bench.common.compare``)."""
    return compare([r["methods"][a][key] for r in runs], [r["methods"][b][key] for r in runs])


def main() -> None:
    parser = arguments("bench.search", __doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--profile", default=None, help="device profile (default: params)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1234, 1, 2])
    parser.add_argument("--name", default="search")
    parser.add_argument("--budget-fraction", type=float, default=None,
                        help="budget as a fraction of the full network (default: the "
                             "profile's)")  # fmt: skip
    parser.add_argument("--report", type=Path, default=None,
                        help="print the tables of a saved JSON and stop")  # fmt: skip
    args = parser.parse_args()
    params = load_params(args.params)
    if args.report is not None:
        saved = json.loads(args.report.read_text())
        report(saved["runs"], params.search.profiles[0], saved["seeds"])
        return
    quiet()
    update: dict[str, Any] = {"netadapt_v1": True, "train_baselines": True}
    update["profiles"] = [args.profile] if args.profile else params.search.profiles[:1]
    if args.budget_fraction is not None:
        update.update(budget_fraction=args.budget_fraction, budget_ms=None)
    params = params.model_copy(update={"search": params.search.model_copy(update=update)})
    pareto = RESULTS / f"{args.name}_pareto.png"
    runs: list[dict[str, Any]] = []
    for i, seed in enumerate(args.seeds):  # saved after every seed: a late failure loses none
        runs.append(run_seed(params, seed, i == 0, pareto))
        out = save(args.name, {"seeds": args.seeds[: i + 1],
                               "budget_fraction": args.budget_fraction, "runs": runs})  # fmt: skip
    report(runs, params.search.profiles[0], args.seeds)
    print(f"\nsaved {out} and {pareto}")


def report(runs: list[dict[str, Any]], profile: str, seeds: list[int]) -> None:
    """The tables of ``runs`` (as saved in the JSON; files from before ``mcd_from_*`` have no
    second MCD row)."""

    print(f"\nprofile {profile}; budget "
          f"{spread(runs, lambda r: r['budget_ms'] * 1e3)} us of the full network's "
          f"{spread(runs, lambda r: r['full_ms'] * 1e3)} us (end to end, batch 1); table error "
          f"{spread(runs, lambda r: r['lut_error_pct'], '.2f')}%; seeds {seeds}\n"
          )  # fmt: skip
    starts = {r["methods"]["mcd"].get("train_from", "scratch") for r in runs}
    extra = [f"mcd_from_{s}" for s in STARTS if all(f"mcd_from_{s}" in r["methods"] for r in runs)]
    mcds = ["mcd", *extra]
    rows = []
    for name in (*METHODS, *extra):
        if any(name not in r["methods"] for r in runs):
            rows.append([name, "no network meets the budget in some seed (see the JSON)"]
                        + [""] * 7)  # fmt: skip
            continue

        def get(key: str, scale: float = 1.0, name: str = name) -> Any:
            return lambda run: run["methods"][name][key] * scale

        fits = sum(bool(r["methods"][name]["fits_budget"]) for r in runs)
        sure = sum(bool(r["methods"][name].get("fits_budget_confidently")) for r in runs)
        label = f"mcd (from {'/'.join(sorted(starts))})" if name == "mcd" else name
        rows.append([
            label, spread(runs, get("measured_ms", 1e3)), spread(runs, get("aligned_ms", 1e3)),
            f"{fits}/{len(runs)} ({sure})", spread(runs, get("inherited_val_acc")),
            spread(runs, get("val_acc")), spread(runs, get("test_acc")),
            spread(runs, get("client_test_acc")), spread(runs, get("candidates_evaluated"), ".0f"),
        ])  # fmt: skip
    print(table(["method", "measured us", "aligned us", "in budget (with CI)",
                 "inherited / fine-tuned val %", "trained val %", "trained test %",
                 "trained client-test %", "evaluated"], rows))  # fmt: skip
    print()
    print(table(["against", "test (points)", "client test (points)"],
                [[f"{m} - {b}", verdict(runs, m, b, "test_acc"),
                  verdict(runs, m, b, "client_test_acc")]
                 for m in mcds for b in ("random", "uniform", "netadapt_v1")
                 if all(b in r["methods"] for r in runs)]))  # fmt: skip

    def t(key: str) -> str:
        return (
            spread(runs, lambda r: r["times"][key]) if all(key in r["times"] for r in runs) else "-"
        )

    v2 = [("NetAdaptV2", "mcd_train_seconds", "v2_total_seconds", "mcd")] + [
        (f"NetAdaptV2, {m[4:].replace('_', ' ')}", f"{m}_train_seconds",
         f"v2_{m[4:]}_total_seconds", m) for m in extra]  # fmt: skip
    print()
    print(table(["search time (s), monitoring excluded", *(c[0] for c in v2), "NetAdapt v1"], [
        ["train the network searched from (super-network / pre-training)",
         *(t("supernet_train_seconds") for _ in v2), t("v1_pretrain_seconds")],
        ["search (MCD / adaptation with short-term fine-tuning)", *(t("mcd_seconds") for _ in v2),
         t("v1_search_seconds")],
        ["train the result (V2 as named / v1 long-term fine-tuning)", *(t(c[1]) for c in v2),
         t("v1_long_term_seconds")],
        ["total", *(t(c[2]) for c in v2), t("v1_total_seconds")],
        ["monitoring (excluded above)", *(t("supernet_monitor_seconds") for _ in v2),
         t("v1_monitor_seconds")],
        ["test accuracy of the result (%)",
         *(spread(runs, lambda r, m=c[3]: r["methods"][m]["test_acc"]) for c in v2),
         spread(runs, lambda r: r["methods"]["netadapt_v1"]["test_acc"])],
        ["client test accuracy of the result (%)",
         *(spread(runs, lambda r, m=c[3]: r["methods"][m]["client_test_acc"]) for c in v2),
         spread(runs, lambda r: r["methods"]["netadapt_v1"]["client_test_acc"])],
    ]))  # fmt: skip
    print()
    for label, _, total, _ in v2:
        ratio = [r["times"][total] / r["times"]["v1_total_seconds"] for r in runs]
        print(
            f"{label} / NetAdapt v1 total time: {mean_spread(ratio, '.3f')} "
            f"(per seed {', '.join(f'{x:.3f}' for x in ratio)})"
        )
    print(f"(both share the latency table: {t('lut_seconds')} s, not counted)")


if __name__ == "__main__":
    main()
