"""Super-network training sweep: inherited-weight accuracy of fixed architectures per setting.

Each argument is a JSON object of `supernet` overrides; for each, the super-network is trained
and 7 fixed sub-networks (from bench.supernet's spread at the default seed) and 6 shallow ones
(where a search at half latency ends) are scored with inherited weights after BN recalibration.
This is how the defaults in params.yaml were chosen.

    python -m bench.supernet_sweep '{"full_fraction": 0.5}' \\
        '{"full_fraction": 0.125, "epochs": 40}'
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import torch

from bench.common import arguments, quiet, save, table
from components.config import load_params
from components.model.space import space_from_params
from components.model.supernet import SuperNet
from components.training.data import load_server_data
from components.training.trainer import fit, score_subnet

ARCHS = [
    [16, 8, 16, 24, 0, 8], [8, 8, 32, 48, 8, 0], [16, 24, 16, 32, 16, 8],
    [32, 16, 16, 24, 24, 16], [32, 8, 8, 24, 56, 40], [32, 16, 32, 16, 48, 24],
    [32, 32, 32, 64, 64, 64],
]  # fmt: skip
# shallow networks, where a search at half the full network's latency ends (4-5 layers removed)
SHALLOW = [[0, 0, 0, 16, 0, 64], [0, 0, 0, 0, 64, 0], [32, 0, 0, 64, 0, 0], [0, 0, 0, 64, 64, 0],
           [0, 16, 0, 0, 0, 32], [0, 0, 0, 0, 0, 0]]  # fmt: skip


def main() -> None:
    parser = arguments("bench.supernet_sweep", __doc__)
    parser.add_argument("overrides", nargs="+", help="JSON objects of supernet overrides")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--seed", type=int, default=None, help="default: base.seed")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    args = parser.parse_args()
    quiet()
    if args.threads:
        torch.set_num_threads(args.threads)
    params = load_params(args.params)
    seed = params.base.seed if args.seed is None else args.seed
    data = load_server_data(Path(params.paths.prepared))
    rows, records = [], []
    for text in args.overrides:
        p = params.supernet.model_copy(update=json.loads(text))
        space = space_from_params(
            p, data.train_x.shape[1], data.train_x.shape[2], len(data.classes)
        )
        torch.manual_seed(seed)
        net = SuperNet(space)
        net.norm.set_stats(data.train_x)
        result = fit(net, p, data, seed)
        accs = [score_subnet(net, a, data, result.module.calibration) for a in ARCHS]
        shallow = [score_subnet(net, a, data, result.module.calibration) for a in SHALLOW]
        records.append({"overrides": json.loads(text), "inherited_val": accs,
                        "inherited_val_shallow": shallow, "seconds": result.seconds})  # fmt: skip
        rows.append([text, " ".join(f"{a:.1f}" for a in accs), f"{statistics.median(accs):.1f}",
                     " ".join(f"{a:.1f}" for a in shallow), f"{statistics.median(shallow):.1f}",
                     f"{result.seconds:.0f}"])  # fmt: skip
        print(rows[-1], flush=True)
    print(table(["overrides", "inherited val % (7 archs)", "median", "shallow (6 archs)", "median",
                 "train s"], rows))  # fmt: skip
    out = {"archs": ARCHS, "shallow": SHALLOW, "runs": records}
    print(f"\nwritten {save('supernet_sweep', out)}")


if __name__ == "__main__":
    main()
