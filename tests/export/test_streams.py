"""Streaming detection: stream building checked sample by sample, hit/miss/false-accept counting
and the threshold choice on hand-made figures, the cheap path against ``listen_audio``, and the
export stage's figures and bundle threshold."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from components.data.prepared import PreparedData
from components.export import stage
from components.export.bundle import open_bundle
from components.export.detection import SETS
from components.export.figures import detection_tradeoff
from components.export.listen import Event, bundle_threshold, listen_audio
from components.export.streaming import (
    GRID,
    Detector,
    Tally,
    choose_threshold,
    score_stream,
    sweep,
    tally,
)
from components.export.streams import (
    FADE_S,
    GAIN_DB,
    MAX_GAP_S,
    Placement,
    Planted,
    Stream,
    keyword_free_stream,
    keyword_stream,
    render,
    split_rows,
)

RATE, CLIP = 1000, 1000  # 1 s clips at a low rate keep the arrays small; every length in samples
LEVEL = 16384  # int16 value of the marker blocks: 0.5 before the gain


def clip_set() -> tuple[np.ndarray, list[str]]:
    """Rows 0-3: silent background; rows 4-9: keywords, each a 0.2 s block at the clip's centre
    (samples 400-599), positive for ``yes`` and negative for ``no``."""
    clips = np.zeros((10, CLIP), dtype=np.int16)
    labels = ["_unknown_", "_silence_", "_unknown_", "_silence_"] + ["yes", "no"] * 3
    for row in range(4, 10):
        clips[row, 400:600] = LEVEL if labels[row] == "yes" else -LEVEL
    return clips, labels


BACKGROUND, KEYWORDS = np.arange(4), np.arange(4, 10)


def runs(x: np.ndarray) -> list[tuple[int, int]]:
    """(first, end) of every stretch of non-zero samples."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], (x != 0).astype(int), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def test_planted_keywords_sound_exactly_where_the_event_list_says():
    clips, labels = clip_set()
    stream = keyword_stream(clips, labels, BACKGROUND, KEYWORDS, 60.0, RATE,
                            np.random.default_rng(3))  # fmt: skip
    found = runs(stream.audio)
    assert len(found) == len(stream.planted) == 6  # all six fit in a minute, each once
    for (first, end), planted in zip(found, stream.planted, strict=True):
        assert end - first == 200  # the whole block, nothing cut
        assert (first + end) / 2 / RATE == planted.time_s  # its centre is the planted time
        level = stream.audio[first:end]
        assert np.all(level == level[0])  # one gain over the block (the fades are at the ends)
        assert (level[0] > 0) == (planted.label == "yes")
        assert 10 ** (-GAIN_DB / 20) <= abs(level[0]) / 0.5 <= 10 ** (GAIN_DB / 20) + 1e-6
    times = [p.time_s for p in stream.planted]
    assert min(np.diff(times)) >= 2.0
    assert sorted(p.label for p in stream.planted) == ["no"] * 3 + ["yes"] * 3


def test_a_keyword_stream_stops_planting_at_its_length_and_always_plants_one():
    clips, labels = clip_set()
    short = keyword_stream(clips, labels, BACKGROUND, KEYWORDS, 8.0, RATE,
                           np.random.default_rng(0))  # fmt: skip
    assert 1 <= len(short.planted) < 6 and short.seconds <= 8.0 + 1e-9
    tiny = keyword_stream(clips, labels, BACKGROUND, KEYWORDS, 0.5, RATE, np.random.default_rng(0))
    assert len(tiny.planted) == 1  # a stream shorter than one keyword still gets one


def test_a_keyword_free_stream_lasts_at_least_as_asked_and_is_fixed_by_its_seed():
    clips = np.full((3, CLIP), 1000, dtype=np.int16)
    rows = np.arange(3)
    a = keyword_free_stream(clips, rows, 30.0, RATE, np.random.default_rng(7))
    assert a.planted == () and a.audio.dtype == np.float32
    assert 30 * RATE <= len(a.audio) < 30 * RATE + CLIP + MAX_GAP_S * RATE
    again = keyword_free_stream(clips, rows, 30.0, RATE, np.random.default_rng(7))
    other = keyword_free_stream(clips, rows, 30.0, RATE, np.random.default_rng(8))
    assert np.array_equal(a.audio, again.audio)
    assert not np.array_equal(a.audio[: len(other.audio)], other.audio[: len(a.audio)])
    clips_kw, labels = clip_set()
    one = keyword_stream(clips_kw, labels, BACKGROUND, KEYWORDS, 60.0, RATE,
                         np.random.default_rng(5))  # fmt: skip
    two = keyword_stream(clips_kw, labels, BACKGROUND, KEYWORDS, 60.0, RATE,
                         np.random.default_rng(5))  # fmt: skip
    assert one.planted == two.planted and np.array_equal(one.audio, two.audio)


def test_render_fades_each_clip_mixes_overlaps_and_clips_like_an_adc():
    clips = np.full((1, 100), 16384, dtype=np.int16)  # 0.5 at gain 1
    out = render(clips, [Placement(0, 0, 1.0), Placement(0, 50, 1.0)], RATE)
    fade = round(FADE_S * RATE)
    assert len(out) == 150 and fade == 10
    assert out[0] == pytest.approx(0.5 * 0.5 / fade)  # first ramp sample: (0 + 0.5) / fade
    assert np.all(out[fade:50] == 0.5)
    assert np.all(out[60:90] == 1.0 - 2**-15)  # 0.5 + 0.5, held just below full scale
    assert out[-1] == pytest.approx(0.5 * 0.5 / fade)
    assert render(clips, [Placement(0, 0, 0.5)], RATE)[50] == 0.25


def test_streams_need_clips_to_be_built_from():
    clips, labels = clip_set()
    with pytest.raises(ValueError, match="no background clips"):
        keyword_free_stream(clips, np.array([], dtype=int), 1.0, RATE, np.random.default_rng(0))
    with pytest.raises(ValueError, match="needs background and keyword clips"):
        keyword_stream(clips, labels, BACKGROUND, np.array([], dtype=int), 1.0, RATE,
                       np.random.default_rng(0))  # fmt: skip


def test_split_rows_separates_background_from_keywords_of_one_pool_and_split():
    manifest = pd.DataFrame({
        "label": ["yes", "_unknown_", "_silence_", "no", "yes", "_unknown_"],
        "pool": ["server", "server", "server", "server", "client", "server"],
        "split": ["val", "val", "val", "test", "test", "test"],
    })  # fmt: skip
    data = PreparedData(np.zeros((6, 4), np.int16), np.zeros((6, 1, 1), np.float32), manifest, {})
    background, keywords = split_rows(data, "server", "val")
    assert background.tolist() == [1, 2] and keywords.tolist() == [0]
    assert [r.tolist() for r in split_rows(data, "server", "test")] == [[5], [3]]


# --- counting -----------------------------------------------------------------------------------


def event(label: str, time_s: float) -> Event:
    return Event(label, time_s, 0.9, 0)


def test_hits_misses_and_false_accepts_are_counted_against_what_was_planted():
    planted = [Planted("yes", 2.0), Planted("no", 5.0), Planted("yes", 8.0)]
    detected = [
        event("yes", 2.5),  # hit
        event("yes", 2.9),  # the same word again: the device woke twice, a false accept
        event("no", 5.8),  # 0.8 s off: beyond the 0.75 s tolerance, a false accept
        event("no", 8.0),  # the wrong keyword on a planted one: a false accept
        event("yes", 8.75),  # 0.75 s off: within tolerance, a hit
    ]
    t = tally(detected, planted, seconds=1800.0)
    assert (t.hits, t.misses, t.false_accepts, t.planted) == (2, 1, 3, 3)
    assert t.false_accepts_per_hour == 6.0  # 3 in half an hour
    assert t.false_reject_rate == pytest.approx(100 / 3)


def test_each_detection_takes_the_nearest_planted_keyword_not_yet_taken_in_time_order():
    planted = [Planted("yes", 1.0), Planted("yes", 2.2)]
    t = tally([event("yes", 1.7), event("yes", 1.1)], planted, 10.0)
    assert (t.hits, t.false_accepts) == (2, 0)  # 1.1 -> 1.0 first, then 1.7 -> 2.2
    t = tally([event("yes", 1.7)], planted, 10.0)
    assert (t.hits, t.misses) == (1, 1)


def test_tallies_add_up_and_say_nan_where_nothing_was_measured():
    a, b = Tally(1800.0, 2, 10, 7), Tally(5400.0, 1, 0, 0)
    total = a + b
    assert total == Tally(7200.0, 3, 10, 7)
    assert total.false_accepts_per_hour == 1.5 and total.hours == 2.0
    assert total.false_reject_rate == pytest.approx(30.0)
    assert math.isnan(Tally().false_accepts_per_hour) and math.isnan(b.false_reject_rate)
    assert tally([], [], 3600.0) == Tally(3600.0, 0, 0, 0)


# --- the threshold ------------------------------------------------------------------------------

THRESHOLDS = [0.3, 0.4, 0.5, 0.6, 0.7]


@pytest.mark.parametrize(
    ("rates", "chosen"),
    [
        ([9.0, 3.0, 1.0, 0.5, 0.0], (0.5, True)),  # the target itself is allowed
        ([0.0, 0.0, 0.0, 0.0, 0.0], (0.3, True)),  # the lowest of the grid
        ([9.0, 3.0, 0.5, 2.0, 0.0], (0.7, True)),  # a lone dip below the target is not trusted
        ([9.0, 8.0, 7.0, 6.0, 5.0], (0.7, False)),  # none meets it: the highest, and says so
        ([9.0, 1.0, 0.0, 0.0, math.nan], (0.7, False)),  # no audio measured meets nothing
    ],
)
def test_the_threshold_is_the_lowest_from_which_on_the_target_holds(rates, chosen):
    assert choose_threshold(THRESHOLDS, rates, target=1.0) == chosen


def test_a_threshold_needs_a_figure_per_grid_point():
    with pytest.raises(ValueError, match="5 thresholds but 4 figures"):
        choose_threshold(THRESHOLDS, [1.0] * 4, 1.0)
    assert GRID[0] == 0.3 and GRID[69] == 0.99 and GRID[-3:] == (0.999, 0.9995, 0.9999)
    assert len(GRID) == 81 and list(GRID) == sorted(set(GRID))


# --- scoring once, thresholds many --------------------------------------------------------------

LABELS = ("yes", "no", "_unknown_", "_silence_")
AUDIO_RATE = 16000


class BlockSession:
    """As in test_listen: ``yes`` scores the share of a block of ones the window holds."""

    def __init__(self, block: int) -> None:
        self.block = block

    def run(self, _names, feeds):
        audio = feeds["audio"]
        p = np.zeros((len(audio), len(LABELS)), dtype=np.float32)
        p[:, 0] = audio.sum(axis=1) / self.block
        p[:, 3] = 1.0 - p[:, 0]
        return p, p


def test_scored_streams_detect_exactly_what_listen_audio_detects():
    audio = np.zeros(20 * AUDIO_RATE, dtype=np.float32)
    audio[int(2.0 * AUDIO_RATE) : int(2.4 * AUDIO_RATE)] = 1.0
    audio[int(15.3 * AUDIO_RATE) : int(15.5 * AUDIO_RATE)] = 1.0  # half a block: scores 0.5
    predictor = SimpleNamespace(session=BlockSession(int(0.4 * AUDIO_RATE)), input="audio",
                                labels=list(LABELS))  # fmt: skip
    metadata = {"sample_rate": AUDIO_RATE, "clip_samples": AUDIO_RATE}
    stream = Stream(audio, AUDIO_RATE, (Planted("yes", 2.2), Planted("yes", 15.4)))
    detector = Detector()
    scored = score_stream(predictor, stream, metadata, detector)  # type: ignore[arg-type]
    for threshold in (0.3, 0.45, 0.7):
        device = listen_audio(predictor, audio, metadata, threshold)  # type: ignore[arg-type]
        assert scored.events(threshold, detector) == device
    assert scored.tally(0.3, detector) == Tally(20.0, 0, 2, 2)
    assert scored.tally(0.7, detector) == Tally(20.0, 0, 2, 1)
    swept = sweep([scored, scored], detector, grid=(0.3, 0.7))
    assert swept == [Tally(40.0, 0, 4, 4), Tally(40.0, 0, 4, 2)]


def test_the_detection_figure_draws_both_curves_and_marks_the_threshold():
    curve = [
        {"threshold": t, "val_false_accepts_per_hour": 10 * (1 - t),
         "val_false_reject_rate": 100 * t, "test_false_accepts_per_hour": math.nan,
         "test_false_reject_rate": math.nan}
        for t in (0.3, 0.5, 0.9)
    ]  # fmt: skip
    fig = detection_tradeoff(curve, 0.5, 1.0)
    assert isinstance(fig, Figure)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert "val streams" in labels and "test streams" not in labels  # no test audio: no curve
    assert any(line.get_xdata()[0] == 5.0 for line in fig.axes[0].get_lines())  # the circle


# --- the export stage ---------------------------------------------------------------------------


@pytest.mark.slow
def test_the_stage_reports_detection_figures_and_ships_its_threshold(exported):
    m, result = exported.result.metrics, exported.result
    for key in ("false_accepts_per_hour", "false_reject_rate", "detection_threshold"):
        assert key in stage.HEADLINE and key in m
    threshold = m["detection_threshold"]
    assert threshold in GRID
    bundle = open_bundle(result.bundle_dir)  # the sums cover the metadata with the threshold
    assert bundle.metadata["detection_threshold"] == threshold == bundle_threshold(bundle)
    detection = bundle.metadata["detection"]
    assert detection == json.loads(json.dumps(result.metadata["detection"]))
    assert detection["hop_ms"] == 100.0 and detection["target_met"] == bool(
        m["detection_target_met"]
    )

    minutes = exported.params.export.stream_minutes
    test_sets = [name for name, _, _ in SETS if name != "val"]
    for name in ("val", *test_sets):  # the tests' corpus has no val split: train stands in
        assert m[f"stream_{name}_hours"] >= minutes / 60  # the keyword-free stream alone
        planted, hit = m[f"stream_{name}_keywords_planted"], m[f"stream_{name}_keywords_hit"]
        assert planted > 0 and hit + m[f"stream_{name}_keywords_missed"] == planted
        assert m[f"stream_{name}_false_accepts"] >= m[f"stream_{name}_false_accepts_keyword_free"]
    assert m["detection_threshold_chosen_on"].startswith("server/train streams")
    hours = sum(m[f"stream_{name}_hours"] for name in test_sets)
    false_accepts = sum(m[f"stream_{name}_false_accepts"] for name in test_sets)
    assert m["false_accepts_per_hour"] == pytest.approx(false_accepts / hours, rel=1e-3)
    planted = sum(m[f"stream_{name}_keywords_planted"] for name in test_sets)
    missed = sum(m[f"stream_{name}_keywords_missed"] for name in test_sets)
    assert m["false_reject_rate"] == pytest.approx(100 * missed / planted, abs=1e-3)

    curve = m["detection_curve"]
    assert [row["threshold"] for row in curve] == list(GRID)
    at = next(row for row in curve if row["threshold"] == threshold)
    assert at["test_false_reject_rate"] == m["false_reject_rate"]
    above = [row["val_false_accepts_per_hour"] for row in curve if row["threshold"] >= threshold]
    target = exported.params.export.target_false_accepts_per_hour
    assert m["detection_target_met"] == int(all(r <= target for r in above))
