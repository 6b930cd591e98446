"""Data benchmark: the default corpus per engine and pool, its generation time, and what the
recorded voices buy on real speech.

1. Synthesizes the default corpus (params.yaml), the same without its running-speech phrases
   (``corpus.unknown_phrases_per_speaker: 0``) and the same with every speaker on espeak-ng
   (``corpus.espeak_share: 1``; the same number of speakers and clips, rooms, bands, codecs and
   noise), each into its own temporary workspace, timing the generation, and prepares each.
2. For each seed, trains the same network (the super-network's largest sub-network, from
   scratch, with the super-network's recipe and epochs) on each corpus's server training split.
3. Scores every model on its own server test split, on the default corpus's server and client
   test splits (the same held-out clips for both models) and on the real-voice set (the human
   recordings Debian ships, ``components/data/real_voices.py``), loaded as ``edgelearn
   evaluate`` loads clips and turned into features by the same frontend as training.

The real-voice set is small (see its manifest in the JSON): its figures move in steps of one
clip, so read them with their spread over seeds.

    python -m bench.data [--seeds 1234,1,2] [--epochs N] [--workdir DIR]
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.common import arguments, mean_spread, quiet, save, table
from components import corpus as corpus_stage
from components import prepare as prepare_stage
from components.config import Params, load_params
from components.data import real_voices
from components.data.labels import SILENCE, UNKNOWN
from components.data.prepared import load_prepared
from components.data.splits import CLIENT, SERVER, TEST
from components.export.evaluate import find_clips
from components.export.predict import load_clip
from components.features import compute_features
from components.model.space import space_from_params
from components.model.subnet import SubNetwork
from components.training.data import load_server_data
from components.training.trainer import fit

# name -> corpus overrides: the default, without running speech, and espeak-ng alone
CORPORA: dict[str, dict[str, Any]] = {
    "default (all engines)": {},
    "all engines, no phrases": {"unknown_phrases_per_speaker": 0},
    "espeak-ng only": {"espeak_share": 1.0},
}


def build_corpus(params: Params, workdir: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """Synthesize and prepare one corpus in ``workdir``; its generation and preparation times."""
    if overrides:
        corpus = params.corpus.model_copy(update=overrides)
        params = params.model_copy(update={"corpus": corpus})
    t0 = time.perf_counter()
    made = corpus_stage.run(params, workdir)
    t1 = time.perf_counter()
    prepare_stage.run(params, workdir)
    t2 = time.perf_counter()
    return {"generate_seconds": t1 - t0, "prepare_seconds": t2 - t1, "corpus": made.metrics}


def corpus_statistics(corpus_dir: Path) -> dict[str, dict[str, Any]]:
    """Speakers, voices, clips and channel conditions per pool and engine of a corpus."""
    speakers = json.loads((corpus_dir / "speakers.json").read_text())
    clips: Counter[str] = Counter()
    for wav in corpus_dir.glob("*/*_nohash_*.wav"):
        clips[wav.name.split("_nohash_")[0]] += 1
    groups: dict[str, list[str]] = defaultdict(list)
    for sid, meta in speakers.items():
        groups[f"{meta['pool']}/{meta['engine']}"].append(sid)
    stats = {}
    for key, ids in sorted(groups.items()):
        metas = [speakers[i] for i in ids]
        channels = [m["channel"] for m in metas]
        stats[key] = {
            "speakers": len(ids),
            "voices": sorted({m["voice"] for m in metas}),
            "clips": sum(clips[i] for i in ids),
            "rooms_pct": 100.0 * sum(c["rt60_s"] is not None for c in channels) / len(ids),
            "codec_pct": 100.0 * sum(c["codec"] != "none" for c in channels) / len(ids),
            "snr_db": metas[0]["snr_db"],
        }
    return stats


def engine_of_rows(workdir: Path, params: Params) -> dict[str, str]:
    speakers = json.loads((workdir / params.paths.corpus / "speakers.json").read_text())
    return {sid: meta["engine"] for sid, meta in speakers.items()}


def real_voice_set(params: Params, out_dir: Path) -> tuple[torch.Tensor, list[str], dict]:
    """The real-voice clips' features, labels and manifest, loaded as ``evaluate`` loads them."""
    keywords = params.prepare.keywords
    manifest = real_voices.build(out_dir, keywords)
    metadata = {"sample_rate": params.features.sample_rate,
                "clip_samples": params.features.clip_samples}  # fmt: skip
    classes = [*keywords, UNKNOWN, SILENCE]
    found = find_clips(out_dir, classes)
    audio = np.concatenate([load_clip(path, metadata)[0] for path, _ in found.clips])
    features = compute_features(torch.from_numpy(audio), params.features)
    return features, [label for _, label in found.clips], manifest


@torch.no_grad()
def predictions(model: torch.nn.Module, features: torch.Tensor) -> np.ndarray:
    model.eval()
    return model(features).argmax(1).numpy()


def real_voice_scores(
    predicted: np.ndarray, labels: list[str], classes: list[str]
) -> dict[str, float]:
    said = [classes[i] for i in predicted]
    keyword = [i for i, lab in enumerate(labels) if lab != UNKNOWN]
    unknown = [i for i, lab in enumerate(labels) if lab == UNKNOWN]
    return {
        "real_voice_acc": 100.0 * np.mean([said[i] == labels[i] for i in range(len(labels))]),
        "real_voice_keyword_acc": 100.0 * np.mean([said[i] == labels[i] for i in keyword]),
        "real_voice_unknown_pct": 100.0 * np.mean([said[i] == UNKNOWN for i in unknown]),
    }


def split_scores(
    model: torch.nn.Module, workdir: Path, params: Params, engines: dict[str, str]
) -> dict[str, Any]:
    """Accuracy on the server and client test splits of ``workdir``, overall and per engine."""
    data = load_prepared(workdir / params.paths.prepared)
    out: dict[str, Any] = {}
    for pool in (SERVER, CLIENT):
        rows = data.select(pool, TEST)
        x, y = data.tensors_at(rows)
        right = predictions(model, x) == y.numpy()
        out[f"{pool}_test_acc"] = 100.0 * float(right.mean())
        speakers = data.manifest["speaker"].to_numpy()[rows]
        per_engine: dict[str, list[bool]] = defaultdict(list)
        for ok, sid in zip(right, speakers, strict=True):
            per_engine[engines.get(sid, "_silence_ (no speaker)")].append(bool(ok))
        out[f"{pool}_test_acc_per_engine"] = {
            e: 100.0 * float(np.mean(v)) for e, v in sorted(per_engine.items())
        }
    return out


def main() -> None:
    parser = arguments("bench.data", __doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--seeds", default="1234,1,2", help="training seeds, comma-separated")
    parser.add_argument("--epochs", type=int, default=None, help="override supernet.epochs")
    parser.add_argument("--workdir", default=None, help="keep the corpora here (default: temp)")
    args = parser.parse_args()
    quiet()
    params = load_params(args.params)
    recipe = params.supernet
    if args.epochs:
        recipe = recipe.model_copy(update={"epochs": args.epochs})
    seeds = [int(s) for s in args.seeds.split(",")]
    root = Path(args.workdir or tempfile.mkdtemp(prefix="edgelearn-bench-data-"))
    classes = [*params.prepare.keywords, UNKNOWN, SILENCE]

    built: dict[str, dict[str, Any]] = {}
    for i, (name, overrides) in enumerate(CORPORA.items()):
        workdir = root / f"corpus-{i}"
        print(f"synthesizing and preparing the corpus '{name}' in {workdir} ...", flush=True)
        built[name] = build_corpus(params, workdir, overrides)
        built[name]["overrides"] = overrides
        built[name]["workdir"] = workdir
        built[name]["statistics"] = corpus_statistics(workdir / params.paths.corpus)
    default = next(iter(CORPORA))
    default_dir = built[default]["workdir"]
    engines = engine_of_rows(default_dir, params)
    real_x, real_labels, real_manifest = real_voice_set(params, root / "real_voices")

    runs: list[dict[str, Any]] = []
    for seed in seeds:
        for name, corpus in built.items():
            data = load_server_data(corpus["workdir"] / params.paths.prepared)
            space = space_from_params(recipe, data.train_x.shape[1], data.train_x.shape[2],
                                      len(data.classes))  # fmt: skip
            torch.manual_seed(seed)
            net = SubNetwork(space, space.largest())
            net.norm.set_stats(data.train_x)
            print(f"seed {seed}: training the full network on '{name}' ({recipe.epochs} "
                  "epochs) ...", flush=True)  # fmt: skip
            result = fit(net, recipe, data, seed)
            own = split_scores(net, corpus["workdir"], params, engines)
            shared = split_scores(net, default_dir, params, engines)
            runs.append({
                "seed": seed, "corpus": name, "train_seconds": result.seconds,
                "own_server_test_acc": own["server_test_acc"],
                "server_test_acc": shared["server_test_acc"],
                "client_test_acc": shared["client_test_acc"],
                "server_test_acc_per_engine": shared["server_test_acc_per_engine"],
                "client_test_acc_per_engine": shared["client_test_acc_per_engine"],
                **real_voice_scores(predictions(net, real_x), real_labels, classes),
            })  # fmt: skip

    # corpus statistics (default corpus) and generation time
    stat_rows = [
        [key, s["speakers"], len(s["voices"]), s["clips"], f"{s['rooms_pct']:.0f}",
         f"{s['codec_pct']:.0f}", f"{s['snr_db'][0]:g} to {s['snr_db'][1]:g}"]
        for key, s in built[default]["statistics"].items()
    ]  # fmt: skip
    print("\nThe default corpus per pool and engine:")
    print(table(["pool/engine", "speakers", "voices", "clips", "rooms %", "codec %",
                 "SNR dB"], stat_rows))  # fmt: skip
    print()
    print(table(["corpus", "clips", "generation s", "prepare s"], [
        [name, c["corpus"]["num_clips"], f"{c['generate_seconds']:.0f}",
         f"{c['prepare_seconds']:.0f}"] for name, c in built.items()
    ]))  # fmt: skip

    columns = ["own_server_test_acc", "server_test_acc", "client_test_acc", "real_voice_acc",
               "real_voice_keyword_acc", "real_voice_unknown_pct"]  # fmt: skip
    summary: dict[str, dict[str, Any]] = {}
    rows = []
    for name in built:
        mine = [r for r in runs if r["corpus"] == name]
        summary[name] = {
            c: {"mean": statistics.mean(r[c] for r in mine),
                "stdev": statistics.stdev(r[c] for r in mine) if len(mine) > 1 else 0.0,
                "per_seed": [r[c] for r in mine]}
            for c in columns
        }  # fmt: skip
        rows.append([name, *(mean_spread([r[c] for r in mine]) for c in columns)])
    print(f"\nThe full network trained on each corpus ({len(seeds)} seeds, mean ± stdev, %):")
    print(table(["trained on", "own server test", "default server test", "default client test",
                 "real voices", "real keywords", "real unknown called unknown"], rows))  # fmt: skip
    engine_rows = [
        [f"{pool}/{engine}", *(
            mean_spread([r[key][engine] for r in runs if r["corpus"] == name]) for name in built)]
        for pool in ("server", "client")
        for key in [f"{pool}_test_acc_per_engine"]
        for engine in sorted({e for r in runs for e in r[key]})
    ]  # fmt: skip
    print("\nDefault corpus test splits per engine (same models, %):")
    print(table(["pool/engine", *built], engine_rows))

    payload = {
        "seeds": seeds,
        "epochs": recipe.epochs,
        "network": "largest sub-network of the super-network, trained from scratch",
        "corpora": {
            name: {k: v for k, v in c.items() if k != "workdir"} for name, c in built.items()
        },
        "real_voices": {
            "counts": real_manifest["counts"],
            "speakers": {k: len(v) for k, v in real_manifest["speakers"].items()},
            "packages": real_manifest["packages"],
        },
        "summary": summary,
        "runs": runs,
    }
    print(f"\nwritten {save('data', payload)}")
    if not args.workdir:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
