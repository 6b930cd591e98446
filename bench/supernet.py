"""Super-network benchmark: inherited-weight accuracy vs training from scratch, and training cost.

Trains the super-network with the stage's own parameters, then trains 8 of its sub-networks
(smallest to largest) from scratch with the same recipe and epochs, all in this one run.

    python -m bench.supernet [--params params.yaml] [--epochs N]
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.common import arguments, quiet, save, table
from components.config import load_params
from components.model.evaluate import accuracy, recalibrate_batch_norm
from components.model.space import (
    SearchSpace,
    count_macs,
    random_architectures,
    space_from_params,
)
from components.model.subnet import SubNetwork, count_parameters, extract_subnet
from components.model.supernet import SuperNet
from components.training.data import load_server_data
from components.training.trainer import fit


def spread_architectures(space: SearchSpace, n: int, seed: int) -> list[list[int]]:
    """The smallest, the largest, and random sub-networks at evenly spaced MAC quantiles."""
    pool = sorted(random_architectures(space, 400, seed), key=lambda w: count_macs(space, w))
    picks = [pool[round(q * (len(pool) - 1))] for q in np.linspace(0, 1, n)[1:-1]]
    return [space.smallest(), *picks, space.largest()]


def main() -> None:
    parser = arguments("bench.supernet", __doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--epochs", type=int, default=None, help="override supernet.epochs")
    args = parser.parse_args()
    quiet()
    params = load_params(args.params)
    p = params.supernet
    if args.epochs:
        p = p.model_copy(update={"epochs": args.epochs})
    seed = params.base.seed
    data = load_server_data(Path(params.paths.prepared))
    test = load_server_data(Path(params.paths.prepared), split_eval="test")
    space = space_from_params(p, data.train_x.shape[1], data.train_x.shape[2], len(data.classes))

    torch.manual_seed(seed)
    net = SuperNet(space)
    net.norm.set_stats(data.train_x)
    print(f"training the super-network ({p.epochs} epochs) ...", flush=True)
    super_fit = fit(net, p, data, seed)
    calibration = super_fit.module.calibration

    rows: list[list[str]] = []
    records: list[dict[str, Any]] = []
    for i, widths in enumerate(spread_architectures(space, 8, seed)):
        inherited = recalibrate_batch_norm(extract_subnet(net, widths), calibration)
        torch.manual_seed(seed)
        scratch = SubNetwork(space, widths)
        scratch.norm.set_stats(data.train_x)
        print(f"training sub-network {i + 1}/8 {widths} from scratch ...", flush=True)
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
        records.append(rec)
        rows.append(
            [str(widths), f"{rec['macs'] / 1e6:.2f}", rec["params"], f"{rec['inherited_val']:.1f}",
             f"{rec['scratch_val']:.1f}", f"{rec['gap_val']:+.1f}", f"{rec['inherited_test']:.1f}",
             f"{rec['scratch_test']:.1f}", f"{rec['scratch_seconds']:.0f}"]
        )  # fmt: skip

    scratch_total = sum(r["scratch_seconds"] for r in records)
    summary = {
        "epochs": p.epochs,
        "supernet_val_acc_full": super_fit.module.evaluate()["val_acc_full"],
        "median_gap_val": statistics.median(r["gap_val"] for r in records),
        "supernet_seconds": super_fit.seconds,
        "scratch_seconds_total": scratch_total,
        "cost_ratio_scratch_over_supernet": scratch_total / super_fit.seconds,
    }
    headers = ["widths", "MMACs", "params", "inherited val %", "scratch val %", "gap",
               "inherited test %", "scratch test %", "scratch s"]  # fmt: skip
    print()
    print(table(headers, rows))
    print()
    print(
        table(
            ["full net val %", "median gap (scratch - inherited), val", "supernet train s",
             "8 from scratch s", "ratio"],
            [[f"{summary['supernet_val_acc_full']:.1f}", f"{summary['median_gap_val']:+.2f} points",
              f"{summary['supernet_seconds']:.0f}", f"{scratch_total:.0f}",
              f"{summary['cost_ratio_scratch_over_supernet']:.2f}x"]],
        )
    )  # fmt: skip
    print(f"\nwritten {save('supernet', {'summary': summary, 'subnets': records})}")


if __name__ == "__main__":
    main()
