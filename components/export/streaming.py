"""Streaming detection scored: false accepts per hour, the false-reject rate, and the threshold.

A stream is scored once (ONNX Runtime over every window, exactly as ``edgelearn listen`` does);
each threshold of the grid then only re-runs ``detect_events`` over the posteriors. A detection
of the right keyword within ``TOLERANCE_S`` of a planted keyword's time is a hit (each planted
keyword is hit at most once: a second firing on the same word counts as a false accept, as the
device would wake twice); every other detection is a false accept, on the keyword stream too. The
false-reject rate is the planted keywords never hit, in percent (0-100, like every percentage of
the pipeline); false accepts per hour divide by the hours of every stream scored, keyword streams
included (they are mostly background).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from components.export.listen import (
    DEFAULT_HOP_MS,
    DEFAULT_REFRACTORY_S,
    DEFAULT_SMOOTHING,
    Event,
    detect_events,
    stream_posteriors,
)
from components.export.predict import Predictor
from components.export.streams import Planted, Stream

TOLERANCE_S = 0.75
# 0.30 .. 0.99 by 0.01, then 0.991 .. 0.999 by 0.001 and 0.9995, 0.9999: the models here reach a
# few false accepts per hour only above 0.99 (docs/benchmarks.md), so the top of the grid is finer
GRID: tuple[float, ...] = (
    *(round(0.30 + 0.01 * i, 2) for i in range(70)),
    *(round(0.991 + 0.001 * i, 3) for i in range(9)),
    0.9995,
    0.9999,
)


@dataclass(frozen=True)
class Detector:
    """How the device runs detection: ``edgelearn listen``'s settings, recorded in the bundle."""

    hop_ms: float = DEFAULT_HOP_MS
    smoothing: int = DEFAULT_SMOOTHING
    refractory_s: float = DEFAULT_REFRACTORY_S

    def to_dict(self) -> dict[str, Any]:
        return {"hop_ms": self.hop_ms, "smoothing": self.smoothing,
                "refractory_s": self.refractory_s}  # fmt: skip


@dataclass(frozen=True)
class Tally:
    """Counts over one or more streams at one threshold."""

    seconds: float = 0.0
    false_accepts: int = 0
    planted: int = 0
    hits: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.seconds + other.seconds, self.false_accepts + other.false_accepts,
                     self.planted + other.planted, self.hits + other.hits)  # fmt: skip

    @property
    def misses(self) -> int:
        return self.planted - self.hits

    @property
    def hours(self) -> float:
        return self.seconds / 3600.0

    @property
    def false_accepts_per_hour(self) -> float:
        return self.false_accepts / self.hours if self.seconds else math.nan

    @property
    def false_reject_rate(self) -> float:
        return 100.0 * self.misses / self.planted if self.planted else math.nan


def tally(
    detected: Sequence[Event], planted: Sequence[Planted], seconds: float,
    tolerance_s: float = TOLERANCE_S,
) -> Tally:  # fmt: skip
    """Match detections to planted keywords in time order: each detection takes the nearest
    planted keyword of its label within ``tolerance_s`` not yet taken (a hit), or is a false
    accept."""
    taken = [False] * len(planted)
    hits = false_accepts = 0
    for event in sorted(detected, key=lambda e: e.time_s):
        near = [(abs(p.time_s - event.time_s), i) for i, p in enumerate(planted)
                if not taken[i] and p.label == event.label
                and abs(p.time_s - event.time_s) <= tolerance_s]  # fmt: skip
        if near:
            taken[min(near)[1]] = True
            hits += 1
        else:
            false_accepts += 1
    return Tally(seconds, false_accepts, len(planted), hits)


@dataclass(frozen=True)
class ScoredStream:
    """A stream's posteriors (one row per hop) and what was planted in it; its audio is gone."""

    posteriors: np.ndarray
    labels: tuple[str, ...]
    hop_s: float
    offset_s: float  # the time of row 0: the centre of the first window
    seconds: float
    planted: tuple[Planted, ...] = field(default=())

    def events(self, threshold: float, detector: Detector) -> list[Event]:
        return detect_events(self.posteriors, self.labels, self.hop_s, threshold,
                             detector.smoothing, detector.refractory_s,
                             offset_s=self.offset_s)  # fmt: skip

    def tally(self, threshold: float, detector: Detector) -> Tally:
        return tally(self.events(threshold, detector), self.planted, self.seconds)


def score_stream(
    predictor: Predictor, stream: Stream, metadata: dict[str, Any], detector: Detector
) -> ScoredStream:
    """Posteriors of every window of ``stream``, windowed as ``listen_audio`` windows it."""
    rate, window = int(metadata["sample_rate"]), int(metadata["clip_samples"])
    hop = round(detector.hop_ms * rate / 1000)
    posteriors = stream_posteriors(predictor, stream.audio, window, hop)
    return ScoredStream(posteriors, tuple(predictor.labels), hop / rate, window / rate / 2,
                        stream.seconds, stream.planted)  # fmt: skip


def sweep(
    streams: Sequence[ScoredStream], detector: Detector, grid: Sequence[float] = GRID
) -> list[Tally]:
    """The summed tally of ``streams`` at each threshold of ``grid``."""
    return [sum((s.tally(t, detector) for s in streams), Tally()) for t in grid]


def choose_threshold(
    grid: Sequence[float], false_accepts_per_hour: Sequence[float], target: float
) -> tuple[float, bool]:
    """The lowest threshold of ``grid`` (ascending) from which on every higher one keeps false
    accepts per hour at most ``target`` (false accepts need not fall strictly as the threshold
    rises: a lone dip below the target is not trusted), and whether the target was met; when
    even the highest threshold misses it, the highest threshold and False."""
    if len(grid) != len(false_accepts_per_hour) or not grid:
        raise ValueError(f"{len(grid)} thresholds but {len(false_accepts_per_hour)} figures")
    chosen = None
    for threshold, rate in zip(reversed(grid), reversed(false_accepts_per_hour), strict=True):
        if not rate <= target:  # NaN (no audio) never meets a target
            break
        chosen = threshold
    return (float(grid[-1]), False) if chosen is None else (float(chosen), True)
