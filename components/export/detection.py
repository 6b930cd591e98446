"""Streaming detection as the export stage measures it: a threshold chosen on validation
streams, false accepts per hour and the false-reject rate reported on test streams.

Each pool/split below gets a keyword-free and a keyword stream (``streams``), built
deterministically from ``base.seed``, scored once by the fp32 bundle (the int8 model, when it
ships, runs the same detector on near-identical scores; it is not measured separately) and
swept over ``streaming.GRID``. The threshold is chosen on the server pool's validation streams;
without a validation split (a dataset too small for one) on its training streams, which flatters
the model, and the details say so. The headline figures are those of the server and client test
streams together, like ``fp32_test_acc``; the client pool speaks with voices the server never
heard. One stream's audio is held at a time (30 min of float32 is 115 MB).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from components.config import ExportParams
from components.data.prepared import PreparedData
from components.data.splits import CLIENT, SERVER, TEST, TRAIN, VAL
from components.export.listen import DEFAULT_THRESHOLD, THRESHOLD_KEY
from components.export.predict import Predictor
from components.export.streaming import (
    GRID,
    TOLERANCE_S,
    Detector,
    ScoredStream,
    Tally,
    choose_threshold,
    score_stream,
    sweep,
)
from components.export.streams import Stream, keyword_free_stream, keyword_stream, split_rows

log = logging.getLogger(__name__)

STREAM_SALT = 15  # mixed into base.seed, so the streams draw their own random numbers
SETS = (("val", SERVER, VAL), ("server_test", SERVER, TEST), ("client_test", CLIENT, TEST))
TEST_SETS = ("server_test", "client_test")


@dataclass(frozen=True)
class StreamSet:
    """The scored streams of one pool/split (none when it has no background clips)."""

    name: str
    source: str  # pool/split
    streams: tuple[ScoredStream, ...]  # keyword-free first, then the keyword stream if any

    def tally(self, threshold: float, detector: Detector) -> Tally:
        return sum((s.tally(threshold, detector) for s in self.streams), Tally())


@dataclass(frozen=True)
class DetectionReport:
    threshold: float
    metrics: dict[str, Any]  # headline keys, per-set details and the threshold curve
    metadata: dict[str, Any]  # what goes into the bundle's metadata.json


def score_set(
    predictor: Predictor, metadata: dict[str, Any], data: PreparedData, index: int, name: str,
    pool: str, split: str, minutes: float, seed: int, detector: Detector,
) -> StreamSet:  # fmt: skip
    background, keywords = split_rows(data, pool, split)
    source = f"{pool}/{split}"
    if len(background) == 0:
        return StreamSet(name, source, ())
    rate, seconds = int(metadata["sample_rate"]), 60.0 * minutes

    def rng(kind: int) -> np.random.Generator:
        return np.random.default_rng([seed % 2**64, STREAM_SALT, index, kind])

    def scored(stream: Stream, kind: str) -> ScoredStream:
        log.info("streaming detection: scoring a %.1f min %s stream of %s (%d keywords planted)",
                 stream.seconds / 60, kind, source, len(stream.planted))  # fmt: skip
        return score_stream(predictor, stream, metadata, detector)

    # built and scored one at a time: only the posteriors are kept
    streams = [scored(keyword_free_stream(data.audio, background, seconds, rate, rng(0)),
                      "keyword-free")]  # fmt: skip
    if len(keywords):
        labels = data.manifest["label"].tolist()
        streams.append(scored(keyword_stream(data.audio, labels, background, keywords, seconds,
                                             rate, rng(1)), "keyword"))  # fmt: skip
    return StreamSet(name, source, tuple(streams))


def set_figures(s: StreamSet, threshold: float, detector: Detector) -> dict[str, float | int]:
    total = s.tally(threshold, detector)
    free = s.streams[0].tally(threshold, detector)
    return {
        f"stream_{s.name}_hours": round(total.hours, 4),
        f"stream_{s.name}_false_accepts": total.false_accepts,
        f"stream_{s.name}_false_accepts_keyword_free": free.false_accepts,
        f"stream_{s.name}_false_accepts_per_hour": round(total.false_accepts_per_hour, 3),
        f"stream_{s.name}_keywords_planted": total.planted,
        f"stream_{s.name}_keywords_hit": total.hits,
        f"stream_{s.name}_keywords_missed": total.misses,
        f"stream_{s.name}_false_reject_rate": round(total.false_reject_rate, 3),
    }


def measure_detection(
    predictor: Predictor, metadata: dict[str, Any], data: PreparedData, p: ExportParams,
    seed: int, detector: Detector | None = None,
) -> DetectionReport:  # fmt: skip
    """Build and score the streams, choose the threshold, and report (see the module doc);
    ``detector`` defaults to ``edgelearn listen``'s settings."""
    started = time.monotonic()
    detector = detector or Detector()
    sets = {name: score_set(predictor, metadata, data, i, name, pool, split, p.stream_minutes,
                            seed, detector)
            for i, (name, pool, split) in enumerate(SETS)}  # fmt: skip
    if not sets["val"].streams:
        log.warning("streaming detection: no server validation clips; choosing the threshold "
                    "on the training split's streams (optimistic)")  # fmt: skip
        sets["val"] = score_set(predictor, metadata, data, len(SETS), "val", SERVER, TRAIN,
                                p.stream_minutes, seed, detector)  # fmt: skip
    val_curve = sweep(sets["val"].streams, detector)
    test_streams = [s for name in TEST_SETS for s in sets[name].streams]
    test_curve = sweep(test_streams, detector)
    target = p.target_false_accepts_per_hour
    if sets["val"].streams:
        threshold, met = choose_threshold(GRID, [t.false_accepts_per_hour for t in val_curve],
                                          target)  # fmt: skip
        hours = sum(s.seconds for s in sets["val"].streams) / 3600
        chosen_on = f"{sets['val'].source} streams, {hours:.2f} h"
    else:
        threshold, met, chosen_on = DEFAULT_THRESHOLD, False, "none (no server clips to stream)"
    if not met:
        log.warning("streaming detection: no threshold up to %g keeps false accepts at %g per "
                    "hour on %s", GRID[-1], target, chosen_on)  # fmt: skip
    test = sum((t.tally(threshold, detector) for t in test_streams), Tally())
    metrics: dict[str, Any] = {
        "false_accepts_per_hour": round(test.false_accepts_per_hour, 3),
        "false_reject_rate": round(test.false_reject_rate, 3),
        THRESHOLD_KEY: threshold,
        "detection_target_met": int(met),
        "detection_threshold_chosen_on": chosen_on,
        "detection_tolerance_s": TOLERANCE_S,
    }
    for s in sets.values():
        if s.streams:
            metrics |= set_figures(s, threshold, detector)
    metrics["detection_curve"] = [
        {"threshold": t,
         "val_false_accepts_per_hour": round(v.false_accepts_per_hour, 3),
         "val_false_reject_rate": round(v.false_reject_rate, 3),
         "test_false_accepts_per_hour": round(x.false_accepts_per_hour, 3),
         "test_false_reject_rate": round(x.false_reject_rate, 3)}
        for t, v, x in zip(GRID, val_curve, test_curve, strict=True)
    ]  # fmt: skip
    metrics["detection_seconds"] = round(time.monotonic() - started, 2)
    block = {
        **detector.to_dict(),
        "threshold_chosen_on": chosen_on,
        "target_false_accepts_per_hour": target,
        "target_met": met,
        "false_accepts_per_hour": metrics["false_accepts_per_hour"],
        "false_reject_rate_pct": metrics["false_reject_rate"],
        "measured_on": "server and client test streams, fp32 model",
    }
    return DetectionReport(threshold, metrics, {THRESHOLD_KEY: threshold, "detection": block})
