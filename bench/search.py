"""Search benchmark: NetAdaptV2 (super-network + MCD) against the uniform, random and NetAdapt v1
baselines at half the full network's measured latency, all in this one run.

Trains the super-network with the stage's parameters (unless --reuse-supernet), runs the search
stage with NetAdapt v1 switched on, and prints the latency, accuracy and search-time tables.
The Pareto plot goes to bench/results/search_pareto.png; the stage's outputs (paths.search,
paths.searched) are left alone.

    python -m bench.search [--params params.yaml] [--reuse-supernet] [--profile cpu-1thread]
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from pathlib import Path

from bench.common import RESULTS, arguments, quiet, save, table
from components.config import load_params
from components.search import stage as search_stage
from components.search.figures import pareto_figure
from components.supernet import stage as supernet_stage


def us(ms: float) -> str:
    return "-" if math.isnan(ms) else f"{ms * 1e3:.1f}"


def pct(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.1f}"


def main() -> None:
    parser = arguments("bench.search", __doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--profile", default=None, help="device profile (default: params)")
    parser.add_argument("--reuse-supernet", action="store_true",
                        help="use paths.supernet (models/supernet.ckpt) and its recorded "
                             "training time")  # fmt: skip
    args = parser.parse_args()
    quiet()
    params = load_params(args.params)
    update = {"netadapt_v1": True, "train_baselines": True}
    if args.profile:
        update["profile"] = args.profile
    params = params.model_copy(update={"search": params.search.model_copy(update=update)})
    root = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        work = Path(tmp)
        inputs = [params.paths.prepared, params.search.lut_import]
        if args.reuse_supernet:
            inputs.append(params.paths.supernet)
        for rel in inputs:  # the stage reads workdir / rel: link the workspace's files there
            if rel is None or Path(rel).is_absolute():
                continue
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).symlink_to((root / rel).resolve())
        if not args.reuse_supernet:
            print(f"training the super-network ({params.supernet.epochs} epochs) ...", flush=True)
            supernet_stage.run(params, work)

        def progress(
            phase: str, done: int, total: int, figures: Mapping[str, float] | None = None
        ) -> None:
            if not total or done == total:
                print(f"  {phase}: {done}" + (f"/{total}" if total else ""), flush=True)

        print("searching (latency table, MCD, baselines, NetAdapt v1, training) ...", flush=True)
        result = search_stage.run(params, work, progress=progress)
        pareto = RESULTS / "search_pareto.png"
        pareto.parent.mkdir(parents=True, exist_ok=True)
        pareto_figure(result).savefig(pareto, dpi=110)

    m, h = result.metrics, result.history
    check = result.lut.info.get("check", [])
    print(f"\nDevice profile {result.arch['device']}; full network {us(m['full_latency_ms'])} us; "
          f"budget {us(m['latency_budget_ms'])} us (batch 1)\n")  # fmt: skip
    print(table(
        ["latency table", "value"],
        [["entries measured", sum(len(g) for g in result.lut.measured_widths) + 1],
         ["build time (s)", f"{m['lut_seconds']:.1f}"],
         ["architectures checked whole", len(check)],
         ["median error (%)", f"{m['lut_error_pct']:.2f}"],
         ["max error (%)", f"{max((c['error_pct'] for c in check), default=float('nan')):.2f}"]],
    ))  # fmt: skip
    rows = []
    for name, o in result.outcomes.items():
        t = result.trained.get(name)
        rows.append([
            name, str(o.widths), us(o.predicted_ms), us(h["winners"][name]["measured_latency_ms"]),
            us(h["winners"][name]["aligned_latency_ms"]),
            "yes" if h["winners"][name]["fits_budget"] else "NO",
            pct(o.accuracy), pct(t.val_acc if t else None), pct(t.test_acc if t else None),
            pct(t.client_test_acc if t else None), o.candidates_evaluated, f"{o.seconds:.1f}",
        ])  # fmt: skip
    print()
    print(table(["method", "widths", "predicted us", "measured us", "aligned us", "in budget",
                 "inherited/fine-tuned val %", "trained val %", "trained test %",
                 "trained client-test %", "evaluated", "search s"], rows))  # fmt: skip
    v2 = m["supernet_train_seconds"] + m["search_seconds"]
    rows = [["NetAdaptV2: super-network training", f"{m['supernet_train_seconds']:.1f}"],
            ["NetAdaptV2: MCD search", f"{m['search_seconds']:.1f}"],
            ["NetAdaptV2 total", f"{v2:.1f}"]]  # fmt: skip
    if "netadapt_v1_seconds" in m:
        v1 = m["netadapt_v1_seconds"]
        pre = result.outcomes["netadapt_v1"].iterations[0].get("pretrain_seconds", float("nan"))
        rows += [["NetAdapt v1: pre-training the full network", f"{pre:.1f}"],
                 ["NetAdapt v1: search with short-term fine-tuning", f"{v1 - pre:.1f}"],
                 ["NetAdapt v1 total", f"{v1:.1f}"],
                 ["v1 / v2 (x)", f"{v1 / v2:.2f}"]]  # fmt: skip
    print()
    print(table(["search time (s), to the same budget", "value"], rows))
    trained = dict(result.trained.items())
    if "uniform" in trained and "mcd" in trained:
        gain = trained["mcd"].val_acc - trained["uniform"].val_acc
        print(f"\nsearched - uniform after equal training: {gain:+.2f} points val, "
              f"{trained['mcd'].client_test_acc - trained['uniform'].client_test_acc:+.2f} "
              "client test")  # fmt: skip
    out = save("search", {"metrics": m, "arch": result.arch, "lut_check": check,
                          "history": {k: v for k, v in h.items() if k != "mcd"},
                          "reused_supernet": args.reuse_supernet})  # fmt: skip
    print(f"\nsaved {out} and {pareto}")


if __name__ == "__main__":
    main()
