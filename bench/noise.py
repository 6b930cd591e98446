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

from pathlib import Path

from bench.common import arguments, quiet
from bench.recipe import add_common_arguments, report, run_variants
from components.config import load_params


def main() -> None:
    parser = arguments("bench.noise", __doc__)
    add_common_arguments(parser, "noise")
    parser.add_argument("--mixes", default="0,0.5", help="supernet.noise_mix values")
    parser.add_argument("--snr", default=None, help="supernet.noise_snr_db as LOW,HIGH")
    args = parser.parse_args()
    quiet()
    params = load_params(Path(args.params))
    snr = (tuple(float(v) for v in args.snr.split(",")) if args.snr
           else params.supernet.noise_snr_db)  # fmt: skip
    variants = {f"noise_mix {float(m):g}": {"noise_mix": float(m), "noise_snr_db": snr}
                for m in args.mixes.split(",")}  # fmt: skip
    widths = [int(w) for w in args.widths.split(",")] if args.widths else None
    command = "python -m bench.noise " + " ".join(
        f"--{k} {v}" for k, v in (("mixes", args.mixes), ("seeds", args.seeds),
                                  ("snr", args.snr), ("widths", args.widths)) if v)  # fmt: skip
    print(f"noise SNR {snr[0]:g}-{snr[1]:g} dB", flush=True)
    runs = run_variants(params, variants, [int(s) for s in args.seeds.split(",")], widths,
                        args.name, command, {"noise_snr_db": list(snr)})  # fmt: skip
    report(runs, widths)


if __name__ == "__main__":
    main()
