"""Federated fine-tuning sweep: accuracy and upload per setting, from one start model.

Each argument is a JSON object of `finetune` overrides (dotted keys reach the sub-sections, as in
bench.federated); each runs the real finetune stage (Flower simulation, same rounds) once per
seed in ``--seeds`` and prints client-test accuracy before/after, server-test accuracy, the real
voices (keyword clips recognized, non-keyword clips called ``_unknown_``), upload bytes per client
per round and rounds per minute; with several seeds, accuracies are the mean and
the spread (min–max) over seeds. The seed (``base.seed``) drives client sampling, PVT's variable
selection and the clients' batch order; the start model is the same for every seed. This is how
the PVT defaults (fraction, clients, local steps, server optimizer) in params.yaml were chosen.

    python -m bench.federated_sweep --from-supernet 32,16,32,64,32,64 --seeds 1234,1,2 \\
        '{"pvt.strategy": "all", "omc.enabled": false}' \\
        '{"omc.enabled": false, "clients_per_round": 40, "local_steps": 20}'
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import arguments, quiet, save, table
from bench.federated import start_model, variant
from components.config import Params, load_params
from components.federated import stage
from components.model.checkpoint import load_subnet


def with_seed(params: Params, seed: int) -> Params:
    return Params.model_validate({**params.model_dump(), "base": {**params.base.model_dump(),
                                                                  "seed": seed}})  # fmt: skip


def spread(values: list[float]) -> str:
    """``mean`` for one value, ``mean (min–max)`` for several."""
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.1f}"
    return f"{mean:.1f} ({min(values):.1f}–{max(values):.1f})"


def main() -> None:
    parser = arguments("bench.federated_sweep", __doc__)
    parser.add_argument("overrides", nargs="+", help="JSON objects of finetune overrides")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--init", default=None, help="override paths.searched (the start model)")
    parser.add_argument("--from-supernet", default=None, help="widths, e.g. 32,16,32,64,32,64")
    parser.add_argument("--seeds", default=None, help="comma-separated base.seed values")
    parser.add_argument("--name", default="federated_sweep", help="results file name")
    args = parser.parse_args()
    quiet()
    from bench.data import predictions, real_voice_scores, real_voice_set

    params = load_params(args.params)
    classes = [*params.prepare.keywords, "_unknown_", "_silence_"]
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [params.base.seed]
    try:
        changes_list = [json.loads(text) for text in args.overrides]
    except json.JSONDecodeError as e:
        raise SystemExit(f"an override is not a JSON object: {e}") from None
    rows, records = [], []
    with tempfile.TemporaryDirectory(prefix="bench-federated-sweep-") as tmp:
        top = start_model(params, args.from_supernet, args.init, Path(tmp))
        real_x, real_labels, _ = real_voice_set(params, Path(tmp) / "real_voices")
        for text, changes in zip(args.overrides, changes_list, strict=True):
            runs: list[dict[str, Any]] = []
            for seed in seeds:
                p = variant(with_seed(params, seed), Path(tmp) / "final.pt", **top, **changes)
                start = time.perf_counter()
                m = dict(stage.run(p, Path(".")).metrics)
                m |= real_voice_scores(predictions(load_subnet(Path(tmp) / "final.pt"), real_x),
                                       real_labels, classes)  # fmt: skip
                runs.append({"seed": seed, "metrics": m,
                             "wall_seconds": time.perf_counter() - start})  # fmt: skip
                print(f"{text} seed {seed}: client {m['acc_before']:.1f} -> {m['acc_after']:.1f}, "
                      f"server {m['server_test_acc_after']:.1f}, real non-keywords as unknown "
                      f"{m['real_voice_unknown_pct']:.1f}", flush=True)  # fmt: skip
            records.append({"overrides": changes, "runs": runs})
            ms = [r["metrics"] for r in runs]

            def col(key: str, ms: list[dict[str, Any]] = ms) -> list[float]:
                return [float(m[key]) for m in ms]

            rows.append([text, spread(col("acc_before")), spread(col("acc_after")),
                         spread(col("server_test_acc_after")),
                         spread(col("real_voice_keyword_acc")),
                         spread(col("real_voice_unknown_pct")),
                         f"{statistics.fmean(col('upload_bytes_per_client_round')):.0f}",
                         f"{max(col('client_peak_train_mem_bytes')) / 1e6:.2f}",
                         f"{statistics.fmean(col('rounds_per_minute')):.1f}"])  # fmt: skip
    print(f"\nseeds: {seeds}")
    print(table(["overrides", "client acc before %", "after %", "server acc after %",
                 "real keywords %", "real non-kw as unknown %", "upload B/client/round",
                 "peak train MB", "rounds/min"], rows))  # fmt: skip
    out = {"init": args.from_supernet or args.init or params.paths.searched, "seeds": seeds,
           "runs": records}  # fmt: skip
    print(f"\nwritten {save(args.name, out)}")


if __name__ == "__main__":
    main()
