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

``--calibrate`` asks instead where the threshold should be chosen: on the server validation
streams (the export stage's rule) or on streams of the client speakers' own *training* clips
(keyword-free and keyword streams, as a fleet of devices would calibrate on audio of their own
users), each applied to the server and client test streams, with the default detector
(``bench/results/detector_calibration.json``).

``--misses`` asks where the planted keywords are lost, with the default detector: per stream set
and threshold, the share of planted keywords whose own label's smoothed posterior reaches the
threshold within the matching tolerance of their time (the most the detector could hit: the
rest is lost to the model's scores), the share the detector hits (the rest of the reachable ones
is lost to its event rules: refractory period, a stronger wrong keyword, the event's time), and
the false accepts per hour (``bench/results/detector_misses.json``).

    python -m bench.detector [--bundle export/bundle] [--seeds 1234,1,2] [--smoothing 1,3,5,8]
        [--refractory 1.0] [--calibrate | --misses]
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import arguments, compare, frr_at, mean_spread, quiet, save, table
from components.config import load_params
from components.data.prepared import load_prepared
from components.data.splits import CLIENT, TRAIN
from components.export.bundle import open_bundle
from components.export.detection import SETS, TEST_SETS, score_set
from components.export.listen import smooth
from components.export.predict import Predictor
from components.export.streaming import (
    GRID,
    TOLERANCE_S,
    Detector,
    ScoredStream,
    Tally,
    choose_threshold,
    sweep,
)

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
    return {
        "threshold": threshold,
        "val_false_accepts_per_hour": val_curve[GRID.index(threshold)].false_accepts_per_hour,
        "false_accepts_per_hour": test.false_accepts_per_hour,
        "false_reject_rate": test.false_reject_rate,
        "frr_at_10_fa": frr_at(
            [(t.false_accepts_per_hour, t.false_reject_rate) for t in test_curve], 10.0
        ),
    }


def scored_sets(params: Any, data: Any, bundle: Any, predictor: Any, seed: int) -> dict[str, Any]:
    """The export stage's stream sets (``SETS``) for one stream seed, scored once."""
    print(f"stream seed {seed}: scoring the streams ...", flush=True)
    return {name: score_set(predictor, bundle.metadata, data, i, name, pool, split,
                            params.export.stream_minutes, seed, Detector())
            for i, (name, pool, split) in enumerate(SETS)}  # fmt: skip


def record_header(args: Any, seeds: list[int], bundle: Any) -> dict[str, Any]:
    """What every results file of this bench starts with."""
    return {"bundle": args.bundle, "seeds": seeds,
            "architecture": bundle.metadata["architecture"]}  # fmt: skip


CALIBRATION_SOURCES = (("server validation", "val"), ("client training", "client_train"))


def calibration(sets: dict[str, Any], detector: Detector, target: float) -> dict[str, float]:
    """Test figures per pool at the threshold chosen on each ``CALIBRATION_SOURCES`` set."""
    out: dict[str, float] = {}
    for _, source in CALIBRATION_SOURCES:
        rates = [t.false_accepts_per_hour for t in sweep(sets[source].streams, detector)]
        threshold, met = choose_threshold(GRID, rates, target)
        out[f"{source}_threshold"] = threshold
        out[f"{source}_target_met"] = float(met)
        for name in TEST_SETS:
            tally = sets[name].tally(threshold, detector)
            out[f"{source}_{name}_false_accepts_per_hour"] = tally.false_accepts_per_hour
            out[f"{source}_{name}_false_reject_rate"] = tally.false_reject_rate
    return out


def main_calibration(args: Any, params: Any, data: Any, bundle: Any, predictor: Any) -> None:
    seeds = [int(s) for s in args.seeds.split(",")]
    target = params.export.target_false_accepts_per_hour
    runs: list[dict[str, Any]] = []
    for seed in seeds:
        sets = scored_sets(params, data, bundle, predictor, seed)
        minutes = params.export.stream_minutes
        sets["client_train"] = score_set(predictor, bundle.metadata, data, len(SETS) + 1,
                                         "client_train", CLIENT, TRAIN, minutes, seed,
                                         Detector())  # fmt: skip
        runs.append({"seed": seed, "metrics": calibration(sets, Detector(), target)})
        print("  " + ", ".join(f"{k} {v:.3g}" for k, v in runs[-1]["metrics"].items()), flush=True)
    figures_ = ("false_accepts_per_hour", "false_reject_rate")
    columns = ["threshold", *(f"{n}_{k}" for n in TEST_SETS for k in figures_)]
    rows = [[label, *(mean_spread([r["metrics"][f"{source}_{c}"] for r in runs],
                                  ".2f" if c == "threshold" else ".1f") for c in columns)]
            for label, source in CALIBRATION_SOURCES]  # fmt: skip
    print(f"\nbundle {args.bundle}; stream seeds {seeds}; default detector; mean ± stdev")
    print(table(["threshold chosen on", "threshold", "server test FA/h", "server test FR %",
                 "client test FA/h", "client test FR %"], rows))  # fmt: skip
    path = save("detector_calibration", {
        **record_header(args, seeds, bundle), "detector": Detector().to_dict(),
        "target_false_accepts_per_hour": target, "runs": runs,
    })  # fmt: skip
    print(f"written {path}")


MISS_THRESHOLDS = (0.5, 0.9, 0.99)


def reachable(stream: ScoredStream, detector: Detector, threshold: float) -> int:
    """Planted keywords whose own label's smoothed posterior reaches ``threshold`` on a row
    within ``TOLERANCE_S`` of their time (rows timed as ``detect_events`` times them)."""
    smoothed = smooth(stream.posteriors, detector.smoothing)
    rows = np.arange(len(smoothed))
    times = stream.offset_s + (rows - np.minimum(rows, detector.smoothing - 1) / 2) * stream.hop_s
    count = 0
    for planted in stream.planted:
        near = np.abs(times - planted.time_s) <= TOLERANCE_S
        k = stream.labels.index(planted.label)
        count += bool(near.any() and smoothed[near, k].max() >= threshold)
    return count


def misses(sets: dict[str, Any], detector: Detector) -> dict[str, float]:
    """Per stream set and threshold: reachable and hit shares of the planted keywords (%), and
    false accepts per hour."""
    out: dict[str, float] = {}
    for name, stream_set in sets.items():
        planted = sum(len(s.planted) for s in stream_set.streams)
        for threshold in MISS_THRESHOLDS:
            tally = stream_set.tally(threshold, detector)
            reach = sum(reachable(s, detector, threshold) for s in stream_set.streams)
            key = f"{name}_{threshold:g}"
            out[f"{key}_reachable_pct"] = 100 * reach / planted if planted else math.nan
            out[f"{key}_hit_pct"] = 100 * tally.hits / planted if planted else math.nan
            out[f"{key}_false_accepts_per_hour"] = tally.false_accepts_per_hour
    return out


def main_misses(args: Any, params: Any, data: Any, bundle: Any, predictor: Any) -> None:
    seeds = [int(s) for s in args.seeds.split(",")]
    runs: list[dict[str, Any]] = []
    for seed in seeds:
        sets = scored_sets(params, data, bundle, predictor, seed)
        runs.append({"seed": seed, "metrics": misses(sets, Detector())})
    rows = []
    for name, _, _ in SETS:
        for threshold in MISS_THRESHOLDS:
            key = f"{name}_{threshold:g}"

            def col(figure: str, key: str = key) -> list[float]:
                return [r["metrics"][f"{key}_{figure}"] for r in runs]

            reach, hit = col("reachable_pct"), col("hit_pct")
            rows.append([name, f"{threshold:g}", mean_spread(reach, ".1f"),
                         mean_spread(hit, ".1f"),
                         mean_spread([a - b for a, b in zip(reach, hit, strict=True)], ".1f"),
                         mean_spread(col("false_accepts_per_hour"), ".1f")])  # fmt: skip
    print(f"\nbundle {args.bundle}; stream seeds {seeds}; default detector; mean ± stdev")
    print(table(["streams", "threshold", "keywords reachable % (scores)", "keywords hit %",
                 "lost to the event rules (points)", "false accepts/h"], rows))  # fmt: skip
    path = save("detector_misses", {
        **record_header(args, seeds, bundle), "detector": Detector().to_dict(),
        "tolerance_s": TOLERANCE_S, "runs": runs,
    })  # fmt: skip
    print(f"written {path}")


def main() -> None:
    parser = arguments("bench.detector", __doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--bundle", default="export/bundle")
    parser.add_argument("--seeds", default="1234,1,2", help="stream seeds, comma-separated")
    parser.add_argument("--smoothing", default="1,3,5,8", help="hops averaged, comma-separated")
    parser.add_argument("--refractory", default="1.0", help="seconds, comma-separated")
    parser.add_argument(
        "--calibrate", action="store_true", help="compare where the threshold is chosen (see above)"
    )
    parser.add_argument(
        "--misses", action="store_true", help="where the planted keywords are lost (see above)"
    )
    args = parser.parse_args()
    quiet()
    params = load_params(args.params)
    data = load_prepared(Path(params.paths.prepared))
    bundle = open_bundle(Path(args.bundle))
    predictor = Predictor(bundle, threads=0)
    if args.calibrate:
        main_calibration(args, params, data, bundle, predictor)
        return
    if args.misses:
        main_misses(args, params, data, bundle, predictor)
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = [Detector(smoothing=int(k), refractory_s=float(r))
                for k in args.smoothing.split(",") for r in args.refractory.split(",")]  # fmt: skip
    target = params.export.target_false_accepts_per_hour
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()

    def record() -> Path:
        return save("detector", {
            **record_header(args, seeds, bundle), "default": Detector().to_dict(),
            "target_false_accepts_per_hour": target,
            "minutes": round((time.perf_counter() - started) / 60, 1), "runs": runs,
        })  # fmt: skip

    for seed in seeds:
        sets = scored_sets(params, data, bundle, predictor, seed)
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
