"""Super-network benchmark: inherited-weight accuracy vs training from scratch, and training cost.

Trains the super-network with the stage's own parameters, then 8 (``--subnets``) of its
sub-networks (smallest to largest) from scratch with the same recipe and epochs, all in this one
run, at each training seed (the data and its splits are the pipeline's).

    python -m bench.supernet [--params params.yaml] [--epochs N] [--seeds 1234,1,2] [--subnets 8]
        [--name supernet]
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.common import arguments, mean_spread, quiet, save, table
from components.config import SupernetParams, load_params
from components.model.evaluate import accuracy, recalibrate_batch_norm
from components.model.space import (
    SearchSpace,
    count_macs,
    random_architectures,
    space_from_params,
)
from components.model.subnet import SubNetwork, count_parameters, extract_subnet
from components.model.supernet import SuperNet
from components.training.data import ServerData, load_server_data
from components.training.trainer import fit

ARCH_SEED = 1234  # the architectures of the table (bench.supernet_sweep uses the same)


def spread_architectures(space: SearchSpace, n: int, seed: int) -> list[list[int]]:
    """The smallest, the largest, and random sub-networks at evenly spaced MAC quantiles."""
    pool = sorted(random_architectures(space, 400, seed), key=lambda w: count_macs(space, w))
    picks = [pool[round(q * (len(pool) - 1))] for q in np.linspace(0, 1, n)[1:-1]]
    return [space.smallest(), *picks, space.largest()]


def run_seed(
    p: SupernetParams, data: ServerData, test: ServerData, seed: int, subnets: int = 8
) -> dict[str, Any]:
    """The super-network and ``subnets`` spread sub-networks from scratch, at one seed."""
    space = space_from_params(p, data.train_x.shape[1], data.train_x.shape[2], len(data.classes))
    torch.manual_seed(seed)
    net = SuperNet(space)
    net.norm.set_stats(data.train_x)
    print(f"seed {seed}: training the super-network ({p.epochs} epochs) ...", flush=True)
    super_fit = fit(net, p, data, seed)
    calibration = super_fit.module.calibration
    records: list[dict[str, Any]] = []
    # the same 8 architectures at every seed (drawn with the params' seed), so seeds average
    for i, widths in enumerate(spread_architectures(space, subnets, ARCH_SEED)):
        inherited = recalibrate_batch_norm(extract_subnet(net, widths), calibration)
        torch.manual_seed(seed)
        scratch = SubNetwork(space, widths)
        scratch.norm.set_stats(data.train_x)
        print(f"seed {seed}: training sub-network {i + 1}/{subnets} {widths} from scratch ...",
              flush=True)  # fmt: skip
        scratch_fit = fit(scratch, p, data, seed)
        rec: dict[str, Any] = {
            "widths": widths,
            "macs": count_macs(space, widths),
            "params": count_parameters(scratch),
            "inherited_val": accuracy(inherited, data.val_x, data.val_y),
            "inherited_test": accuracy(inherited, test.val_x, test.val_y),
            "scratch_val": accuracy(scratch, data.val_x, data.val_y),
            "scratch_test": accuracy(scratch, test.val_x, test.val_y),
            "scratch_seconds": scratch_fit.seconds,
        }
        rec["gap_val"] = rec["scratch_val"] - rec["inherited_val"]
        rec["gap_test"] = rec["scratch_test"] - rec["inherited_test"]
        records.append(rec)
    scratch_total = sum(r["scratch_seconds"] for r in records)
    smallest, largest = records[0], records[-1]
    summary = {
        "seed": seed,
        "full_inherited_val": largest["inherited_val"],
        "full_inherited_test": largest["inherited_test"],
        "full_scratch_test": largest["scratch_test"],
        "smallest_inherited_test": smallest["inherited_test"],
        "spread_inherited_test": largest["inherited_test"] - smallest["inherited_test"],
        "median_gap_val": statistics.median(r["gap_val"] for r in records),
        "median_gap_test": statistics.median(r["gap_test"] for r in records),
        "supernet_seconds": super_fit.seconds,
        "supernet_monitor_seconds": super_fit.monitor_seconds,
        "scratch_seconds_total": scratch_total,
        "cost_ratio_scratch_over_supernet": scratch_total / super_fit.seconds,
    }
    return {"summary": summary, "subnets": records}


def main() -> None:
    parser = arguments("bench.supernet", __doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--epochs", type=int, default=None, help="override supernet.epochs")
    parser.add_argument("--name", default="supernet", help="bench/results/<name>.json")
    parser.add_argument("--seeds", default=None, help="training seeds (default: base.seed,1,2)")
    parser.add_argument("--subnets", type=int, default=8,
                        help="sub-networks from smallest to largest (at least 2)")  # fmt: skip
    args = parser.parse_args()
    quiet()
    params = load_params(args.params)
    p = params.supernet
    if args.epochs:
        p = p.model_copy(update={"epochs": args.epochs})
    seeds = ([int(s) for s in args.seeds.split(",")] if args.seeds
             else [params.base.seed, 1, 2])  # fmt: skip
    data = load_server_data(Path(params.paths.prepared))
    test = load_server_data(Path(params.paths.prepared), split_eval="test")
    runs = [run_seed(p, data, test, seed, max(2, args.subnets)) for seed in seeds]

    rows = []
    for i, rec in enumerate(runs[0]["subnets"]):
        per = [r["subnets"][i] for r in runs]

        def over(key: str, fmt: str = ".1f", per: list[dict[str, Any]] = per) -> str:
            return mean_spread([s[key] for s in per], fmt)

        rows.append(
            [str(rec["widths"]), f"{rec['macs'] / 1e6:.2f}", rec["params"], over("inherited_val"),
             over("scratch_val"), over("gap_val", "+.1f"), over("inherited_test"),
             over("scratch_test"), over("gap_test", "+.1f"),
             f"{statistics.mean(s['scratch_seconds'] for s in per):.0f}"]
        )  # fmt: skip
    headers = ["widths", "MMACs", "params", "inherited val %", "scratch val %", "gap val",
               "inherited test %", "scratch test %", "gap test", "scratch s"]  # fmt: skip
    print(f"\n{len(seeds)} seeds ({', '.join(map(str, seeds))}), mean ± stdev; gap = scratch - "
          "inherited")  # fmt: skip
    print(table(headers, rows))
    s = [r["summary"] for r in runs]
    print()
    print(
        table(
            ["full net test % (inherited)", "smallest test %", "spread", "median gap test",
             "supernet train s", f"{len(runs[0]['subnets'])} from scratch s", "ratio"],
            [[mean_spread([x["full_inherited_test"] for x in s]),
              mean_spread([x["smallest_inherited_test"] for x in s]),
              mean_spread([x["spread_inherited_test"] for x in s], "+.1f"),
              mean_spread([x["median_gap_test"] for x in s], "+.2f"),
              mean_spread([x["supernet_seconds"] for x in s], ".0f"),
              mean_spread([x["scratch_seconds_total"] for x in s], ".0f"),
              mean_spread([x["cost_ratio_scratch_over_supernet"] for x in s], ".2f")]],
        )
    )  # fmt: skip
    keys = [k for k in s[0] if k != "seed"]
    summary = {
        "epochs": p.epochs,
        "seeds": seeds,
        **{k: {"mean": statistics.mean(x[k] for x in s),
               "stdev": statistics.stdev(x[k] for x in s) if len(s) > 1 else 0.0}
           for k in keys},
    }  # fmt: skip
    print(f"\nwritten {save(args.name, {'summary': summary, 'runs': runs})}")


if __name__ == "__main__":
    main()
