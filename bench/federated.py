"""Federated fine-tuning on equal footing: FedAvg, FedAdam, PVT, OMC and PVT+OMC, over seeds.

Every row is a real Flower simulation (Ray backend) of the finetune stage, from the same start
model (by default ``paths.searched``: the network the pipeline's search stage produced), with the
same rounds, clients per round, local steps and client learning rate, changing only what the row
names; each row runs once per seed (``--seeds``, default 1234,1,2: the seed drives client
sampling, PVT's variable selection and the clients' batch order). Columns, mean ± stdev over
seeds: client-test, server-test and real-voice accuracy (keywords and non-keywords called
``_unknown_`` apart), upload and download bytes per client per round (serialized payloads), the
measured client peak training memory (PyTorch memory profiler), wall time of the stage and rounds
per minute.

- *FedAvg* is McMahan et al.'s: the server adds the clients' averaged update (server SGD, lr 1);
  *FedAdam* (Reddi et al. 2021) feeds that average to Adam on the server, as the stage does.
- *server learning* (Mai et al. 2023, ``components/federated/server_learning.py``): after each
  round the server takes ``finetune.server_learning.steps`` SGD steps on the server pool's
  training clips; it changes nothing a client sends, holds or computes.
- *PVT* rows train, per client per round, ``pvt.trainable_fraction`` of the candidate variables
  (FedAdam server: plain averaging makes PVT diverge); ``min_depth`` 0.5 draws them from the top
  half of the network only (which is where most of its memory saving comes from), 0 from every
  layer.
- *OMC* rows keep the client's copy and both directions of traffic at ``omc.bits``.
- ``--participation 40x20`` adds FedAvg, FedAdam and PVT rows at that many clients per round and
  local steps (the participation PVT needs to match FedAvg, docs/benchmarks.md).

The JSON is rewritten after every run (a long bench that stops keeps what it measured);
``--append`` keeps the runs already in it and measures only the (row, seed) pairs it lacks, so a
table too long for one sitting is finished later. It refuses a file measured from another start
model (its SHA-256), other finetune settings or another number of rounds.

    python -m bench.federated [--params params.yaml] [--seeds 1234,1,2] [--rounds N]
        [--only TEXT ...] [--participation 40x20 ...] [--name NAME] [--append]
        [--init PATH | --from-supernet 32,16,32,64,32,64]

``--from-supernet`` starts from that sub-network of ``paths.supernet`` (batch-norm
recalibrated on server training clips) instead of ``paths.searched``.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS, arguments, mean_spread, quiet, save, table
from components.config import Params, load_params
from components.federated import stage
from components.model.checkpoint import load_subnet, load_supernet, save_subnet
from components.model.evaluate import recalibrate_batch_norm
from components.model.subnet import extract_subnet
from components.training.data import load_server_data


def variant(params: Params, out: Path, **changes: Any) -> Params:
    """``params`` with finetune keys replaced (dotted keys reach the sub-sections), the start model
    ``init`` (default ``paths.searched``), the output ``out`` and optionally ``seed``."""
    ft = params.finetune.model_dump()
    paths = {**params.paths.model_dump(), "final": str(out)}
    base = params.base.model_dump()
    if "init" in changes:
        paths["searched"] = str(changes.pop("init"))
    if "seed" in changes:
        base["seed"] = int(changes.pop("seed"))
    for key, value in changes.items():
        section, _, name = key.rpartition(".")
        (ft[section] if section else ft)[name] = value
    return Params.model_validate(
        {**params.model_dump(), "base": base, "finetune": ft, "paths": paths}
    )


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


def rows_spec(params: Params, participation: list[tuple[int, int]]) -> list[tuple[str, dict]]:
    """(label, finetune overrides) of every row, FedAvg first (the reference). Every row names
    its server optimizer, server learning, PVT and OMC settings, so none inherits the stage's."""
    frac = params.finetune.pvt.trainable_fraction
    steps = params.finetune.server_learning.steps or 10
    fp32 = {"pvt.strategy": "all", "omc.enabled": False, "server_learning.steps": 0}
    avg = {"server.optimizer": "sgd", "server.lr": 1.0, "server.momentum": 0.0}
    adam = {"server.optimizer": "adam", "server.lr": 0.01, "server.momentum": 0.0}
    sl = {"server_learning.steps": steps}
    pvt = {"pvt.strategy": "random", "pvt.trainable_fraction": frac}
    rows: list[tuple[str, dict]] = [
        ("FedAvg", {**fp32, **avg}),
        ("FedAdam", {**fp32, **adam}),
        ("FedAvg + server learning", {**fp32, **avg, **sl}),
        ("FedAdam + server learning", {**fp32, **adam, **sl}),
        (f"PVT {frac}, min_depth 0.5 (FedAdam)", {**fp32, **adam, **pvt, "pvt.min_depth": 0.5}),
        (f"PVT {frac}, min_depth 0 (FedAdam)", {**fp32, **adam, **pvt, "pvt.min_depth": 0.0}),
        (f"PVT {frac}, min_depth 0.5 (FedAdam) + server learning",
         {**fp32, **adam, **pvt, "pvt.min_depth": 0.5, **sl}),
        *[(f"OMC {b}-bit (FedAdam + server learning)",
           {**fp32, **adam, **sl, "omc.enabled": True, "omc.bits": b}) for b in (8, 6, 4)],
        (f"PVT {frac} + OMC 8-bit (FedAdam)",
         {**fp32, **adam, **pvt, "pvt.min_depth": 0.5, "omc.enabled": True, "omc.bits": 8}),
    ]  # fmt: skip
    for clients, local in participation:
        more = {"clients_per_round": clients, "local_steps": local}
        rows += [
            (f"FedAvg, {clients} clients x {local} steps", {**fp32, **avg, **more}),
            (f"FedAdam, {clients} clients x {local} steps", {**fp32, **adam, **more}),
            (f"PVT {frac}, min_depth 0.5 (FedAdam), {clients} clients x {local} steps",
             {**fp32, **adam, **pvt, "pvt.min_depth": 0.5, **more}),
        ]  # fmt: skip
    return rows


def stage_default(params: Params) -> dict[str, Any]:
    """The stage's default setting, in the rows' terms (which row it is)."""
    d = params.finetune
    return {"pvt": d.pvt.strategy, "min_depth": d.pvt.min_depth, "omc": d.omc.enabled,
            "bits": d.omc.bits, "server": d.server.optimizer, "lr": d.server.lr,
            "server_learning_steps": d.server_learning.steps, "rounds": d.rounds,
            "clients_per_round": d.clients_per_round, "local_steps": d.local_steps}  # fmt: skip


COLUMNS = [  # (metric key, header, format)
    ("acc_after", "client test %", ".1f"),
    ("server_test_acc_after", "server test %", ".1f"),
    ("real_voice_keyword_acc", "real keywords %", ".1f"),
    ("real_voice_unknown_pct", "real non-kw as unknown %", ".1f"),
    ("upload_bytes_per_client_round", "upload B/client/round", ".0f"),
    ("download_bytes_per_client_round", "download B/client/round", ".0f"),
    ("client_peak_train_mem_mb", "peak train MB", ".2f"),
    ("wall_seconds", "wall s", ".0f"),
    ("rounds_per_minute", "rounds/min", ".1f"),
]


def appendable(path: Path, init_sha256: str, finetune: dict[str, Any], rounds: int) -> dict:
    """The results already in ``path`` (nothing if there is no such file), refused with one
    message when they were measured from another start model, finetune settings or rounds."""
    if not path.exists():
        return {}
    try:
        previous = json.loads(path.read_text())
        settings = previous["settings"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise SystemExit(f"{path}: not a bench.federated results file ({err!r})") from None
    for key, want in (("init_sha256", init_sha256), ("finetune", finetune), ("rounds", rounds)):
        if settings.get(key) != want:
            raise SystemExit(
                f"{path}: its runs were measured with another settings.{key} than this bench "
                f"would use; give another --name, or drop --append to measure afresh"
            )
    return dict(previous)


def main() -> None:
    parser = arguments("bench.federated", __doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--init", default=None, help="override paths.searched (the start model)")
    parser.add_argument("--from-supernet", default=None, help="widths, e.g. 32,16,32,64,32,64")
    parser.add_argument("--rounds", type=int, default=None, help="override finetune.rounds")
    parser.add_argument("--seeds", default="1234,1,2", help="comma-separated base.seed values")
    parser.add_argument("--participation", nargs="*", default=[], metavar="CxS",
                        help="extra rows at C clients per round and S local steps")  # fmt: skip
    parser.add_argument("--only", nargs="+", default=None, metavar="TEXT",
                        help="run only the rows whose label starts with one of these (FedAvg, "
                             "the reference, always runs)")  # fmt: skip
    parser.add_argument("--name", default=None, help="results file name (default federated, "
                        "federated_partial with --only)")  # fmt: skip
    parser.add_argument(
        "--append", action="store_true", help="keep the runs already saved; run only the others"
    )
    args = parser.parse_args()
    quiet()
    from bench.data import predictions, real_voice_scores, real_voice_set

    params = load_params(args.params)
    seeds = [int(s) for s in args.seeds.split(",")]
    participation = [tuple(int(x) for x in p.lower().split("x")) for p in args.participation]
    spec = rows_spec(params, participation)  # type: ignore[arg-type]
    if args.only:
        spec = [(label, c) for i, (label, c) in enumerate(spec)
                if i == 0 or any(label.startswith(t) for t in args.only)]  # fmt: skip
    classes = [*params.prepare.keywords, "_unknown_", "_silence_"]
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in spec}
    started = time.perf_counter()
    name = args.name or ("federated_partial" if args.only else "federated")
    start_figures: dict[str, Any] = {}
    rounds = params.finetune.rounds if args.rounds is None else args.rounds

    def record() -> Path:
        """Write what has been measured so far (every run's figures, the means per row)."""
        done = {label: rs for label, rs in runs.items() if rs}
        summary = {label: {k: statistics.fmean(float(r["metrics"][k]) for r in rs)
                           for k, _, _ in COLUMNS} for label, rs in done.items()}  # fmt: skip
        settings = {
            "rounds": rounds,
            "seeds": list(dict.fromkeys(r["seed"] for rs in done.values() for r in rs)),
            "init": start_figures.get("init"),
            "init_sha256": start_figures.get("init_sha256"),
            "start": start_figures.get("start"),
            "stage_default": stage_default(params),
            "finetune": params.finetune.model_dump(mode="json"),
            "minutes": round((time.perf_counter() - started) / 60, 1),
            "complete": all({r["seed"] for r in runs[label]} >= set(seeds) for label, _ in spec),
        }
        return save(name, {"settings": settings, "summary": summary, "runs": done})

    with tempfile.TemporaryDirectory(prefix="bench-federated-") as tmp:
        top: dict[str, Any] = {"rounds": args.rounds} if args.rounds else {}
        top.update(start_model(params, args.from_supernet, args.init, Path(tmp)))
        init_label = ((args.from_supernet and f"supernet sub-network {args.from_supernet}")
                      or top.get("init", params.paths.searched))  # fmt: skip
        real_x, real_labels, _ = real_voice_set(params, Path(tmp) / "real_voices")
        init_path = Path(top.get("init", params.paths.searched))
        start = load_subnet(init_path)
        before = real_voice_scores(predictions(start, real_x), real_labels, classes)
        start_figures["init"] = init_label
        start_figures["init_sha256"] = hashlib.sha256(init_path.read_bytes()).hexdigest()
        if args.append:
            previous = appendable(RESULTS / f"{name}.json", start_figures["init_sha256"],
                                  params.finetune.model_dump(mode="json"), rounds)  # fmt: skip
            for label, rs in previous.get("runs", {}).items():
                runs.setdefault(label, []).extend(rs)
            start_figures["start"] = previous.get("settings", {}).get("start")
        for seed in seeds:
            for label, changes in spec:
                if any(r["seed"] == seed for r in runs[label]):
                    continue
                out = Path(tmp) / "final.pt"
                p = variant(params, out, **top, **changes, seed=seed)
                print(f"seed {seed}: {label} ...", flush=True)
                t0 = time.perf_counter()
                result = stage.run(p, Path("."))
                m = dict(result.metrics, wall_seconds=round(time.perf_counter() - t0, 1))
                m["client_peak_train_mem_mb"] = m["client_peak_train_mem_bytes"] / 1e6
                m |= real_voice_scores(predictions(load_subnet(out), real_x), real_labels, classes)
                runs[label].append({"seed": seed, "changes": changes, "metrics": m})
                start_figures["start"] = {
                    "client_test_acc": m["acc_before"],
                    "server_test_acc": m["server_test_acc_before"],
                    **before,
                }
                record()
                print(f"  client {m['acc_before']:.1f} -> {m['acc_after']:.1f}, server "
                      f"{m['server_test_acc_before']:.1f} -> {m['server_test_acc_after']:.1f}, "
                      f"real non-keywords {before['real_voice_unknown_pct']:.1f} -> "
                      f"{m['real_voice_unknown_pct']:.1f}, {m['wall_seconds']:.0f} s",
                      flush=True)  # fmt: skip
    first = runs[spec[0][0]][0]["metrics"]  # every run starts from the same model
    print(f"\nstart model ({init_label}): client test {first['acc_before']:.1f}%, server test "
          f"{first['server_test_acc_before']:.1f}%, real keywords "
          f"{before['real_voice_keyword_acc']:.1f}%, real non-keywords called _unknown_ "
          f"{before['real_voice_unknown_pct']:.1f}%")  # fmt: skip
    rows = []
    for label, _ in spec:
        ms = [r["metrics"] for r in runs[label] if r["seed"] in seeds]
        rows.append([label, *[mean_spread([float(m[k]) for m in ms], f) for k, _, f in COLUMNS]])
    print(f"\nseeds {seeds}; {first['rounds']} rounds; mean ± stdev")
    print(table(["method", *[h for _, h, _ in COLUMNS]], rows))
    print(f"written {record()}")


if __name__ == "__main__":
    main()
