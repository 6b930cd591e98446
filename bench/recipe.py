"""Training-recipe variants at equal budget: one network trained from scratch per variant and seed,
every model scored on the same held-out clips, streams and real voices (issues 15, 17).

Each variant overrides keys of the ``supernet`` recipe (``time_shift_max``, ``label_smoothing``,
``noise_mix``, ...); everything else is the search stage's training of a discovered network:
``search.train_epochs`` epochs of the super-network's recipe on the committed prepared data. The
network is the committed searched architecture (``search/arch.json``) or ``--widths``. The columns
are ``bench.negatives``' (server and client test accuracy, ``_unknown_`` recall, the real-voice
set, and streaming detection as the export stage measures it). No federated fine-tuning: the
shipped model is fine-tuned after this network. The first variant is the reference each other is
compared with (a difference within the larger spread is a tie).

``--near-misses`` adds ``bench.near_misses``' figures; ``--finetune`` runs each trained network
through the pipeline's finetune stage (its settings, the same seed) and scores it again; a
variant's ``"finetune"`` key then holds finetune overrides (dotted keys, as in
``bench.federated_sweep``: ``{"finetune": {"server_learning.steps": 40}}``). A variant's
``"start": "inherited"`` trains the network on from the committed super-network's weights (what
``search.train_from: inherited`` does) instead of from scratch.

    python -m bench.recipe --variants '{"default": {}, "shift 16": {"time_shift_max": 16}}'
        [--seeds 1234,1,2] [--widths 0,16,...] [--near-misses] [--finetune] [--name recipe]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from bench.common import arguments, compare, mean_spread, quiet, save, table
from bench.data import real_voice_set
from bench.detector import lower_is_better
from bench.negatives import COLUMNS, model_figures
from components.config import Params, load_params
from components.data.labels import SILENCE, UNKNOWN
from components.data.prepared import PreparedData, load_prepared
from components.model.checkpoint import load_subnet, load_supernet_file, save_subnet
from components.model.space import SearchSpace
from components.model.subnet import SubNetwork, extract_subnet
from components.training.data import load_server_data
from components.training.trainer import fit

FINETUNE_KEY = "finetune"  # in a variant: finetune overrides for --finetune (dotted keys)
START_KEY = "start"  # in a variant: "scratch" (default) or "inherited" (super-network weights)
STARTS = ("scratch", "inherited")
BENCH_KEYS = (FINETUNE_KEY, START_KEY)  # variant keys that are not supernet recipe keys
LOWER_IS_BETTER = (  # figures where less is better (the rest: more is better)
    "false_accepts_per_hour", "false_reject_rate", "frr_at_10_fa", "near_miss_keyword_pct",
    "near_miss_inside_keyword_pct", "near_miss_rhyme_keyword_pct", "near_miss_onset_keyword_pct",
    "other_unknown_keyword_pct", "train_near_miss_keyword_pct",
)  # fmt: skip


def add_common_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """The options every variant bench takes: params file, seeds, network, results name."""
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--seeds", default="1234,1,2", help="training seeds, comma-separated")
    parser.add_argument("--widths", default=None, help="the network (default: search/arch.json)")
    parser.add_argument("--name", default=name, help="results file name")


def federated(
    net: SubNetwork, params: Params, seed: int, root: Path, widths: list[int],
    changes: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The finetune stage's metrics from ``net`` (written to ``root/start.pt``), its settings
    with ``changes`` (dotted ``finetune`` keys, as ``bench.federated_sweep`` takes them) and
    ``base.seed`` = ``seed``; the fine-tuned network is written to ``root/final.pt``."""
    from bench.federated import variant
    from bench.federated_sweep import with_seed
    from components.federated import stage

    save_subnet(root / "start.pt", net, {"widths": widths})
    p = variant(with_seed(params, seed), root / "final.pt", init=str(root / "start.pt"),
                **(changes or {}))  # fmt: skip
    return dict(stage.run(p, Path(".")).metrics)


def run_variants(
    params: Params, variants: dict[str, dict[str, Any]], seeds: list[int],
    widths: list[int] | None, name: str, command: str, extra: dict[str, Any] | None = None,
    prepared: dict[str, Path] | None = None,
    figures: Callable[[SubNetwork, PreparedData], dict[str, Any]] | None = None,
    finetune: bool = False,
) -> list[dict[str, Any]]:  # fmt: skip
    """Train and score every variant (``supernet`` recipe overrides) for every seed (seed-major,
    so a stopped run has whole seeds); the results file is rewritten after each model. A variant
    trains on ``prepared[variant]`` when given, else on the committed preparation, and is always
    scored on the committed one (``figures`` adds its own figures). With ``finetune`` each trained
    network then goes through the pipeline's federated stage (the default settings, the same seed)
    and the result is scored again (``metrics["finetuned"]``). Returns the runs."""
    arch = json.loads((Path(params.paths.search) / "arch.json").read_text())
    space = SearchSpace.from_dict(arch["space"])
    widths = widths or list(arch["widths"])
    prepared_dir = Path(params.paths.prepared)
    reference = load_prepared(prepared_dir)
    dirs = {v: (prepared or {}).get(v, prepared_dir) for v in variants}
    loaded = {d: load_server_data(d) for d in set(dirs.values())}  # each preparation once
    data = {v: loaded[d] for v, d in dirs.items()}
    classes = [*params.prepare.keywords, UNKNOWN, SILENCE]
    root = Path(tempfile.mkdtemp(prefix="edgelearn-bench-recipe-"))
    real_x, real_labels, _ = real_voice_set(params, root / "real_voices")
    meta = {"sample_rate": params.features.sample_rate,
            "clip_samples": params.features.clip_samples}  # fmt: skip
    epochs = params.search.train_epochs
    supernet = None
    if any(o.get(START_KEY) == "inherited" for o in variants.values()):
        supernet, _ = load_supernet_file(Path(params.paths.supernet))
        if supernet.space != space:
            raise SystemExit(f"{params.paths.supernet}: not the super-network of "
                             f"{params.paths.search}/arch.json's space")  # fmt: skip
    for v, d in data.items():
        print(f"{v}: the network {widths}, {epochs} epochs on {len(d.train_y)} server training "
              f"clips ({len(d.noise_clips())} of them noise alone)", flush=True)  # fmt: skip
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    for seed in seeds:
        for variant, overrides in variants.items():
            recipe_overrides = {k: v for k, v in overrides.items() if k not in BENCH_KEYS}
            recipe = params.supernet.model_copy(update={"epochs": epochs, **recipe_overrides})
            torch.manual_seed(seed)
            if overrides.get(START_KEY) == "inherited" and supernet is not None:
                net = extract_subnet(supernet, widths)  # as search.train_from: inherited
            else:
                net = SubNetwork(space, widths)
                net.norm.set_stats(data[variant].train_x)
            print(f"seed {seed}: {variant}: training ...", flush=True)
            result = fit(net, recipe, data[variant], seed)
            net.eval()
            m: dict[str, Any] = {"train_seconds": result.seconds}
            m |= model_figures(net, params, reference, (real_x, real_labels, classes), meta)
            m |= figures(net, reference) if figures else {}
            if finetune:
                m["finetuned"] = federated(net, params, seed, root, widths,
                                           overrides.get(FINETUNE_KEY))  # fmt: skip
                tuned = load_subnet(root / "final.pt")
                m["finetuned"] |= model_figures(tuned, params, reference,
                                                (real_x, real_labels, classes), meta)  # fmt: skip
                m["finetuned"] |= figures(tuned, reference) if figures else {}
            runs.append({"seed": seed, "variant": variant, "overrides": overrides, "metrics": m})
            save(name, {
                "command": command, "network": widths, "epochs": epochs,
                "recipe": params.supernet.model_dump(mode="json"), "variants": variants,
                "train_clips": {v: len(d.train_y) for v, d in data.items()},
                "noise_clips": {v: len(d.noise_clips()) for v, d in data.items()},
                "minutes": round((time.perf_counter() - started) / 60, 1), **(extra or {}),
                "runs": runs,
            })  # fmt: skip
            print("  " + ", ".join(f"{h} {m[k]:.3g}" for k, h in COLUMNS), flush=True)
            if finetune:
                f = m["finetuned"]
                print("  fine-tuned: " + ", ".join(f"{h} {f[k]:.3g}" for k, h in COLUMNS),
                      flush=True)  # fmt: skip
    return runs


def report(
    runs: list[dict[str, Any]], widths: list[int] | None,
    columns: list[tuple[str, str]] = COLUMNS, nested: str | None = None,
) -> None:  # fmt: skip
    """The table (mean ± stdev over seeds per variant) and each variant against the first; with
    ``nested``, of the figures under that key of each run's metrics (``finetuned``)."""
    names = list(dict.fromkeys(r["variant"] for r in runs))
    by = {n: [r["metrics"][nested] if nested else r["metrics"] for r in runs
              if r["variant"] == n] for n in names}  # fmt: skip
    if nested:
        print(f"\nafter {nested}:")
    rows = [[str(n), len(ms), *(mean_spread([float(m[k]) for m in ms],
                                            ".4f" if k == "detection_threshold" else ".1f")
                                for k, _ in columns)]
            for n, ms in by.items()]  # fmt: skip
    seeds = len({r["seed"] for r in runs})
    print(f"\nthe network {widths or 'of search/arch.json'}; mean ± stdev over {seeds} seeds")
    print(table(["variant", "seeds", *(h for _, h in columns)], rows))
    base = by[names[0]]
    for n in names[1:]:
        verdicts = []
        for k, h in columns:
            xs, ys = [float(m[k]) for m in by[n]], [float(m[k]) for m in base]
            if k == "detection_threshold" or not all(math.isfinite(v) for v in xs + ys):
                continue
            verdict = compare(xs, ys)
            lower = k in LOWER_IS_BETTER
            verdicts.append(f"{h} {lower_is_better(verdict) if lower else verdict}")
        print(f"{n} against {names[0]}: " + "; ".join(verdicts))


def main() -> None:
    parser = arguments("bench.recipe", __doc__)
    add_common_arguments(parser, "recipe")
    parser.add_argument("--variants", required=True,
                        help='JSON: {"name": {supernet key: value, ...}, ...}; the first is the '
                             "reference")  # fmt: skip
    parser.add_argument("--near-misses", action="store_true",
                        help="also the near-miss figures of bench.near_misses")  # fmt: skip
    parser.add_argument("--finetune", action="store_true",
                        help="also score each after the pipeline's federated stage")  # fmt: skip
    args = parser.parse_args()
    quiet()
    params = load_params(Path(args.params))
    try:
        variants = json.loads(args.variants)
    except json.JSONDecodeError as err:
        parser.error(f"--variants: not JSON ({err})")
    if (
        not isinstance(variants, dict)
        or not variants
        or not all(isinstance(v, dict) for v in variants.values())
    ):
        parser.error('--variants: expected {"name": {supernet key: value, ...}, ...}')
    fields = set(type(params.supernet).model_fields) | {START_KEY}
    fields |= {FINETUNE_KEY} if args.finetune else set()
    unknown = {k for v in variants.values() for k in v} - fields
    if unknown:
        parser.error(f"--variants: not keys of supernet: {', '.join(sorted(unknown))}")
    for variant, overrides in variants.items():  # validated as params.yaml would be
        if overrides.get(START_KEY, "scratch") not in STARTS:
            parser.error(f"--variants: {variant!r}: start must be one of {', '.join(STARTS)}")
        recipe = {k: v for k, v in overrides.items() if k not in BENCH_KEYS}
        try:
            type(params.supernet).model_validate(params.supernet.model_dump() | recipe)
        except ValidationError as err:
            parser.error(f"--variants: {variant!r}: {err.errors()[0]['msg']} "
                         f"({'.'.join(map(str, err.errors()[0]['loc']))})")  # fmt: skip
    widths = [int(w) for w in args.widths.split(",")] if args.widths else None
    seeds = [int(s) for s in args.seeds.split(",")]
    command = (f"python -m bench.recipe --variants '{args.variants}' --seeds {args.seeds}"
               + (f" --widths {args.widths}" if args.widths else "")
               + (f" --name {args.name}" if args.name != "recipe" else ""))  # fmt: skip
    columns, figures = COLUMNS, None
    if args.near_misses:
        from bench.near_misses import EXTRA, kind_figures, near_miss_table

        command += " --near-misses"
        columns, figures = [*COLUMNS, *EXTRA], kind_figures(near_miss_table(params))
    if args.finetune:
        command += " --finetune"
    runs = run_variants(params, variants, seeds, widths, args.name, command, figures=figures,
                        finetune=args.finetune)  # fmt: skip
    report(runs, widths, columns)
    if args.finetune:
        report(runs, widths, [("acc_after", "client test (stage) %"),
                              ("server_test_acc_after", "server test (stage) %"), *columns],
               nested="finetuned")  # fmt: skip


if __name__ == "__main__":
    main()
