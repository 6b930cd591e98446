"""``edgelearn listen``: keyword events in long audio, detected as a device does (ORT + numpy).

A device does not get 1 s clips: it hears a stream. Here the model's 1 s window slides over the
audio with a short hop, the windows go through ONNX Runtime in batches (the graph's batch axis is
dynamic), and each keyword's posterior is smoothed with a trailing moving average over a few hops,
as streaming detectors (openWakeWord, Porcupine) do: one window's guess is noisy, a few agreeing
ones are not. An event starts where a keyword's smoothed posterior crosses the threshold from
below; a refractory period after it keeps one utterance from firing twice.

An event's time is where the keyword is heard: every window that holds the whole word labels it,
so the keyword sits in the middle of the stretch of windows that stayed above the threshold. A
window's time is its centre (not its start), a smoothed row's time the centre of the windows it
averaged (undoing the average's delay), and the event's time the midpoint of its first and last
rows above the threshold. Like ``predict``, this never imports torch.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from components.data.labels import SILENCE, UNKNOWN
from components.errors import EdgelearnError
from components.export.audio import AudioRejected, read_wav, resample, to_mono
from components.export.bundle import Bundle, BundleError, open_bundle
from components.export.predict import DEFAULT_BUNDLE, Predictor

DEFAULT_THRESHOLD = 0.5  # used when the bundle's metadata.json has no detection_threshold
THRESHOLD_KEY = "detection_threshold"
DEFAULT_HOP_MS = 100.0
DEFAULT_SMOOTHING = 3  # hops averaged: 300 ms at the default hop
DEFAULT_REFRACTORY_S = 1.0  # about one word: longer than a keyword stays above threshold
BATCH = 128  # windows per ONNX Runtime call: 8 MB of audio, whatever the file's length


class ListenError(EdgelearnError):
    """The audio file or a detection setting cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Event:
    label: str
    time_s: float  # where the keyword is heard: the middle of its rows above threshold
    score: float  # the peak smoothed posterior
    row: int  # row of ``posteriors`` where the smoothed posterior crossed the threshold


def smooth(posteriors: np.ndarray, smoothing: int) -> np.ndarray:
    """Trailing moving average over ``smoothing`` rows (fewer at the start, where fewer exist):
    a device only knows the past."""
    sums = np.cumsum(np.vstack([np.zeros((1, posteriors.shape[1])), posteriors]), axis=0)
    rows = np.arange(1, len(posteriors) + 1)
    lo = np.maximum(rows - smoothing, 0)
    return (sums[rows] - sums[lo]) / (rows - lo)[:, None]


def detect_events(
    posteriors: np.ndarray,
    labels: Sequence[str],
    hop_s: float,
    threshold: float,
    smoothing: int,
    refractory_s: float,
    offset_s: float = 0.0,
) -> list[Event]:
    """Keyword events in ``posteriors`` (rows: one per hop, row t at ``offset_s + t * hop_s``;
    columns: ``labels``). ``_unknown_`` and ``_silence_`` never fire.

    An event starts at a row where a keyword's smoothed posterior reaches ``threshold`` and the
    row before was below it (the first row counts as crossing). Crossings less than
    ``refractory_s`` after an event's start are dropped, whatever their keyword; on one row the
    highest smoothed posterior wins. The event lasts until that keyword falls below the threshold;
    its score is the peak smoothed posterior in that stretch, its time the midpoint of the first
    and last row of it, each row taken at the centre of the rows it averaged.
    """
    posteriors = np.asarray(posteriors, dtype=np.float64)
    if posteriors.ndim != 2 or posteriors.shape[1] != len(labels):
        raise ValueError(f"posteriors of shape {posteriors.shape} for {len(labels)} labels")
    if smoothing < 1 or hop_s <= 0 or refractory_s < 0:
        raise ValueError("smoothing must be >= 1, hop_s > 0 and refractory_s >= 0")
    keywords = [i for i, label in enumerate(labels) if label not in (UNKNOWN, SILENCE)]
    smoothed = smooth(posteriors, smoothing)[:, keywords]
    above = smoothed >= threshold
    crossing = above & ~np.vstack([np.zeros((1, len(keywords)), dtype=bool), above[:-1]])
    refractory_rows = math.ceil(refractory_s / hop_s - 1e-9)
    events: list[Event] = []
    quiet_until = 0  # first row where a crossing may start an event
    for t in np.flatnonzero(crossing.any(axis=1)).tolist():
        if t < quiet_until:
            continue
        k = int(np.argmax(np.where(crossing[t], smoothed[t], -np.inf)))
        end = t + int(np.argmin(above[t:, k])) if not above[t:, k].all() else len(above)
        peak = t + int(np.argmax(smoothed[t:end, k]))
        first, last = (row - min(row, smoothing - 1) / 2 for row in (t, end - 1))
        time_s = offset_s + (first + last) / 2 * hop_s
        events.append(Event(labels[keywords[k]], time_s, float(smoothed[peak, k]), int(t)))
        quiet_until = t + refractory_rows
    return events


def load_stream(path: Path, rate: int) -> tuple[np.ndarray, list[str]]:
    """A whole WAV file as mono float32 at the model's rate, and notes on what was done to it."""
    audio = to_mono(read_wav(path))
    notes = list(audio.notes)
    if audio.rate < rate:
        raise AudioRejected(
            f"sample rate {audio.rate} Hz is below the model's {rate} Hz (the band above "
            f"{audio.rate / 2:g} Hz is missing); record at {rate} Hz or more"
        )
    if audio.rate > rate:
        notes.append(f"resampled {audio.rate} Hz to {rate} Hz")
        return resample(audio.samples, audio.rate, rate), notes
    return audio.samples, notes


def stream_posteriors(predictor: Predictor, audio: np.ndarray, window: int, hop: int) -> np.ndarray:
    """Class probabilities of every ``window``-sample window, one every ``hop`` samples from the
    start; the end is padded with silence so the last samples are heard too (so is a stream
    shorter than a window)."""
    count = max(math.ceil((len(audio) - window) / hop), 0) + 1
    padded = np.zeros((count - 1) * hop + window, dtype=np.float32)
    padded[: len(audio)] = audio[: len(padded)]
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)[::hop]
    out = []
    for start in range(0, count, BATCH):
        batch = np.ascontiguousarray(windows[start : start + BATCH])
        _, probabilities = predictor.session.run(None, {predictor.input: batch})
        out.append(probabilities)
    return np.concatenate(out).astype(np.float64)


def bundle_threshold(bundle: Bundle) -> float:
    """The bundle's ``detection_threshold`` (chosen by the export stage), else the default."""
    value = bundle.metadata.get(THRESHOLD_KEY, DEFAULT_THRESHOLD)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise BundleError(
            f"{bundle.directory / 'metadata.json'}: {THRESHOLD_KEY} must be a number in (0, 1], "
            f"got {value!r}"
        )
    return float(value)


def listen_audio(
    predictor: Predictor, audio: np.ndarray, metadata: dict[str, Any], threshold: float,
    hop_ms: float = DEFAULT_HOP_MS, smoothing: int = DEFAULT_SMOOTHING,
    refractory_s: float = DEFAULT_REFRACTORY_S,
) -> list[Event]:  # fmt: skip
    """The keyword events of a mono float32 stream at the model's sample rate."""
    rate, window = int(metadata["sample_rate"]), int(metadata["clip_samples"])
    hop = round(hop_ms * rate / 1000)
    if not 1 <= hop <= window:
        raise ListenError(
            f"--hop-ms {hop_ms:g}: must be from {1000 / rate:g} ms (one sample) to "
            f"{1000 * window / rate:g} ms (one window)"
        )
    if not 0 < threshold <= 1:
        raise ListenError(f"--threshold {threshold:g}: must be in (0, 1]")
    if smoothing < 1:
        raise ListenError(f"--smoothing {smoothing}: must be at least 1 hop")
    if refractory_s < 0:
        raise ListenError(f"--refractory {refractory_s:g}: must be 0 s or more")
    posteriors = stream_posteriors(predictor, audio, window, hop)
    return detect_events(posteriors, predictor.labels, hop / rate, threshold, smoothing,
                         refractory_s, offset_s=window / rate / 2)  # fmt: skip


def listen_file(
    path: str, bundle_dir: str = DEFAULT_BUNDLE, int8: bool = False,
    threshold: float | None = None, hop_ms: float = DEFAULT_HOP_MS,
    smoothing: int = DEFAULT_SMOOTHING, refractory_s: float = DEFAULT_REFRACTORY_S,
    out: TextIO = sys.stdout, err: TextIO = sys.stderr,
) -> int:  # fmt: skip
    """Print ``time_s<tab>label<tab>score`` per event and a summary line on ``err``; returns 0.

    A bad bundle, file or setting raises an ``EdgelearnError`` naming it (the CLI exits 2).
    """
    bundle = open_bundle(Path(bundle_dir))
    source = "--threshold"
    if threshold is None:
        threshold = bundle_threshold(bundle)
        source = THRESHOLD_KEY if THRESHOLD_KEY in bundle.metadata else "default"
    predictor = Predictor(bundle, int8)
    try:
        audio, notes = load_stream(Path(path), int(bundle.metadata["sample_rate"]))
    except AudioRejected as reason:
        raise ListenError(f"{path}: {reason}") from None
    events = listen_audio(predictor, audio, bundle.metadata, threshold, hop_ms, smoothing,
                          refractory_s)  # fmt: skip
    for event in events:
        print(f"{event.time_s:.2f}\t{event.label}\t{event.score:.4f}", file=out, flush=True)
    for note in notes:
        print(f"edgelearn: note: {path}: {note}", file=err)
    seconds = len(audio) / int(bundle.metadata["sample_rate"])
    count = f"{len(events)} keyword event" + ("" if len(events) == 1 else "s")
    print(f"edgelearn: {path}: {count} in {seconds:.1f} s (threshold "
          f"{threshold:g} ({source}), hop {hop_ms:g} ms, smoothing {smoothing} hops, refractory "
          f"{refractory_s:g} s)", file=err)  # fmt: skip
    return 0
