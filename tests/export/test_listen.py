"""``edgelearn listen``: event detection on hand-made posteriors, windowing through a stub session,
and the real bundle on long audio with keywords planted at known times, in a process without torch.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from components.data.labels import KEYWORDS
from components.data.wav import write_wav
from components.export.bundle import Bundle, BundleError, open_bundle, write_sums
from components.export.listen import (
    BATCH,
    Event,
    ListenError,
    bundle_threshold,
    detect_events,
    listen_audio,
    listen_file,
    smooth,
)
from components.export.predict import Predictor
from tests.helpers import BIN, kws
from tests.helpers.torchless import no_torch_env

LABELS = ("yes", "no", "_unknown_", "_silence_")
RATE = 16000


def posteriors(yes=(), no=(), unknown=(), rows: int = 12) -> np.ndarray:
    """Rows of class scores: the given columns, zero elsewhere (rows need not sum to one here)."""
    p = np.zeros((rows, len(LABELS)))
    for column, values in enumerate((yes, no, unknown)):
        p[: len(values), column] = values
    return p


def events(p, threshold=0.5, smoothing=1, refractory_s=0.0, offset_s=0.0) -> list[Event]:
    return detect_events(p, LABELS, 0.1, threshold, smoothing, refractory_s, offset_s=offset_s)


def test_an_event_starts_where_the_posterior_crosses_and_is_timed_at_its_middle():
    p = posteriors(yes=[0.1, 0.2, 0.7, 0.9, 0.8, 0.3, 0.1])
    assert events(p) == [Event("yes", pytest.approx(0.3), pytest.approx(0.9), 2)]
    assert events(p, offset_s=0.5)[0].time_s == pytest.approx(0.8)  # row 0 at offset_s


def test_the_threshold_is_inclusive_and_a_higher_one_silences():
    p = posteriors(yes=[0.0, 0.6, 0.6, 0.0])
    assert [e.row for e in events(p, threshold=0.6)] == [1]
    assert events(p, threshold=0.61) == []


def test_a_posterior_already_above_threshold_at_the_first_row_counts_as_crossing():
    assert events(posteriors(no=[0.9, 0.9, 0.2])) == [Event("no", 0.05, 0.9, 0)]


def test_smoothing_ignores_a_one_row_spike_and_undoes_its_own_delay():
    spike = posteriors(yes=[0.0, 0.0, 0.9, 0.0, 0.0])
    assert len(events(spike, smoothing=1)) == 1
    assert events(spike, smoothing=3) == []  # 0.3 at most once averaged
    run = posteriors(yes=[0.0, 0.0, 0.9, 0.9, 0.9, 0.0, 0.0])
    # smoothed: 0, 0, .3, .6, .9, .6, .3 -> above 0.5 on rows 3..5; each stands for the centre of
    # the rows it averaged (2..4), so the event is timed at row 3, the middle of the raw run.
    assert events(run, smoothing=3) == [Event("yes", pytest.approx(0.3), pytest.approx(0.9), 3)]


def test_smooth_is_a_trailing_mean_over_the_rows_that_exist():
    x = np.array([[1.0], [2.0], [3.0], [4.0]])
    assert smooth(x, 2)[:, 0].tolist() == [1.0, 1.5, 2.5, 3.5]


def test_refractory_keeps_one_utterance_to_one_event_for_any_keyword():
    twice = posteriors(yes=[0.0, 0.0, 0.9, 0.9, 0.0, 0.0, 0.0, 0.9, 0.9, 0.0])  # rows 2 and 7
    assert [e.row for e in events(twice, refractory_s=1.0)] == [2]
    assert [e.row for e in events(twice, refractory_s=0.5)] == [2, 7]  # 0.5 s later: allowed
    assert [e.row for e in events(twice, refractory_s=0.51)] == [2]
    other = posteriors(yes=[0.0, 0.9, 0.9, 0.0], no=[0.0, 0.0, 0.0, 0.9, 0.9, 0.0])
    assert [e.label for e in events(other, refractory_s=1.0)] == ["yes"]
    assert [e.label for e in events(other, refractory_s=0.0)] == ["yes", "no"]


def test_a_flutter_below_threshold_inside_refractory_is_one_event_scored_on_its_first_stretch():
    p = posteriors(yes=[0.0, 0.7, 0.8, 0.4, 0.95, 0.6, 0.0])
    assert events(p, refractory_s=1.0) == [Event("yes", pytest.approx(0.15), 0.8, 1)]


def test_unknown_and_silence_never_fire_and_the_higher_keyword_wins_a_tie_row():
    p = posteriors(unknown=[0.99, 0.99, 0.99])
    p[:, 3] = 0.99
    assert events(p) == []
    both = posteriors(yes=[0.0, 0.6, 0.6], no=[0.0, 0.7, 0.7])
    assert [e.label for e in events(both, refractory_s=1.0)] == ["no"]


def test_bad_posteriors_are_refused():
    with pytest.raises(ValueError, match=r"posteriors of shape \(3, 2\) for 4 labels"):
        detect_events(np.zeros((3, 2)), LABELS, 0.1, 0.5, 1, 0.0)
    with pytest.raises(ValueError, match="smoothing must be >= 1"):
        detect_events(np.zeros((3, 4)), LABELS, 0.1, 0.5, 0, 0.0)


class BlockSession:
    """A stand-in for ONNX Runtime: ``yes`` scores the share of a block of ones the window holds
    (1.0 once it holds the whole block), so where the detector must place an event is exact."""

    def __init__(self, block: int) -> None:
        self.block, self.batches = block, []

    def run(self, _names, feeds):
        audio = feeds["audio"]
        self.batches.append(len(audio))
        p = np.zeros((len(audio), len(LABELS)), dtype=np.float32)
        p[:, 0] = audio.sum(axis=1) / self.block
        p[:, 3] = 1.0 - p[:, 0]
        return p, p


def stub(block: int):
    return SimpleNamespace(session=BlockSession(block), input="audio", labels=list(LABELS))


METADATA = {"sample_rate": RATE, "clip_samples": RATE}  # as the bundle's metadata.json says


def test_windows_are_batched_and_events_timed_at_the_centre_of_what_was_heard():
    audio = np.zeros(20 * RATE, dtype=np.float32)
    audio[int(2.0 * RATE) : int(2.4 * RATE)] = 1.0  # a 0.4 s "word" centred at 2.2 s
    audio[int(15.3 * RATE) : int(15.6 * RATE)] = 1.0  # one centred at 15.45 s
    predictor = stub(int(0.4 * RATE))
    found = listen_audio(predictor, audio, METADATA, threshold=0.7)  # type: ignore[arg-type]
    assert [(e.label, round(e.time_s, 6)) for e in found] == [("yes", 2.2), ("yes", 15.45)]
    batches = predictor.session.batches
    assert sum(batches) == 191 and max(batches) == BATCH  # (20 s - 1 s) / 0.1 s + 1 windows


def test_a_stream_shorter_than_a_window_or_ending_between_hops_is_heard_to_its_end():
    predictor = stub(1600)
    tail = np.zeros(RATE + 800, dtype=np.float32)
    tail[-1600:] = 1.0
    found = listen_audio(predictor, tail, METADATA, 0.9, smoothing=1)  # type: ignore[arg-type]
    assert predictor.session.batches == [2] and [e.row for e in found] == [1]
    short = np.ones(1600, dtype=np.float32)
    assert len(listen_audio(stub(1600), short, METADATA, 0.9)) == 1  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"hop_ms": 0.0}, r"--hop-ms 0: must be from 0.0625 ms \(one sample\) to 1000 ms"),
        ({"hop_ms": 1500.0}, r"--hop-ms 1500: must be from"),
        ({"threshold": 0.0}, r"--threshold 0: must be in \(0, 1\]"),
        ({"threshold": 1.2}, r"--threshold 1.2: must be in \(0, 1\]"),
        ({"smoothing": 0}, r"--smoothing 0: must be at least 1 hop"),
        ({"refractory_s": -1.0}, r"--refractory -1: must be 0 s or more"),
    ],
)
def test_bad_settings_are_refused_by_name(setting, message):
    kwargs = {"threshold": 0.5, **setting}
    with pytest.raises(ListenError, match=message):
        listen_audio(stub(1600), np.zeros(RATE, np.float32), METADATA, **kwargs)  # type: ignore[arg-type]


def test_the_threshold_comes_from_the_bundle_metadata_else_the_default(tmp_path):
    def bundle(**metadata) -> Bundle:
        return Bundle(tmp_path, metadata, list(LABELS))

    assert bundle_threshold(bundle()) == 0.5
    assert bundle_threshold(bundle(detection_threshold=0.82)) == 0.82
    for bad in ("high", 1.5, 0, True, None):
        with pytest.raises(BundleError, match=r"metadata.json: detection_threshold must be a "
                                              r"number in \(0, 1\], got "):  # fmt: skip
            bundle_threshold(bundle(detection_threshold=bad))


# --- the real bundle on long audio -------------------------------------------------------------

# Words this tiny network labels best, from measuring it across the corpus voices (yes, down,
# right, on and go are the most reliable, stop and left sometimes cross at a partial window, up
# is heard early: its energy is at its start). Whatever the machine, only words the bundle labels
# right with a margin, alone and shifted by a hop either way, are planted.
PREFERENCE = ("yes", "down", "right", "on", "go", "no", "stop", "left", "off", "up")
VOICE = (*kws.TEST_VOICES[0], 165, 45)  # a voice at a speed and pitch never trained on
MARGIN = 0.8
HOP_S, FIRST, GAP, LENGTH = 0.1, 1.5, 2.5, 14.0  # word centres (s), stream length: > BATCH windows


def in_clip(word: np.ndarray, shift: int) -> np.ndarray:
    clip = np.zeros(RATE, dtype=np.float32)
    start = (RATE - len(word)) // 2 + shift
    clip[start : start + len(word)] = word
    return clip[None, :]


@pytest.fixture(scope="module")
def stream(exported, espeak, tmp_path_factory):
    """A 14 s WAV of faint noise (-50 dBFS) with up to four reliable keywords, each centred at a
    known time; returns its path and the planted (word, centre in seconds)."""
    predictor = Predictor(open_bundle(exported.result.bundle_dir))
    chosen = {}
    for word in PREFERENCE:
        audio = kws.speak(espeak, word, VOICE)
        scores = [predictor.predict(in_clip(audio, shift)) for shift in (-1600, 0, 1600)]
        if all(label == word and score >= MARGIN for label, score in scores):
            chosen[word] = audio
        if len(chosen) == 4:
            break
    assert len(chosen) >= 2, f"the test bundle labels too few keywords reliably: {chosen}"
    x = np.random.default_rng(0).standard_normal(int(LENGTH * RATE)) * 10 ** (-50 / 20)
    planted = []
    for i, (word, audio) in enumerate(chosen.items()):
        centre = FIRST + GAP * i
        start = round(centre * RATE) - len(audio) // 2
        x[start : start + len(audio)] += audio
        planted.append((word, start / RATE + len(audio) / 2 / RATE))
    path = tmp_path_factory.mktemp("listen") / "stream.wav"
    write_wav(path, x.astype(np.float32))
    return path, planted


def run(path, bundle, **kwargs) -> tuple[list[tuple[float, str, float]], str]:
    out, err = io.StringIO(), io.StringIO()
    assert listen_file(str(path), str(bundle), out=out, err=err, **kwargs) == 0
    rows = [line.split("\t") for line in out.getvalue().splitlines()]
    return [(float(t), label, float(s)) for t, label, s in rows], err.getvalue()


def assert_found_where_planted(found, planted) -> None:
    assert [label for _, label, _ in found] == [word for word, _ in planted], (found, planted)
    for (time_s, _, score), (_, centre) in zip(found, planted, strict=True):
        assert abs(time_s - centre) <= HOP_S + 0.005, (found, planted)  # printed to 10 ms
        assert 0.5 <= score <= 1.0


@pytest.mark.slow
def test_planted_keywords_are_found_at_their_times_and_nothing_else(exported, stream):
    # at a fixed threshold: the bundle's own (detection_threshold) depends on how this tiny
    # network fares on the export stage's streams
    path, planted = stream
    found, err = run(path, exported.result.bundle_dir, threshold=0.5)
    assert_found_where_planted(found, planted)
    assert f"{len(planted)} keyword events in 14.0 s (threshold 0.5 (--threshold), hop 100" in err


@pytest.mark.slow
def test_threshold_from_metadata_and_a_refused_file(exported, stream, tmp_path):
    path, _ = stream
    bundle = shutil.copytree(exported.result.bundle_dir, tmp_path / "bundle")
    metadata = json.loads((bundle / "metadata.json").read_text())
    (bundle / "metadata.json").write_text(json.dumps({**metadata, "detection_threshold": 0.999}))
    write_sums(bundle, [n.split("  ")[1] for n in (bundle / "SHA256SUMS").read_text().splitlines()])
    found, err = run(path, bundle)
    assert "(threshold 0.999 (detection_threshold)" in err and len(found) <= 1
    found, err = run(path, bundle, threshold=0.5)
    assert "(threshold 0.5 (--threshold)" in err and found
    write_wav(tmp_path / "low.wav", np.zeros(8000, dtype=np.int16), sample_rate=8000)
    with pytest.raises(ListenError, match=r"low\.wav: sample rate 8000 Hz is below the model's"):
        run(tmp_path / "low.wav", bundle)


@pytest.mark.slow
def test_cli_in_a_process_that_cannot_import_torch(exported, stream, tmp_path):
    env = no_torch_env(tmp_path)
    probe = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True)
    assert probe.returncode != 0 and b"blocked by the test" in probe.stderr
    path, planted = stream
    bundle = str(exported.result.bundle_dir)
    for extra in ([], ["--int8"]):
        proc = subprocess.run(
            [str(BIN / "edgelearn"), "listen", str(path), "--bundle", bundle, "--threshold",
             "0.5", *extra],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        rows = [line.split("\t") for line in proc.stdout.splitlines()]
        if not extra:  # int8 arithmetic differs between CPUs: it must run, not match
            found = [(float(t), label, float(s)) for t, label, s in rows]
            assert_found_where_planted(found, planted)
        assert all(label in KEYWORDS for _, label, _ in rows)
    proc = subprocess.run(
        [str(BIN / "edgelearn"), "listen", str(tmp_path / "missing.wav"), "--bundle", bundle],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"edgelearn: error: {tmp_path / 'missing.wav'}: unreadable: No such file" in proc.stderr
