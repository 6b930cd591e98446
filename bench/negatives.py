"""Non-keyword training data benchmark: how many `_unknown_` clips the network trains on
(``prepare.unknown_ratio``), against clip accuracy, real voices and streaming detection.

Streaming detection is edgelearn's weakest figure (docs/benchmarks.md): most false accepts are
whole `_unknown_` clips (near-misses, other words, running speech) taken for a keyword, not
windows straddling two clips. The prepare stage keeps at most ``unknown_ratio`` x a mean keyword
class of `_unknown_` clips per split and drops the rest of what the corpus synthesized; this bench
asks what keeping more of them buys.

1. Prepares the committed corpus (``paths.corpus``, not re-synthesized) once per ratio, each into
   its own temporary workspace (the speakers' splits do not depend on the ratio; checked: no clip
   held out by the default preparation is trained on by another).
2. For each seed, trains the same network (the committed searched architecture,
   ``search/arch.json``, from scratch, with the search stage's training recipe:
   ``search.train_epochs`` of the super-network's recipe) on each preparation's server training
   split.
3. Scores every model on the *default* preparation's held-out clips (the same for every model):
   server and client test accuracy, `_unknown_` recall on the server test split, the real-voice set,
   and streaming detection exactly as the export stage measures it (the threshold chosen on the
   server validation streams, false accepts per hour and the false-reject rate on the server and
   client test streams; posteriors from the PyTorch model, which the export stage's parity check
   holds to the exported graph).

Not measured: federated fine-tuning (the shipped model is fine-tuned after this network); the
pipeline's own effect is measured by re-running it.

With ``--equal-steps`` every preparation trains for the default preparation's number of samples
(epochs scaled by its clip count, rounded), so more `_unknown_` clips replace keyword passes
instead of adding training time: what a change of the default would cost the 15-minute first run.

    python -m bench.negatives [--ratios 2,4] [--seeds 1234,1,2] [--epochs N] [--equal-steps]
        [--append] [--name negatives]
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from bench.common import RESULTS, arguments, compare, frr_at, mean_spread, quiet, save, table
from bench.data import predictions, real_voice_scores, real_voice_set
from components import prepare as prepare_stage
from components.config import Params, load_params
from components.data.labels import SILENCE, UNKNOWN
from components.data.prepared import PreparedData, load_prepared
from components.data.splits import CLIENT, SERVER, TEST, TRAIN
from components.export.detection import measure_detection
from components.export.predict import Predictor
from components.features import compute_features
from components.model.space import SearchSpace
from components.model.subnet import SubNetwork
from components.training.data import load_server_data
from components.training.trainer import fit


class TorchSession:
    """``Predictor.session`` for a PyTorch model: audio windows in, (logits, probabilities)
    out, through the training frontend."""

    def __init__(self, model: torch.nn.Module, params: Params) -> None:
        self.model, self.features = model.eval(), params.features

    def run(self, _: Any, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        audio = torch.from_numpy(next(iter(feed.values())))
        with torch.no_grad():
            logits = self.model(compute_features(audio, self.features))
        return logits.numpy(), torch.softmax(logits, 1).numpy()


class TorchPredictor:
    """What ``measure_detection`` needs of a ``Predictor``."""

    input = "audio"

    def __init__(self, model: torch.nn.Module, params: Params, labels: list[str]) -> None:
        self.session, self.labels = TorchSession(model, params), labels


def prepare(params: Params, ratio: float, workdir: Path) -> dict[str, Any]:
    """Prepare the committed corpus with ``unknown_ratio`` into ``workdir``."""
    corpus = (Path(params.paths.corpus)).resolve()
    link = workdir / params.paths.corpus
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(corpus, target_is_directory=True)
    p = params.model_copy(update={"prepare": params.prepare.model_copy(
        update={"unknown_ratio": ratio})})  # fmt: skip
    t0 = time.perf_counter()
    result = prepare_stage.run(p, workdir)
    return {"prepare_seconds": time.perf_counter() - t0, "summary": result.metrics}


def check_no_leak(default: PreparedData, other: PreparedData) -> None:
    """No clip the default preparation holds out is in ``other``'s server training split."""
    held = set()
    for pool in (SERVER, CLIENT):
        for split in {TEST, "val"} if pool == SERVER else {TEST}:
            rows = default.select(pool, split)
            held |= set(default.manifest["sha256"].to_numpy()[rows]) - {""}
    train = other.manifest["sha256"].to_numpy()[other.select(SERVER, TRAIN)]
    silence = other.manifest["label"].to_numpy()[other.select(SERVER, TRAIN)] == SILENCE
    leaked = set(train[~silence]) & held  # _silence_ rows share their noise file's digest
    if leaked:
        raise SystemExit(
            f"{len(leaked)} held-out clips are in another preparation's training split"
        )


def scores(model: SubNetwork, data: PreparedData) -> dict[str, float]:
    out = {}
    unknown = data.classes.index(UNKNOWN)
    for pool in (SERVER, CLIENT):
        x, y = data.tensors(pool, TEST)
        said = predictions(model, x)
        out[f"{pool}_test_acc"] = 100.0 * float((said == y.numpy()).mean())
        if pool == SERVER:
            is_unknown = y.numpy() == unknown
            out["server_test_unknown_recall"] = 100.0 * float((said[is_unknown] == unknown).mean())
    return out


def model_figures(
    net: SubNetwork, params: Params, reference: PreparedData,
    real: tuple[torch.Tensor, list[str], list[str]], meta: dict[str, int],
) -> dict[str, Any]:  # fmt: skip
    """Every figure of ``COLUMNS`` for a trained network on the ``reference`` preparation's
    held-out clips and streams and the real-voice set (``real``: features, labels, classes)."""
    real_x, real_labels, classes = real
    m: dict[str, Any] = dict(scores(net, reference))
    m |= real_voice_scores(predictions(net, real_x), real_labels, classes)
    predictor = cast(Predictor, TorchPredictor(net, params, reference.classes))
    report = measure_detection(predictor, meta, reference, params.export, params.base.seed)
    m |= {k: report.metrics[k] for k in
          ("detection_threshold", "false_accepts_per_hour", "false_reject_rate",
           "detection_target_met")}  # fmt: skip
    m["detection_curve"] = report.metrics["detection_curve"]
    curve = [(c["test_false_accepts_per_hour"], c["test_false_reject_rate"])
             for c in m["detection_curve"]]  # fmt: skip
    m["frr_at_10_fa"] = frr_at(curve, 10.0)
    return m


COLUMNS = [  # (key, header)
    ("server_test_acc", "server test %"),
    ("client_test_acc", "client test %"),
    ("server_test_unknown_recall", "server test _unknown_ recall %"),
    ("real_voice_keyword_acc", "real keywords %"),
    ("real_voice_unknown_pct", "real non-kw as _unknown_ %"),
    ("detection_threshold", "threshold (val)"),
    ("false_accepts_per_hour", "false accepts/h (test)"),
    ("false_reject_rate", "false rejects % (test)"),
    ("frr_at_10_fa", "false rejects % at <= 10 false accepts/h (test curve)"),
]


def main() -> None:
    parser = arguments("bench.negatives", __doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--ratios", default="2,4", help="prepare.unknown_ratio values")
    parser.add_argument("--seeds", default="1234,1,2", help="training seeds, comma-separated")
    parser.add_argument("--epochs", type=int, default=None, help="override search.train_epochs")
    parser.add_argument(
        "--equal-steps",
        action="store_true",
        help="scale each preparation's epochs to the default's number of samples",
    )
    parser.add_argument("--name", default="negatives", help="results file name")
    parser.add_argument(
        "--append",
        action="store_true",
        help="keep the runs already in the results file; skip those measured",
    )
    args = parser.parse_args()
    quiet()
    params = load_params(args.params)
    ratios = [float(r) for r in args.ratios.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    arch = json.loads((Path(params.paths.search) / "arch.json").read_text())
    space, widths = SearchSpace.from_dict(arch["space"]), list(arch["widths"])
    epochs = args.epochs or params.search.train_epochs
    root = Path(tempfile.mkdtemp(prefix="edgelearn-bench-negatives-"))
    classes = [*params.prepare.keywords, UNKNOWN, SILENCE]
    real_x, real_labels, _ = real_voice_set(params, root / "real_voices")
    meta = {"sample_rate": params.features.sample_rate,
            "clip_samples": params.features.clip_samples}  # fmt: skip

    prepared: dict[float, dict[str, Any]] = {}
    for ratio in ratios:
        workdir = root / f"ratio-{ratio:g}"
        print(f"preparing with unknown_ratio {ratio:g} in {workdir} ...", flush=True)
        made = prepare(params, ratio, workdir)
        prepared[ratio] = {**made, "dir": workdir / params.paths.prepared}
    default = params.prepare.unknown_ratio
    if default not in prepared:
        raise SystemExit(f"--ratios must include the default unknown_ratio {default:g}")
    reference = load_prepared(prepared[default]["dir"])
    for ratio in ratios:
        check_no_leak(reference, load_prepared(prepared[ratio]["dir"]))

    results = RESULTS / f"{args.name}.json"
    runs: list[dict[str, Any]] = []
    if args.append and results.exists():
        runs = json.loads(results.read_text())["runs"]
        print(f"appending to the {len(runs)} runs of {results}", flush=True)
    started = time.perf_counter()

    def record() -> Path:
        return save(args.name, {
            "seeds": sorted({r["seed"] for r in runs}), "default_ratio": default,
            "default_epochs": epochs,
            "network": {"widths": widths, "trained": "from scratch, search.train_epochs of the "
                        "super-network's recipe (or as many samples: --equal-steps)",
                        "scored_on": f"unknown_ratio {default:g} splits"},
            "preparations": {f"{r:g}": {k: v for k, v in p.items() if k != "dir"}
                             for r, p in prepared.items()},
            "minutes": round((time.perf_counter() - started) / 60, 1),
            "runs": runs,
        })  # fmt: skip

    for seed in seeds:
        for ratio in ratios:
            data = load_server_data(prepared[ratio]["dir"])
            n = epochs
            if args.equal_steps:
                n = max(1, round(epochs * prepared[default]["summary"]["num_train"]
                                 / len(data.train_y)))  # fmt: skip
            if any((r["seed"], r["ratio"], r["metrics"]["epochs"]) == (seed, ratio, n)
                   for r in runs):  # fmt: skip
                print(f"seed {seed}: unknown_ratio {ratio:g}, {n} epochs: already measured")
                continue
            recipe = params.supernet.model_copy(update={"epochs": n})
            torch.manual_seed(seed)
            net = SubNetwork(space, widths)
            net.norm.set_stats(data.train_x)
            print(f"seed {seed}: unknown_ratio {ratio:g}: training on {len(data.train_y)} clips "
                  f"({n} epochs) ...", flush=True)  # fmt: skip
            result = fit(net, recipe, data, seed)
            net.eval()
            m: dict[str, Any] = {"train_clips": len(data.train_y), "epochs": n,
                                 "train_seconds": result.seconds}  # fmt: skip
            m |= model_figures(net, params, reference, (real_x, real_labels, classes), meta)
            runs.append({"seed": seed, "ratio": ratio, "metrics": m})
            record()
            print("  " + ", ".join(f"{h} {m[k]:.3g}" for k, h in COLUMNS), flush=True)

    groups: dict[tuple[float, int], list[dict[str, Any]]] = {}
    for r in sorted(runs, key=lambda r: (r["ratio"], -r["metrics"]["epochs"])):
        groups.setdefault((r["ratio"], r["metrics"]["epochs"]), []).append(r["metrics"])
    rows = [[f"{ratio:g}", ms[0]["train_clips"], n, len(ms),
             *(mean_spread([float(m[k]) for m in ms], ".4f" if k == "detection_threshold"
                           else ".1f") for k, _ in COLUMNS)]
            for (ratio, n), ms in groups.items()]  # fmt: skip
    print(f"\nthe searched network {widths}; mean ± stdev over seeds; scored on the "
          f"unknown_ratio {default:g} splits")  # fmt: skip
    print(table(["unknown_ratio", "train clips", "epochs", "seeds", *(h for _, h in COLUMNS)],
                rows))  # fmt: skip
    base = {r["seed"]: r["metrics"] for r in runs
            if (r["ratio"], r["metrics"]["epochs"]) == (default, epochs)}  # fmt: skip
    for ratio, n in groups:
        if (ratio, n) == (default, epochs):
            continue
        paired = [
            (r["metrics"], base[r["seed"]])
            for r in runs
            if (r["ratio"], r["metrics"]["epochs"]) == (ratio, n) and r["seed"] in base
        ]
        if not paired:
            continue
        verdicts = ", ".join(
            f"{h}: {compare([float(a[k]) for a, _ in paired], [float(b[k]) for _, b in paired])}"
            for k, h in COLUMNS if k != "detection_threshold")  # fmt: skip
        print(f"ratio {ratio:g} ({n} epochs) - ratio {default:g} ({epochs} epochs), "
              f"{len(paired)} seeds: {verdicts}")  # fmt: skip
    print(f"written {record()}")


if __name__ == "__main__":
    main()
