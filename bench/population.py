"""Federated fine-tuning at population scale: does a round cost more when there are more devices?

Two tables.

**Systems** (``--populations 100,1000,5000``): for each population, a prepared dataset in which
every device holds the same clips (``--device-clips 3,1``: training, test; 50 client speakers,
their clips dealt to the devices by ``finetune.population``), so the work of one sampled device is
the same at every size and anything that grows is the federation's overhead. The features are
random (the shape of the real ones: 40 mel bands x 101 frames) and the accuracies mean nothing;
the network is the pipeline's searched one (``paths.searched``). Each population runs the real
finetune stage (Flower simulation on Ray) in a fresh process, ``--rounds`` rounds of
``--per-round`` sampled devices. Columns: registration seconds (the server asks every node once
which device it is: O(population), once per run), median seconds per round over rounds 2.. (the
first round starts Ray's workers), rounds per minute, federated evaluation seconds (start and end,
on a sample of ``--eval-clients`` devices), the client test clips (one per device here: the
simulation's server scores the model on all of them every round, in batches of 512, so this data
grows with the population), peak memory of the driver process (the stage: ServerApp, strategy,
Flower's simulation state, that scoring) and of the driver with every process it started (Ray's
GCS, raylet and the ClientApp workers), sampled every 0.2 s.

A population is simulated with ``clients_per_round`` virtual SuperNodes that play the sampled
devices (``finetune.population``; the stage's docstring says why).
``bench/results/population_node_per_device.json`` is the same table from before that change, with
one virtual SuperNode per device.

**Accuracy** (``--real 1000``, optional): the default corpus, one device per client speaker (120,
10 per round: the stage default) against the client speakers' clips dealt to that many devices
at ``--real-per-round`` per round, same rounds and everything else, over ``--seeds``.

    python -m bench.population [--populations 100,1000,5000] [--per-round 50] [--rounds 6]
        [--device-clips 3,1] [--eval-clients 100] [--real 1000 --real-per-round 50
        --seeds 1234,1,2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

from bench.common import arguments, mean_spread, quiet, save, table
from components.config import Params, load_params
from components.data import prepared

SPEAKERS, SERVER_TRAIN, SERVER_TEST = 50, 256, 128


def synthetic_population(
    root: Path, classes: list[str], population: int, device_clips: tuple[int, ...],
    shape: tuple[int, ...],
) -> Path:  # fmt: skip
    """A prepared dataset of random features: ``SPEAKERS`` client speakers holding
    ``device_clips`` x (population / SPEAKERS) clips each, and a small server pool."""
    rng = np.random.default_rng(0)
    per_speaker = population // SPEAKERS
    rows: list[dict[str, Any]] = []

    def add(n: int, pool: str, split: str, client: int) -> None:
        for _ in range(n):
            label = int(rng.integers(len(classes)))
            rows.append({"index": len(rows), "path": f"c{client}/{len(rows)}.wav",
                         "speaker": f"s{client}", "label": classes[label], "label_index": label,
                         "pool": pool, "split": split, "client": client})  # fmt: skip

    add(SERVER_TRAIN, "server", "train", -1)
    add(SERVER_TEST, "server", "test", -1)
    for c in range(SPEAKERS):
        add(device_clips[0] * per_speaker, "client", "train", c)
        add(device_clips[1] * per_speaker, "client", "test", c)
    features = rng.standard_normal((len(rows), *shape), dtype=np.float32)
    audio = np.zeros((len(rows), 16), np.int16)
    return prepared.write_prepared(root, audio, features, pd.DataFrame(rows), {"classes": classes})


class PeakMemory:
    """Peak resident memory of this process and of this process with its descendants."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.tree = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            total = 0
            for p in [self.me, *self.me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            self.tree = max(self.tree, total)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One finetune stage run in this (fresh) process; its figures and memory."""
    from bench.federated import variant
    from components.federated import stage

    quiet()
    params = load_params(spec["params"])
    p = variant(params, Path(spec["out"]), **spec["changes"], seed=spec["seed"])
    p = Params.model_validate({**p.model_dump(), "paths": {**p.paths.model_dump(),
                               "prepared": spec["prepared"]}})  # fmt: skip
    rss_start = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    with PeakMemory() as peak:
        result = stage.run(p, Path("."))
    wall = time.perf_counter() - t0
    rounds = [h["round_seconds"] for h in result.history if h["round"] >= 2]
    return {
        "metrics": result.metrics,
        "round_seconds": [h["round_seconds"] for h in result.history if h["round"] >= 1],
        "median_round_s": statistics.median(rounds) if rounds else float("nan"),
        "driver_rss_start_mb": rss_start / 2**20,
        "driver_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tree_peak_mb": peak.tree / 2**20,
        "wall_s": wall,
    }


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "bench.population", "--worker", json.dumps(spec)],
                          capture_output=True, text=True)  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"population run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


SYSTEM_COLUMNS = [  # (key, header, format)
    ("devices", "devices", "d"),
    ("register_s", "registration s", ".1f"),
    ("median_round_s", "s per round (median, rounds 2..)", ".2f"),
    ("rounds_per_minute", "rounds/min", ".1f"),
    ("eval_s", "federated eval s", ".1f"),
    ("test_clips", "client test clips (server scores each round)", "d"),
    ("driver_peak_mb", "driver peak MB", ".0f"),
    ("tree_peak_mb", "driver + Ray peak MB", ".0f"),
    ("wall_s", "stage s", ".0f"),
]


def main() -> None:
    parser = arguments("bench.population", __doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--populations", default="100,1000,5000")
    parser.add_argument("--per-round", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--device-clips", default="3,1")
    parser.add_argument("--eval-clients", type=int, default=100)
    parser.add_argument("--real", type=int, default=0, help="devices on the default corpus")
    parser.add_argument("--real-per-round", type=int, default=50)
    parser.add_argument("--real-rounds", type=int, default=None)
    parser.add_argument("--seeds", default="1234,1,2")
    parser.add_argument("--name", default="population", help="results file name")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    quiet()
    params = load_params(args.params)
    classes = [*params.prepare.keywords, "_unknown_", "_silence_"]
    clips = tuple(int(c) for c in args.device_clips.split(","))
    populations = [int(n) for n in args.populations.split(",") if n]
    started = time.perf_counter()
    system: list[dict[str, Any]] = []
    real: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-population-") as tmp:
        shape = tuple(np.load(Path(params.paths.prepared) / prepared.FEATURES, mmap_mode="r")
                      .shape[1:])  # fmt: skip
        for n in populations:
            data = synthetic_population(Path(tmp) / f"p{n}", classes, n, clips, shape)
            changes = {
                "population": n,
                "clients_per_round": args.per_round,
                "rounds": args.rounds,
                "federated_eval_clients": args.eval_clients,
            }
            print(f"{n} devices ...", flush=True)
            out = str(Path(tmp) / "final.pt")
            r = run_worker({"params": args.params, "prepared": str(data), "changes": changes,
                            "seed": params.base.seed, "out": out})  # fmt: skip
            m = r["metrics"]
            row = {"devices": m["clients_total"], "register_s": m["register_seconds"],
                   "median_round_s": r["median_round_s"],
                   "rounds_per_minute": 60.0 / r["median_round_s"],
                   "eval_s": m["federated_eval_seconds"], "test_clips": n * clips[1],
                   "driver_peak_mb": r["driver_peak_mb"],
                   "tree_peak_mb": r["tree_peak_mb"], "wall_s": r["wall_s"],
                   "round_seconds": r["round_seconds"],
                   "driver_rss_start_mb": r["driver_rss_start_mb"]}  # fmt: skip
            system.append(row)
            print("  " + ", ".join(f"{h} {format(row[k], f)}" for k, h, f in SYSTEM_COLUMNS),
                  flush=True)  # fmt: skip
        if args.real:
            seeds = [int(s) for s in args.seeds.split(",")]
            base = {"rounds": args.real_rounds} if args.real_rounds else {}
            variants = {
                f"one device per speaker, {params.finetune.clients_per_round} per round": base,
                f"{args.real} devices, {args.real_per_round} per round":
                    {**base, "population": args.real, "clients_per_round": args.real_per_round},
            }  # fmt: skip
            for label, changes in variants.items():
                for seed in seeds:
                    print(f"seed {seed}: {label} ...", flush=True)
                    r = run_worker({"params": args.params, "prepared": params.paths.prepared,
                                    "changes": changes, "seed": seed,
                                    "out": str(Path(tmp) / "final.pt")})  # fmt: skip
                    real.setdefault(label, []).append({"seed": seed, **r})
                    m = r["metrics"]
                    print(f"  client test {m['acc_before']:.1f} -> {m['acc_after']:.1f}, server "
                          f"test {m['server_test_acc_after']:.1f}, {r['wall_s']:.0f} s",
                          flush=True)  # fmt: skip
    if system:
        print(f"\nsystems: {args.per_round} devices per round, {args.rounds} rounds, each device "
              f"{clips[0]} training + {clips[1]} test clips (random features)")  # fmt: skip
        print(table([h for _, h, _ in SYSTEM_COLUMNS],
                    [[format(r[k], f) for k, _, f in SYSTEM_COLUMNS] for r in system]))  # fmt: skip
    if real:
        print("\naccuracy on the default corpus (mean ± stdev over seeds)")
        rows = []
        for label, runs in real.items():
            ms = [r["metrics"] for r in runs]
            rows.append([label, ms[0]["clients_total"],
                         mean_spread([m["acc_after"] for m in ms]),
                         mean_spread([m["server_test_acc_after"] for m in ms]),
                         mean_spread([r["median_round_s"] for r in runs], ".2f"),
                         mean_spread([r["wall_s"] for r in runs], ".0f")])  # fmt: skip
        print(table(["setting", "devices", "client test %", "server test %", "s per round",
                     "stage s"], rows))  # fmt: skip
    settings = {"populations": populations, "per_round": args.per_round, "rounds": args.rounds,
                "device_clips": clips, "eval_clients": args.eval_clients,
                "speakers": SPEAKERS, "real": args.real, "real_per_round": args.real_per_round,
                "minutes": round((time.perf_counter() - started) / 60, 1)}  # fmt: skip
    print(f"written {save(args.name, {'settings': settings, 'system': system, 'real': real})}")


if __name__ == "__main__":
    main()
