"""Near-misses in the training data: what a corpus that says more words sounding like a keyword
buys against streaming false accepts, at the same corpus size and training budget (issue 15).

Most false accepts of the exported model are near-miss clips ("stopped", "top", "upset"): the
share of them a model takes for a keyword is several times that of other words and running speech
(``near_miss_keyword_pct`` against ``other_unknown_keyword_pct`` below), while the default corpus
has each speaker say 2 near-misses against 4 other words. Each variant overrides ``corpus`` keys
(``unknown_words_per_speaker``, ``near_misses_per_speaker``, ...):

1. the corpus is synthesized again with the overrides into a temporary workspace (the same seed,
   so the same speakers, voices and channels; only what they say as unknown words changes) and
   prepared with the default ``prepare`` settings (``unknown_ratio`` raised when the variant has
   more unknown clips per speaker, so the prepare stage keeps all of them); a variant without
   overrides is the committed corpus and preparation themselves;
2. no clip held out by the committed preparation may be in a variant's training split (checked);
3. the same network (``search/arch.json`` or ``--widths``) trains from scratch on each variant's
   server training split with the search stage's recipe, per seed (``bench.recipe``), and every
   model is scored on the *committed* preparation's held-out clips and streams, so every row is
   judged on the same test: ``bench.negatives``' columns, and the share of the server and client
   test splits' near-miss clips and other ``_unknown_`` clips called a keyword.

    python -m bench.near_misses [--variants '{"default": {}, "2 words, 4 near-misses":
        {"unknown_words_per_speaker": 2, "near_misses_per_speaker": 4}}'] [--seeds 1234,1,2]
        [--widths 0,16,...] [--name near_misses]
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import arguments, quiet
from bench.data import predictions
from bench.negatives import COLUMNS, check_no_leak
from bench.recipe import add_common_arguments, report, run_variants
from components import corpus as corpus_stage
from components import prepare as prepare_stage
from components.config import Params, load_params
from components.data.espeak import find_espeak
from components.data.labels import UNKNOWN
from components.data.near_misses import NearMisses
from components.data.prepared import PreparedData, load_prepared
from components.data.splits import CLIENT, SERVER, TEST, TRAIN
from components.model.subnet import SubNetwork

DEFAULT_VARIANTS = {
    "default": {},
    "2 words, 4 near-misses": {"unknown_words_per_speaker": 2, "near_misses_per_speaker": 4},
}
EXTRA = [
    ("near_miss_keyword_pct", "near-misses called a keyword % (test clips)"),
    ("near_miss_inside_keyword_pct", "... containing it %"),
    ("near_miss_rhyme_keyword_pct", "... rhymes %"),
    ("near_miss_onset_keyword_pct", "... same onset %"),
    ("other_unknown_keyword_pct", "other _unknown_ called a keyword % (test clips)"),
    ("train_near_miss_keyword_pct", "near-misses called a keyword % (train clips)"),
]


def unknown_per_speaker(c: Any) -> int:
    return c.unknown_words_per_speaker + c.near_misses_per_speaker + c.unknown_phrases_per_speaker


def synthesize(params: Params, overrides: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """The corpus with ``overrides``, prepared, in ``workdir``; ``unknown_ratio`` scaled by the
    unknown clips per speaker so that the prepare stage keeps every one of them."""
    c = params.corpus.model_copy(update=overrides)
    scale = unknown_per_speaker(c) / unknown_per_speaker(params.corpus)
    ratio = params.prepare.unknown_ratio * max(scale, 1.0)
    prepare = params.prepare.model_copy(update={"unknown_ratio": ratio})
    p = params.model_copy(update={"corpus": c, "prepare": prepare})
    t0 = time.perf_counter()
    made = corpus_stage.run(p, workdir)
    t1 = time.perf_counter()
    prepared = prepare_stage.run(p, workdir)
    return {"corpus": made.metrics, "corpus_seconds": round(t1 - t0, 1),
            "prepare_seconds": round(time.perf_counter() - t1, 1), "unknown_ratio": ratio,
            "summary": prepared.metrics}  # fmt: skip


KINDS = ("inside", "rhyme", "onset")  # a word of two kinds counts as the first


def near_miss_kinds(table: dict[str, NearMisses]) -> dict[str, str]:
    """``word -> kind`` of every near-miss (``KINDS``' order decides a word of two kinds)."""
    kinds: dict[str, str] = {}
    for kind in KINDS:
        for misses in table.values():
            for word in getattr(misses, kind):
                kinds.setdefault(word, kind)
    return kinds


def near_miss_table(params: Params) -> dict[str, str]:
    """``word -> kind`` of the default corpus's near-misses (as the corpus stage finds them)."""
    _, table, _ = corpus_stage.unknown_vocabulary(
        params.prepare.keywords, params.corpus.near_misses_per_kind, params.base.seed,
        find_espeak(),
    )  # fmt: skip
    return near_miss_kinds(table)


def kind_figures(kinds: dict[str, str]) -> Any:
    """``figures`` for ``run_variants``: the share of the held-out (server and client test)
    near-miss clips, of each kind of them, and of the other ``_unknown_`` clips (words and
    running speech) that the model calls a keyword; and the same for the training split's
    near-misses (what the model fits against what it learns)."""

    def fired(net: SubNetwork, reference: PreparedData, rows: np.ndarray) -> tuple[Any, Any]:
        unknown = reference.classes.index(UNKNOWN)
        rows = rows[reference.labels[rows] == unknown]
        words = [Path(p).parent.name for p in reference.manifest["path"].to_numpy()[rows]]
        x, _ = reference.tensors_at(rows)
        return predictions(net, x) != unknown, np.array([kinds.get(w, "") for w in words])

    def figures(net: SubNetwork, reference: PreparedData) -> dict[str, float]:
        held = np.concatenate([reference.select(SERVER, TEST), reference.select(CLIENT, TEST)])
        said, kind = fired(net, reference, held)
        near = kind != ""
        out = {
            "near_miss_keyword_pct": 100.0 * float(said[near].mean()),
            "other_unknown_keyword_pct": 100.0 * float(said[~near].mean()),
            "near_miss_test_clips": int(near.sum()),
            "other_unknown_test_clips": int((~near).sum()),
        }
        for k in KINDS:
            out[f"near_miss_{k}_keyword_pct"] = 100.0 * float(said[kind == k].mean())
            out[f"near_miss_{k}_test_clips"] = int((kind == k).sum())
        said, kind = fired(net, reference, reference.select(SERVER, TRAIN))
        out["train_near_miss_keyword_pct"] = 100.0 * float(said[kind != ""].mean())
        out["train_other_unknown_keyword_pct"] = 100.0 * float(said[kind == ""].mean())
        return out

    return figures


def main() -> None:
    parser = arguments("bench.near_misses", __doc__)
    add_common_arguments(parser, "near_misses")
    parser.add_argument("--variants", default=json.dumps(DEFAULT_VARIANTS),
                        help='JSON: {"name": {corpus key: value, ...}, ...}; the first is the '
                             "reference")  # fmt: skip
    args = parser.parse_args()
    quiet()
    params = load_params(Path(args.params))
    variants = json.loads(args.variants)
    fields = set(type(params.corpus).model_fields)
    for variant, overrides in variants.items():
        if set(overrides) - fields:
            parser.error(f"--variants: {variant!r}: not keys of corpus: "
                         f"{', '.join(sorted(set(overrides) - fields))}")  # fmt: skip
    c = params.corpus
    _, table, _ = corpus_stage.unknown_vocabulary(
        params.prepare.keywords, c.near_misses_per_kind, params.base.seed, find_espeak()
    )
    kinds = near_miss_kinds(table)
    root = Path(tempfile.mkdtemp(prefix="edgelearn-bench-near-misses-"))
    reference = load_prepared(Path(params.paths.prepared))
    prepared: dict[str, Path] = {}
    made: dict[str, Any] = {}
    for i, (variant, overrides) in enumerate(variants.items()):
        if not overrides:
            continue
        workdir = root / f"variant-{i}"
        print(f"{variant}: synthesizing and preparing the corpus in {workdir} ...", flush=True)
        made[variant] = synthesize(params, overrides, workdir)
        prepared[variant] = workdir / params.paths.prepared
        check_no_leak(reference, load_prepared(prepared[variant]))
    command = (f"python -m bench.near_misses --variants '{args.variants}' --seeds {args.seeds}"
               + (f" --widths {args.widths}" if args.widths else "")
               + (f" --name {args.name}" if args.name != "near_misses" else ""))  # fmt: skip
    widths = [int(w) for w in args.widths.split(",")] if args.widths else None
    runs = run_variants(
        params, {v: {} for v in variants}, [int(s) for s in args.seeds.split(",")], widths,
        args.name, command, {"corpus_variants": variants, "preparations": made,
                             "near_miss_kinds": kinds},
        prepared, kind_figures(kinds),
    )  # fmt: skip
    report(runs, widths, [*COLUMNS, *EXTRA])


if __name__ == "__main__":
    main()
