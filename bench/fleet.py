"""Fleet benchmark: one super-network searched for several devices (NetAdaptV2) against NetAdapt
v1 adapting a network per device, total search time for 1, 2, 3 ... devices.

Per seed: trains the super-network, then runs the search stage once with ``search.profiles`` =
the devices and NetAdapt v1 on. Each device gets its own measured latency table, budget (its
profile's), MCD with the measured check, and the discovered network trained from scratch;
NetAdapt v1 pre-trains once and, per device, adapts a copy (same measured check) and long-term
fine-tunes it. Every device's winners are scored on the same server test and client test clips.

Search time for the first n devices, every training phase without its monitoring, the latency
tables (the same for both methods) not counted:

- NetAdaptV2 = super-network training + per device (MCD + training the discovered network; a
  network an earlier device already chose is not trained again). Inherited accuracies are the
  same on every device: later devices' MCD reuses the scores of candidates already evaluated.
- NetAdapt v1, redone per device (as the method is published: nothing of one device's run is
  reused for the next) = per device (pre-training + adaptation + long-term fine-tuning). The
  pre-training is measured once (it does not depend on the device) and counted n times.
- NetAdapt v1 with its pre-training kept across devices (a cheaper reading of v1) = pre-training
  + per device (adaptation + long-term fine-tuning).

    python -m bench.fleet [--devices cpu-1thread cpu-2threads cpu-1thread-basic]
                          [--seeds 1234 1 2] [--params params.yaml] [--name fleet]
    python -m bench.fleet --seeds 2 --append   # more seeds into the saved JSON
    python -m bench.fleet --report bench/results/fleet.json   # the tables again

Writes bench/results/<name>.json after every seed and the first seed's Pareto plot per device to
bench/results/<name>_pareto_<device>.png.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.common import RESULTS, arguments, compare, mean_spread, quiet, save, table
from bench.search import print_progress, seeded_workspace
from components.config import Params, load_params
from components.search import stage as search_stage
from components.search.figures import pareto_figure
from components.search.records import SearchResult


def device_record(result: SearchResult) -> dict[str, Any]:
    """One device's figures: budget, winners' latency and accuracy, and the phases' seconds."""
    m = result.metrics
    v1 = result.outcomes["netadapt_v1"].iterations[0]
    return {
        "device": result.arch["device"],
        "budget_ms": m["latency_budget_ms"],
        "full_ms": m["full_latency_ms"],
        "lut_error_pct": m["lut_error_pct"],
        "lut_seconds": m["lut_seconds"],
        "mcd_widths": result.arch["widths"],
        "mcd_measured_ms": m["measured_latency_ms"],
        "mcd_fits_budget": result.history["winners"]["mcd"]["fits_budget"],
        "mcd_candidates_evaluated": m["candidates_evaluated"],
        "mcd_seconds": m["search_seconds"],
        "mcd_train_seconds": m["train_seconds"],
        "mcd_test_acc": m["test_acc"],
        "mcd_client_test_acc": m["client_test_acc"],
        "v1_widths": result.outcomes["netadapt_v1"].widths,
        "v1_measured_ms": m["netadapt_v1_measured_latency_ms"],
        "v1_fits_budget": result.history["winners"]["netadapt_v1"]["fits_budget"],
        "v1_pretrain_seconds": v1["pretrain_seconds"],
        "v1_search_seconds": v1["search_seconds"],
        "v1_long_term_seconds": v1["long_term_seconds"],
        "v1_test_acc": m["netadapt_v1_test_acc"],
        "v1_client_test_acc": m["netadapt_v1_client_test_acc"],
    }


def totals(run: dict[str, Any]) -> list[dict[str, float]]:
    """Search seconds for the first n devices, n = 1 .. all (see the module's docstring)."""
    out, seen = [], set()
    v2 = run["supernet_train_seconds"]
    v1_redo = v1_kept = 0.0
    for n, d in enumerate(run["devices"], 1):
        key = str(d["mcd_widths"])
        v2 += d["mcd_seconds"] + (0.0 if key in seen else d["mcd_train_seconds"])
        seen.add(key)
        per_device = d["v1_search_seconds"] + d["v1_long_term_seconds"]
        v1_redo += d["v1_pretrain_seconds"] + per_device
        v1_kept += per_device + (d["v1_pretrain_seconds"] if n == 1 else 0.0)
        out.append({"devices": n, "v2_seconds": v2, "v1_redone_seconds": v1_redo,
                    "v1_kept_pretraining_seconds": v1_kept, "v2_over_v1_redone": v2 / v1_redo,
                    "v2_over_v1_kept": v2 / v1_kept})  # fmt: skip
    return out


def run_seed(params: Params, seed: int, first: bool, name: str) -> dict[str, Any]:
    with seeded_workspace(params, seed, "fleet") as (params, work, supernet):
        print(f"seed {seed}: searching for {len(params.search.profiles)} devices (tables, MCD, "
              "NetAdapt v1, training) ...", flush=True)  # fmt: skip
        result = search_stage.run(params, work, progress=print_progress)
        results = [result, *result.devices.values()]
        if first:
            for r in results:
                pareto_figure(r).savefig(RESULTS / f"{name}_pareto_{r.arch['device']}.png",
                                         dpi=110)  # fmt: skip
    run = {"seed": seed, "supernet_train_seconds": supernet.metrics["train_seconds"],
           "supernet_monitor_seconds": supernet.metrics["monitor_seconds"],
           "devices": [device_record(r) for r in results]}  # fmt: skip
    run["totals"] = totals(run)
    return run


def spread(values: list[float], fmt: str = ".1f") -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return mean_spread(values, fmt) if values else "-"


TARGETS = {1: 0.66, 3: 0.33}  # issue 16: V2 / v1 search time for 1 and for 3 devices


def pair(runs: list[dict[str, Any]], device: int, key: str) -> tuple[list[float], list[float]]:
    """One device's ``mcd_<key>`` and ``v1_<key>`` over the seeds."""
    return ([r["devices"][device][f"mcd_{key}"] for r in runs],
            [r["devices"][device][f"v1_{key}"] for r in runs])  # fmt: skip


def report(runs: list[dict[str, Any]], seeds: list[int]) -> None:
    """The tables of ``runs`` (as saved in the JSON)."""
    names = [d["device"] for d in runs[0]["devices"]]
    print(f"\nseeds {seeds}; devices {names}\n")

    def per(i: int, key: str, scale: float = 1.0, fmt: str = ".1f") -> str:
        return spread([r["devices"][i][key] * scale for r in runs], fmt)

    def fits(i: int, key: str) -> str:
        return f"{sum(bool(r['devices'][i][key]) for r in runs)}/{len(runs)}"

    print(table(
        ["device", "budget us", "table error %", "MCD measured us", "in budget",
         "MCD test %", "MCD client %", "v1 measured us", "in budget", "v1 test %", "v1 client %"],
        [[n, per(i, "budget_ms", 1e3), per(i, "lut_error_pct", fmt=".2f"),
          per(i, "mcd_measured_ms", 1e3), fits(i, "mcd_fits_budget"), per(i, "mcd_test_acc"),
          per(i, "mcd_client_test_acc"), per(i, "v1_measured_ms", 1e3), fits(i, "v1_fits_budget"),
          per(i, "v1_test_acc"), per(i, "v1_client_test_acc")] for i, n in enumerate(names)],
    ))  # fmt: skip
    print()
    print(table(
        ["device", "MCD s", "MCD evaluated", "train s", "v1 adaptation s", "v1 long-term s",
         "table s (not counted)"],
        [[n, per(i, "mcd_seconds"), per(i, "mcd_candidates_evaluated", fmt=".0f"),
          per(i, "mcd_train_seconds"), per(i, "v1_search_seconds"),
          per(i, "v1_long_term_seconds"), per(i, "lut_seconds")] for i, n in enumerate(names)],
    ))  # fmt: skip
    print()
    print(table(
        ["device", "test %, MCD - v1 (a tie within the spread)", "client test %, MCD - v1"],
        [[n, compare(*pair(runs, i, "test_acc")), compare(*pair(runs, i, "client_test_acc"))]
         for i, n in enumerate(names)],
    ))  # fmt: skip
    print(f"\nonce per seed: super-network training "
          f"{spread([r['supernet_train_seconds'] for r in runs])} s, NetAdapt v1 pre-training "
          f"{spread([r['devices'][0]['v1_pretrain_seconds'] for r in runs])} s\n")  # fmt: skip

    def tot(n: int, key: str, fmt: str = ".1f") -> str:
        return spread([r["totals"][n - 1][key] for r in runs], fmt)

    def target(n: int) -> str:
        limit = TARGETS.get(n)
        if limit is None:
            return "-"
        ratios = [r["totals"][n - 1]["v2_over_v1_redone"] for r in runs]
        if all(x <= limit for x in ratios):
            return f"<= {limit}: met at every seed"
        mean = sum(ratios) / len(ratios)
        return f"<= {limit}: " + ("met on the mean only" if mean <= limit else "NOT met")

    print(table(
        ["devices", "NetAdaptV2 s", "v1 redone per device s", "v1, pre-training kept s",
         "V2 / v1 redone", "target", "V2 / v1 pre-training kept"],
        [[n, tot(n, "v2_seconds"), tot(n, "v1_redone_seconds"),
          tot(n, "v1_kept_pretraining_seconds"), tot(n, "v2_over_v1_redone", ".2f"), target(n),
          tot(n, "v2_over_v1_kept", ".2f")] for n in range(1, len(names) + 1)],
    ))  # fmt: skip


def main() -> None:
    parser = arguments("bench.fleet", __doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--devices", nargs="+",
                        default=["cpu-1thread", "cpu-2threads", "cpu-1thread-basic"])  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[1234, 1, 2])
    parser.add_argument("--name", default="fleet")
    parser.add_argument("--report", type=Path, default=None,
                        help="print the tables of a saved JSON and stop")  # fmt: skip
    parser.add_argument(
        "--append",
        action="store_true",
        help="add these seeds to bench/results/<name>.json (same devices)",
    )
    args = parser.parse_args()
    if args.report is not None:
        saved = json.loads(args.report.read_text())
        report(saved["runs"], saved["seeds"])
        return
    quiet()
    params = load_params(args.params)
    update = {"profiles": args.devices, "netadapt_v1": True, "train_baselines": False,
              "lut_import": None, "budget_ms": None, "budget_fraction": None}  # fmt: skip
    params = params.model_copy(update={"search": params.search.model_copy(update=update)})
    RESULTS.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    if args.append:
        saved = json.loads((RESULTS / f"{args.name}.json").read_text())
        if saved["devices"] != args.devices:
            parser.error(f"--append: the saved runs are for {saved['devices']}")
        runs = saved["runs"]
    seeds = [r["seed"] for r in runs]
    for seed in args.seeds:  # saved after every seed: a late failure loses none
        runs.append(run_seed(params, seed, not seeds, args.name))
        seeds.append(seed)
        out = save(args.name, {"seeds": seeds, "devices": args.devices, "runs": runs})
        report(runs, seeds)
    print(f"\nsaved {out}")


if __name__ == "__main__":
    main()
