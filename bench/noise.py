"""Background-noise augmentation in training (``supernet.noise_mix``): what mixing the server's
own noise into its training clips buys on voices and rooms it never heard (issues 15, 17).

The client pool of the default corpus is noisier than the server's (SNR 0-12 dB with babble,
against 10-30 dB) and speaks with voices the server never hears; the server trains on its own
clips only. Mixing a share of each training batch with the server's own ``_silence_`` clips
(noise alone) at a low SNR (``noise_snr_db``; in the mel power domain, ``mix_noise``) is the
standard remedy (the Speech Commands recipe mixes its background noise into training clips). This
bench trains the same network (the committed searched architecture, ``search/arch.json``, or
``--widths``) from scratch with the search stage's recipe (``search.train_epochs`` of the
super-network's), once per ``--mixes`` value and seed, on the committed prepared data, and scores
every model on the same held-out clips: server and client test accuracy, `_unknown_` recall on
the server test split, the real-voice set, and streaming detection as the export stage measures it
(``bench.negatives``' columns). The training budget is the same for every row (same clips, same
epochs); only the augmentation differs. No federated fine-tuning: the shipped model is fine-tuned
after this network.

    python -m bench.noise [--mixes 0,0.5] [--snr 0,15] [--seeds 1234,1,2] [--widths 0,16,...]
        [--name noise]
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.common import arguments, compare, mean_spread, quiet, save, table
from bench.data import real_voice_set
from bench.detector import lower_is_better
from bench.negatives import COLUMNS, model_figures
from components.config import load_params
from components.data.labels import SILENCE, UNKNOWN
from components.data.prepared import load_prepared
from components.model.space import SearchSpace
from components.model.subnet import SubNetwork
from components.training.data import load_server_data
from components.training.trainer import fit


def main() -> None:
    parser = arguments("bench.noise", __doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--mixes", default="0,0.5", help="supernet.noise_mix values")
    parser.add_argument("--snr", default=None, help="supernet.noise_snr_db as LOW,HIGH")
    parser.add_argument("--seeds", default="1234,1,2", help="training seeds, comma-separated")
    parser.add_argument("--widths", default=None, help="the network (default: search/arch.json)")
    parser.add_argument("--name", default="noise", help="results file name")
    args = parser.parse_args()
    quiet()
    params = load_params(Path(args.params))
    mixes = [float(m) for m in args.mixes.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    snr = (tuple(float(v) for v in args.snr.split(",")) if args.snr
           else params.supernet.noise_snr_db)  # fmt: skip
    arch = json.loads((Path(params.paths.search) / "arch.json").read_text())
    space = SearchSpace.from_dict(arch["space"])
    widths = [int(w) for w in args.widths.split(",")] if args.widths else list(arch["widths"])
    prepared_dir = Path(params.paths.prepared)
    reference = load_prepared(prepared_dir)
    data = load_server_data(prepared_dir)
    classes = [*params.prepare.keywords, UNKNOWN, SILENCE]
    root = Path(tempfile.mkdtemp(prefix="edgelearn-bench-noise-"))
    real_x, real_labels, _ = real_voice_set(params, root / "real_voices")
    meta = {"sample_rate": params.features.sample_rate,
            "clip_samples": params.features.clip_samples}  # fmt: skip
    epochs = params.search.train_epochs
    print(f"the network {widths}, {epochs} epochs on {len(data.train_y)} server training clips "
          f"({len(data.noise_clips())} of them noise alone); noise SNR {snr[0]:g}-{snr[1]:g} dB",
          flush=True)  # fmt: skip
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    for seed in seeds:
        for mix in mixes:
            recipe = params.supernet.model_copy(
                update={"epochs": epochs, "noise_mix": mix, "noise_snr_db": snr}
            )
            torch.manual_seed(seed)
            net = SubNetwork(space, widths)
            net.norm.set_stats(data.train_x)
            print(f"seed {seed}: noise_mix {mix:g}: training ...", flush=True)
            result = fit(net, recipe, data, seed)
            net.eval()
            m: dict[str, Any] = {"train_seconds": result.seconds}
            m |= model_figures(net, params, reference, (real_x, real_labels, classes), meta)
            runs.append({"seed": seed, "noise_mix": mix, "metrics": m})
            save(args.name, {
                "command": "python -m bench.noise " + " ".join(
                    f"--{k} {v}" for k, v in (("mixes", args.mixes), ("seeds", args.seeds),
                                              ("snr", args.snr), ("widths", args.widths)) if v),
                "network": widths, "epochs": epochs, "noise_snr_db": list(snr),
                "train_clips": len(data.train_y), "noise_clips": len(data.noise_clips()),
                "minutes": round((time.perf_counter() - started) / 60, 1), "runs": runs,
            })  # fmt: skip
            print("  " + ", ".join(f"{h} {m[k]:.3g}" for k, h in COLUMNS), flush=True)

    by_mix = {mix: [r["metrics"] for r in runs if r["noise_mix"] == mix] for mix in mixes}
    rows = [[f"{mix:g}", len(ms), *(mean_spread([float(m[k]) for m in ms],
                                                ".2f" if k == "detection_threshold" else ".1f")
                                    for k, _ in COLUMNS)]
            for mix, ms in by_mix.items()]  # fmt: skip
    print(f"\nthe network {widths}; mean ± stdev over {len(seeds)} seeds")
    print(table(["noise_mix", "seeds", *(h for _, h in COLUMNS)], rows))
    base = by_mix[mixes[0]]
    for mix in mixes[1:]:
        verdicts = []
        for k, h in COLUMNS:
            xs, ys = [float(m[k]) for m in by_mix[mix]], [float(m[k]) for m in base]
            if k == "detection_threshold" or not all(math.isfinite(v) for v in xs + ys):
                continue
            verdict = compare(xs, ys)
            lower = k in ("false_accepts_per_hour", "false_reject_rate", "frr_at_10_fa")
            verdicts.append(f"{h} {lower_is_better(verdict) if lower else verdict}")
        print(f"noise_mix {mix:g} against {mixes[0]:g}: " + "; ".join(verdicts))


if __name__ == "__main__":
    main()
