"""Federated fine-tuning benchmark: FedAvg vs PVT vs OMC vs PVT+OMC on the default corpus.

Every row is a real Flower simulation (Ray backend) of the finetune stage with the same rounds,
seed and start model, changing only what the row names: client-test accuracy before/after,
server-test accuracy after, upload bytes per client per round and the reduction versus FedAvg, the
measured client peak training memory (PyTorch memory profiler) and its reduction, parameter
memory, rounds per minute. Then OMC's bit-width curve and the effect of the number of Ray workers.

    python -m bench.federated [--params params.yaml] [--rounds N] [--only PVT ...]
        [--init PATH | --from-supernet 32,16,32,64,32,64]

``--from-supernet`` starts from that sub-network of ``paths.supernet`` (batch-norm
recalibrated on server training clips) instead of ``paths.searched``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import arguments, quiet, save, table
from components.config import Params, load_params
from components.federated import stage
from components.model.checkpoint import load_supernet, save_subnet
from components.model.evaluate import recalibrate_batch_norm
from components.model.subnet import extract_subnet
from components.training.data import load_server_data


def variant(params: Params, out: Path, **changes: Any) -> Params:
    """``params`` with finetune keys replaced (dotted keys reach the sub-sections), the start model
    ``init`` (default ``paths.searched``) and the output ``out``."""
    ft = params.finetune.model_dump()
    paths = {**params.paths.model_dump(), "final": str(out)}
    if "init" in changes:
        paths["searched"] = str(changes.pop("init"))
    for key, value in changes.items():
        section, _, name = key.rpartition(".")
        (ft[section] if section else ft)[name] = value
    return Params.model_validate({**params.model_dump(), "finetune": ft, "paths": paths})


def start_from_supernet(params: Params, widths: list[int], path: Path) -> Path:
    data = load_server_data(Path(params.paths.prepared))
    batches = data.calibration_batches(params.supernet.recalibration_batches, 128, params.base.seed)
    net = extract_subnet(load_supernet(Path(params.paths.supernet)), widths)
    recalibrate_batch_norm(net, batches)
    save_subnet(path, net, {"widths": widths})
    return path


def start_model(params: Params, from_supernet: str | None, init: str | None, tmp: Path) -> dict:
    """The ``init`` override of ``--from-supernet`` (a sub-network written to ``tmp``) or
    ``--init``; empty when neither is given (``paths.searched`` stands)."""
    if from_supernet:
        widths = [int(w) for w in from_supernet.split(",")]
        return {"init": str(start_from_supernet(params, widths, tmp / "start.pt"))}
    return {"init": init} if init else {}


def main() -> None:
    parser = arguments("bench.federated", __doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--init", default=None, help="override paths.searched (the start model)")
    parser.add_argument("--from-supernet", default=None, help="widths, e.g. 32,16,32,64,32,64")
    parser.add_argument("--rounds", type=int, default=None, help="override finetune.rounds")
    parser.add_argument("--only", nargs="+", default=None, metavar="TEXT",
                        help="run only the rows with these labels (FedAvg, the reference, "
                             "always runs)")  # fmt: skip
    args = parser.parse_args()
    quiet()
    params = load_params(args.params)
    d = params.finetune
    n = d.clients_per_round
    fedavg = {"pvt.strategy": "all", "omc.enabled": False}
    pvt = {"pvt.strategy": d.pvt.strategy, "omc.enabled": False}
    omc = {"pvt.strategy": "all", "omc.enabled": True}
    both = {"pvt.strategy": d.pvt.strategy, "omc.enabled": True}
    more, longer = {"clients_per_round": 4 * n}, {"local_steps": 2 * d.local_steps}
    most, steps = {"clients_per_round": 12 * n}, f"{2 * d.local_steps} local steps"
    longest = {"local_steps": 4 * d.local_steps}
    rows_spec: list[tuple[str, dict[str, Any]]] = [
        ("FedAvg (all variables, fp32)", fedavg),
        ("PVT", pvt),
        (f"PVT, {4 * n} clients/round, {steps}", {**pvt, **more, **longer}),
        (f"PVT, {12 * n} clients/round, {steps}", {**pvt, **most, **longer}),
        (f"PVT, {12 * n} clients/round, {4 * d.local_steps} steps", {**pvt, **most, **longest}),
        (f"OMC {d.omc.bits}-bit", omc),
        *[(f"OMC {b}-bit", {**omc, "omc.bits": b}) for b in (6, 4) if b != d.omc.bits],
        (f"PVT + OMC {d.omc.bits}-bit (the stage's default)", both),
        (f"PVT + OMC {d.omc.bits}-bit, {4 * n} clients/round", {**both, **more}),
    ]
    default_row = next(label for label, c in rows_spec if c == both)
    one_worker = "PVT + OMC, 1 Ray worker"
    if args.only:
        rows_spec = [(label, c) for i, (label, c) in enumerate(rows_spec)
                     if i == 0 or label in args.only]  # fmt: skip
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-federated-") as tmp:
        top: dict[str, Any] = {"rounds": args.rounds} if args.rounds else {}
        top.update(start_model(params, args.from_supernet, args.init, Path(tmp)))
        init_label = args.from_supernet and f"supernet sub-network {args.from_supernet}"

        def run(label: str, changes: dict[str, Any]) -> None:
            p = variant(params, Path(tmp) / "final.pt", **top, **changes)
            print(f"running: {label} ...", flush=True)
            start = time.perf_counter()
            result = stage.run(p, Path("."))
            m = dict(result.metrics, wall_seconds=round(time.perf_counter() - start, 1))
            runs[label] = {"changes": changes, "metrics": m, "history": result.history}

        for label, changes in rows_spec:
            run(label, changes)
        if not args.only or one_worker in args.only:
            run(one_worker, {**both, "simulation.num_cpus": 1})

    base = runs[rows_spec[0][0]]["metrics"]
    rows = []
    for label, _ in rows_spec:
        m = runs[label]["metrics"]
        rows.append([
            label, f"{m['acc_before']:.1f}", f"{m['acc_after']:.1f}",
            f"{m['acc_after'] - base['acc_after']:+.1f}", f"{m['server_test_acc_after']:.1f}",
            f"{m['upload_bytes_per_client_round']:.0f}",
            f"{base['upload_bytes_per_client_round'] / m['upload_bytes_per_client_round']:.1f}x",
            f"{m['download_bytes_per_client_round']:.0f}",
            f"{m['client_peak_train_mem_bytes'] / 1e6:.2f}",
            f"{base['client_peak_train_mem_bytes'] / m['client_peak_train_mem_bytes']:.2f}x",
            f"{m['client_param_bytes'] / 1e3:.1f}",
            f"{100 * (1 - m['client_param_bytes'] / base['client_param_bytes']):.0f}%",
            f"{m['rounds_per_minute']:.1f}",
        ])  # fmt: skip
    headers = ["method", "client acc before %", "after %", "vs FedAvg", "server acc after %",
               "upload B/client/round", "upload reduction", "download B/client/round",
               "peak train MB", "mem reduction", "param KB", "param mem saved",
               "rounds/min"]  # fmt: skip
    print()
    print(table(headers, rows))
    workers = []
    for count, label in ((2, default_row), (1, one_worker)):
        if label in runs:
            m = runs[label]["metrics"]
            workers.append([count, f"{m['rounds_per_minute']:.1f}", f"{m['train_seconds']:.0f}"])
    if len(workers) == 2:
        print()
        print(table(["Ray workers (1 CPU each)", "rounds/min", "seconds for the rounds"], workers))
    settings = {
        "rounds": base["rounds"],
        "clients_per_round": n,
        "local_steps": d.local_steps,
        "seed": params.base.seed,
        "init": init_label or top.get("init", params.paths.searched),
        "pvt": d.pvt.model_dump(),
        "omc": d.omc.model_dump(),
        "server": d.server.model_dump(),
    }
    print(f"\nsettings: {settings}")
    name = "federated_partial" if args.only else "federated"  # a subset keeps the full table
    print(f"written {save(name, {'settings': settings, 'runs': runs})}")


if __name__ == "__main__":
    main()
