"""Streaming detector benchmark: how the shipped bundle's detector settings (posterior smoothing,
refractory period) trade false accepts against false rejects.

The export stage scores the bundle on long streams (``components/export/detection.py``) with
``edgelearn listen``'s settings: the posteriors smoothed over 3 hops of 100 ms, 1 s refractory.
This bench scores the same streams once per stream seed (the streams' own random draws: which
clips, gains, gaps), then re-runs only the detector over the posteriors for each setting, exactly
as the export stage does for each threshold: the threshold chosen on the server validation
streams (the lowest from which every higher one keeps at most
``export.target_false_accepts_per_hour``), false accepts per hour and the false-reject rate on
the server and client test streams, and the curve's false-reject rate at <= 10 false accepts per
hour on the test streams (an oracle threshold, for comparing settings only).

One model (the bundle); the spread is over the stream draws, not over trained models.

    python -m bench.detector [--bundle export/bundle] [--seeds 1234,1,2] [--smoothing 1,3,5,8]
        [--refractory 1.0]
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from bench.common import arguments, compare, mean_spread, quiet, save, table
from components.config import load_params
from components.data.prepared import load_prepared
from components.export.bundle import open_bundle
from components.export.detection import SETS, TEST_SETS, score_set
from components.export.predict import Predictor
from components.export.streaming import GRID, Detector, Tally, choose_threshold, sweep

COLUMNS = [  # (key, header, format)
    ("threshold", "threshold (val)", ".2f"),
    ("val_false_accepts_per_hour", "false accepts/h (val)", ".1f"),
    ("false_accepts_per_hour", "false accepts/h (test)", ".1f"),
    ("false_reject_rate", "false rejects % (test)", ".1f"),
    ("frr_at_10_fa", "false rejects % at <= 10 false accepts/h (test curve)", ".1f"),
]


def lower_is_better(verdict: str) -> str:
    """``compare``'s words for figures where less is better (false accepts, false rejects)."""
    return verdict.replace("(ahead)", "(higher: worse)").replace("(behind)", "(lower: better)")


def figures(sets: dict[str, Any], detector: Detector, target: float) -> dict[str, float]:
    """The export stage's detection figures for ``detector`` on already scored streams."""
    val_curve = sweep(sets["val"].streams, detector)
    test_streams = [s for name in TEST_SETS for s in sets[name].streams]
    test_curve = sweep(test_streams, detector)
    rates = [t.false_accepts_per_hour for t in val_curve]
    threshold, _ = choose_threshold(GRID, rates, target)
    test = sum((s.tally(threshold, detector) for s in test_streams), Tally())
    quiet_enough = [t.false_reject_rate for t in test_curve if t.false_accepts_per_hour <= 10.0]
    return {
        "threshold": threshold,
        "val_false_accepts_per_hour": val_curve[GRID.index(threshold)].false_accepts_per_hour,
        "false_accepts_per_hour": test.false_accepts_per_hour,
        "false_reject_rate": test.false_reject_rate,
        "frr_at_10_fa": min(quiet_enough) if quiet_enough else float("nan"),
    }


def main() -> None:
    parser = arguments("bench.detector", __doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--bundle", default="export/bundle")
    parser.add_argument("--seeds", default="1234,1,2", help="stream seeds, comma-separated")
    parser.add_argument("--smoothing", default="1,3,5,8", help="hops averaged, comma-separated")
    parser.add_argument("--refractory", default="1.0", help="seconds, comma-separated")
    args = parser.parse_args()
    quiet()
    params = load_params(args.params)
    data = load_prepared(Path(params.paths.prepared))
    bundle = open_bundle(Path(args.bundle))
    predictor = Predictor(bundle, threads=0)
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = [Detector(smoothing=int(k), refractory_s=float(r))
                for k in args.smoothing.split(",") for r in args.refractory.split(",")]  # fmt: skip
    target = params.export.target_false_accepts_per_hour
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()

    def record() -> Path:
        return save("detector", {
            "bundle": args.bundle, "seeds": seeds,
            "architecture": bundle.metadata["architecture"], "default": Detector().to_dict(),
            "target_false_accepts_per_hour": target,
            "minutes": round((time.perf_counter() - started) / 60, 1), "runs": runs,
        })  # fmt: skip

    for seed in seeds:
        print(f"stream seed {seed}: scoring the streams ...", flush=True)
        sets = {name: score_set(predictor, bundle.metadata, data, i, name, pool, split,
                                params.export.stream_minutes, seed, Detector())
                for i, (name, pool, split) in enumerate(SETS)}  # fmt: skip
        for d in settings:
            m = figures(sets, d, target)
            runs.append({"seed": seed, "detector": d.to_dict(), "metrics": m})
            record()
            print(f"  smoothing {d.smoothing}, refractory {d.refractory_s:g} s: "
                  + ", ".join(f"{h} {m[k]:{f}}" for k, h, f in COLUMNS), flush=True)  # fmt: skip

    def of(d: Detector, key: str) -> list[float]:
        return [r["metrics"][key] for r in runs if r["detector"] == d.to_dict()]

    def cell(values: list[float], fmt: str) -> str:
        """mean ± stdev of the draws where the figure exists (NaN: no threshold that quiet)."""
        kept = [v for v in values if not math.isnan(v)]
        if not kept:
            return "none"
        text = mean_spread(kept, fmt)
        return text if len(kept) == len(values) else f"{text} ({len(kept)} of {len(values)})"

    rows = [[d.smoothing, f"{d.refractory_s:g}",
             *(cell(of(d, k), f) for k, _, f in COLUMNS)] for d in settings]  # fmt: skip
    print(f"\nbundle {args.bundle}; stream seeds {seeds}; mean ± stdev over the stream draws")
    print(table(["smoothing (hops)", "refractory s", *(h for _, h, _ in COLUMNS)], rows))
    default = Detector()
    if default in settings:
        for d in settings:
            if d != default:
                print(f"smoothing {d.smoothing}, refractory {d.refractory_s:g} - the default: "
                      + ", ".join(f"{h}: {lower_is_better(compare(of(d, k), of(default, k)))}"
                                  for k, h, _ in COLUMNS[2:4]))  # fmt: skip
    path = record()
    print(f"written {path}")


if __name__ == "__main__":
    main()
