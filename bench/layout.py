"""Channels-last convolution weights (``CONV_LAYOUT``) against PyTorch's default memory order:
step times, and the accuracy the same training reaches in each.

1. Step times, the two orders interleaved (``--rounds`` rounds, medians): a super-network
   training step (ordered dropout, the stage's batch), the searched network's training step,
   a federated client's step (batch ``finetune.batch_size``, one thread) and inference on 512
   clips, on the committed pipeline's prepared data and searched architecture.
2. Accuracy: the super-network trained with the stage's recipe (``supernet.epochs``) and the
   searched network trained from scratch (``search.train_epochs``), per seed in each order;
   the training seconds (monitoring excluded) and the validation figures, mean ± sd over the
   seeds, with the tie rule. The orders round float sums differently, so runs are not equal
   bit for bit; the claim is that they are equal within the seed spread.

    python -m bench.layout [--seeds 1234,1,2] [--rounds 7] [--no-train] [--name layout]
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.common import arguments, compare, mean_spread, quiet, save, table
from components.config import load_params
from components.data.prepared import load_prepared
from components.data.splits import CLIENT, TEST, TRAIN
from components.model.space import space_from_params
from components.model.subnet import SubNetwork
from components.model.supernet import CONV_LAYOUT, SuperNet, sample_widths, with_layout
from components.search.training import scored
from components.training.augment import augment
from components.training.data import load_server_data
from components.training.trainer import fit

ORDERS = {"channels_last": CONV_LAYOUT, "default": torch.contiguous_format}


def in_order(net: torch.nn.Module, order: str) -> torch.nn.Module:
    return with_layout(net, ORDERS[order])


def step_times(params, data, searched: list[int], rounds: int) -> dict[str, dict[str, float]]:
    """Median milliseconds per step of each workload in each order (interleaved rounds)."""
    p = params.supernet
    space = space_from_params(p, data.train_x.shape[1], data.train_x.shape[2], len(data.classes))
    torch.manual_seed(0)
    supernet = SuperNet(space)
    supernet.norm.set_stats(data.train_x)
    client_x, client_y = load_prepared(Path(params.paths.prepared)).tensors(CLIENT, TRAIN)
    g = torch.Generator().manual_seed(0)
    b, cb = p.batch_size, params.finetune.batch_size
    threads = torch.get_num_threads()

    def train(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, odo: bool) -> Callable:
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

        def run() -> None:
            xa = augment(x, p, g)
            out = (net(xa, sample_widths(space, len(y), g, p.full_fraction, p.smallest_fraction,
                                         p.depth_fraction)) if odo else net(xa))  # fmt: skip
            opt.zero_grad()
            F.cross_entropy(out, y).backward()
            opt.step()

        return run

    def infer(net: torch.nn.Module) -> Callable:
        x = data.val_x[:512] if len(data.val_y) >= 512 else data.train_x[:512]

        def run() -> None:
            with torch.inference_mode():
                net.eval()(x)

        return run

    work: dict[str, tuple[int, dict[str, Callable]]] = {}
    for order in ORDERS:
        sub = in_order(SubNetwork(space, searched), order)
        work.setdefault("super-network training step (ODO)", (threads, {}))[1][order] = train(
            in_order(copy.deepcopy(supernet), order), data.train_x[:b], data.train_y[:b], True
        )
        work.setdefault("searched network training step", (threads, {}))[1][order] = train(
            copy.deepcopy(sub), data.train_x[:b], data.train_y[:b], False
        )
        work.setdefault("federated client step (1 thread)", (1, {}))[1][order] = train(
            copy.deepcopy(sub), client_x[:cb], client_y[:cb], False
        )
        work.setdefault("searched network inference, 512 clips", (threads, {}))[1][order] = infer(
            copy.deepcopy(sub)
        )
    out: dict[str, dict[str, float]] = {}
    for what, (n_threads, runs) in work.items():
        torch.set_num_threads(n_threads)
        samples: dict[str, list[float]] = {o: [] for o in runs}
        for run in runs.values():  # warm-up
            for _ in range(3):
                run()
        for r in range(rounds):
            for order in list(runs) if r % 2 == 0 else list(runs)[::-1]:
                t0 = time.perf_counter()
                for _ in range(5):
                    runs[order]()
                samples[order].append((time.perf_counter() - t0) / 5 * 1e3)
        out[what] = {o: statistics.median(s) for o, s in samples.items()}
        print(f"{what}: " + ", ".join(f"{o} {v:.1f} ms" for o, v in out[what].items()),
              file=sys.stderr)  # fmt: skip
    torch.set_num_threads(threads)
    return out


def train_both(params, data, test, clients, searched: list[int], seeds: list[int]
               ) -> dict[str, dict[str, list[float]]]:  # fmt: skip
    """Per order, per figure: one value per seed."""
    p = params.supernet
    recipe = p.model_copy(update={"epochs": params.search.train_epochs})
    space = space_from_params(p, data.train_x.shape[1], data.train_x.shape[2], len(data.classes))
    figures: dict[str, dict[str, list[float]]] = {o: {} for o in ORDERS}
    for seed in seeds:
        for order in ORDERS:
            torch.manual_seed(seed)
            net = in_order(SuperNet(space), order)
            net.norm.set_stats(data.train_x)
            result = fit(net, p, data, seed)
            last = result.module.history[-1]
            torch.manual_seed(seed)  # as search.training.train_network, in this order
            model = in_order(SubNetwork(space, searched), order)
            model.norm.load_state_dict(net.norm.state_dict())
            scratch = scored("mcd", searched, model, fit(model, recipe, data, seed), data, test,
                             clients)  # fmt: skip
            row = {"supernet_train_seconds": result.seconds,
                   "supernet_val_acc_full": last["val_acc_full"],
                   "supernet_val_acc_median_subnet": last["val_acc_median_subnet"],
                   "supernet_val_acc_smallest": last["val_acc_smallest"],
                   "searched_train_seconds": scratch.seconds,
                   "searched_val_acc": scratch.val_acc, "searched_test_acc": scratch.test_acc,
                   "searched_client_test_acc": scratch.client_test_acc}  # fmt: skip
            for k, v in row.items():
                figures[order].setdefault(k, []).append(float(v))
            print(f"seed {seed} {order}: " + ", ".join(f"{k} {v:.1f}" for k, v in row.items()),
                  file=sys.stderr)  # fmt: skip
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = arguments("bench.layout", __doc__)
    parser.add_argument("--seeds", default="1234,1,2")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-train", action="store_true", help="step times only")
    parser.add_argument("--name", default="layout", help="bench/results/<name>.json")
    args = parser.parse_args(argv)
    quiet()
    params = load_params(Path("params.yaml"))
    prepared = Path(params.paths.prepared)
    data, test = load_server_data(prepared), load_server_data(prepared, split_eval=TEST)
    clients = load_prepared(prepared).tensors(CLIENT, TEST)
    searched = json.loads(Path(params.paths.search, "arch.json").read_text())["widths"]
    steps = step_times(params, data, searched, args.rounds)
    print(
        table(
            ["workload", "default order ms", "channels-last ms", "speed-up"],
            [
                [
                    w,
                    f"{v['default']:.1f}",
                    f"{v['channels_last']:.1f}",
                    f"{v['default'] / v['channels_last']:.2f}x",
                ]
                for w, v in steps.items()
            ],
        )
    )
    payload = {"command": "python -m bench.layout " + " ".join(argv or sys.argv[1:]),
               "searched_widths": searched, "step_ms": steps}  # fmt: skip
    if not args.no_train:
        seeds = [int(s) for s in args.seeds.split(",")]
        figures = train_both(params, data, test, clients, searched, seeds)
        rows = []
        for k in figures["default"]:
            a, b = figures["channels_last"][k], figures["default"][k]
            rows.append([k, mean_spread(b), mean_spread(a),
                         "-" if k.endswith("seconds") else compare(a, b)])  # fmt: skip
        print(table(["figure (seeds " + args.seeds + ")", "default order", "channels-last",
                     "channels-last - default"], rows))  # fmt: skip
        payload.update(seeds=seeds, figures=figures,
                       supernet_epochs=params.supernet.epochs,
                       train_epochs=params.search.train_epochs)  # fmt: skip
    path = save(args.name, payload)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
