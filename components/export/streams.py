"""Long audio streams built from prepared clips, with keywords planted at known times.

A device hears hours of audio that is mostly not a keyword; the figures wake-word systems publish
(false accepts per hour, the false-reject rate) are measured on such streams. The prepared data
holds 1 s clips, not long recordings, so a stream is made of them:

- a *keyword-free* stream lays ``_unknown_`` and ``_silence_`` clips end to end, each chosen at
  random (so clips repeat when a split has fewer than the stream needs), at a random gain of
  ±``GAIN_DB``, with a random gap of up to ``MAX_GAP_S`` (digital silence) or overlap of up to
  ``MAX_OVERLAP_S`` (the two clips mixed) between neighbours, until it is at least as long as asked;
- a *keyword* stream is the same background with ``BACKGROUND_BETWEEN`` background clips between
  two keyword clips, each keyword clip of the split planted once, in random order, until the
  stream is about as long as asked (all of them when the split has fewer).

Every clip fades in and out over ``FADE_S``, so a join never clicks (a click is not what a
device hears). A planted keyword's time is the centre of its clip: the prepare stage centres the
word in its 1 s clip up to a small random shift, which the matching tolerance covers. Simplified:
the background is the split's own short clips, not long recordings of rooms, streets or TV; the
same clips recur in a 30-minute stream, and the gaps are silent rather than room noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from components.data.labels import SILENCE, UNKNOWN
from components.data.prepared import PreparedData

FADE_S = 0.01
MAX_OVERLAP_S = 0.1
MAX_GAP_S = 0.3
GAIN_DB = 6.0
# Background clips between two planted keywords: with 1 s clips that overlap by at most 0.1 s,
# keyword centres are at least 3 * 0.9 = 2.7 s apart (a detector's refractory period is ~1 s).
BACKGROUND_BETWEEN = (2, 3)


@dataclass(frozen=True)
class Planted:
    label: str
    time_s: float  # the centre of the planted clip, from the start of the stream


@dataclass(frozen=True)
class Placement:
    row: int  # row of the clips array
    start: int  # first sample in the stream
    gain: float


@dataclass(frozen=True)
class Stream:
    audio: np.ndarray  # mono float32 in [-1, 1), as the exported graph takes it
    rate: int
    planted: tuple[Planted, ...]  # empty for a keyword-free stream

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.rate


class _Layout:
    """Clips laid one after another with random gains, gaps and overlaps."""

    def __init__(self, clip: int, rate: int, rng: np.random.Generator) -> None:
        self.clip, self.rng, self.cursor = clip, rng, 0
        self.overlap, self.gap = round(MAX_OVERLAP_S * rate), round(MAX_GAP_S * rate)
        self.placements: list[Placement] = []

    def add(self, row: int) -> Placement:
        gain = 10 ** (self.rng.uniform(-GAIN_DB, GAIN_DB) / 20)
        placement = Placement(int(row), self.cursor, float(gain))
        self.placements.append(placement)
        self.cursor += self.clip + int(self.rng.integers(-self.overlap, self.gap + 1))
        return placement

    def add_background(self, rows: np.ndarray, count: int) -> None:
        for _ in range(count):
            self.add(int(self.rng.choice(rows)))

    @property
    def end(self) -> int:
        return self.placements[-1].start + self.clip if self.placements else 0


def render(clips: np.ndarray, placements: Sequence[Placement], rate: int) -> np.ndarray:
    """Mix int16 ``clips`` at their placements into one float32 stream, clipped to [-1, 1) as
    an ADC would. Rows are read one at a time, so ``clips`` may be a memory map."""
    clip = clips.shape[1]
    length = max((p.start for p in placements), default=-clip) + clip
    out = np.zeros(length, dtype=np.float32)
    fade = min(round(FADE_S * rate), clip // 2)
    window = np.ones(clip, dtype=np.float32)
    if fade:
        ramp = ((np.arange(fade) + 0.5) / fade).astype(np.float32)
        window[:fade], window[clip - fade :] = ramp, ramp[::-1]
    for p in placements:
        out[p.start : p.start + clip] += np.asarray(clips[p.row], np.float32) * (
            window * np.float32(p.gain / 32768.0)
        )
    return np.clip(out, -1.0, 32767 / 32768, out=out)


def keyword_free_stream(
    clips: np.ndarray, background: np.ndarray, seconds: float, rate: int, rng: np.random.Generator
) -> Stream:
    """Background clips (rows ``background`` of ``clips``) until the stream lasts ``seconds``."""
    if len(background) == 0:
        raise ValueError("no background clips to build a stream from")
    layout = _Layout(clips.shape[1], rate, rng)
    while layout.end < seconds * rate:
        layout.add_background(background, 1)
    return Stream(render(clips, layout.placements, rate), rate, ())


def keyword_stream(
    clips: np.ndarray, labels: Sequence[str], background: np.ndarray, keywords: np.ndarray,
    seconds: float, rate: int, rng: np.random.Generator,
) -> Stream:  # fmt: skip
    """Background with each keyword clip (rows ``keywords``, labelled ``labels[row]``) planted
    once, in random order, while the stream stays within about ``seconds``; background clips
    before the first and after the last keyword too."""
    if len(background) == 0 or len(keywords) == 0:
        raise ValueError("a keyword stream needs background and keyword clips")
    layout = _Layout(clips.shape[1], rate, rng)
    planted: list[Planted] = []
    low, high = BACKGROUND_BETWEEN
    for row in rng.permutation(keywords):
        before = int(rng.integers(low, high + 1))
        # the keyword's clip and the background after it must fit in the stream as well
        if planted and layout.cursor + (before + 1 + high) * layout.clip > seconds * rate:
            break
        layout.add_background(background, before)
        placed = layout.add(int(row))
        planted.append(Planted(labels[int(row)], (placed.start + layout.clip / 2) / rate))
    layout.add_background(background, int(rng.integers(low, high + 1)))
    return Stream(render(clips, layout.placements, rate), rate, tuple(planted))


def split_rows(data: PreparedData, pool: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows of one pool/split: background (``_unknown_``, ``_silence_``) and keyword clips."""
    rows = data.select(pool, split)
    is_background = np.isin(data.manifest["label"].to_numpy()[rows], [UNKNOWN, SILENCE])
    return rows[is_background], rows[~is_background]
