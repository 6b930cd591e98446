"""``edgelearn evaluate``: exact figures on hand-made predictions, the folder scan and its
rejections, and the real bundle on espeak-ng keywords in a process that cannot import torch."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest

from components.data.labels import CLASSES, KEYWORDS, UNKNOWN
from components.data.wav import write_wav
from components.export.bundle import open_bundle
from components.export.evaluate import (
    EvaluationError,
    confusion_figures,
    evaluate_folder,
    find_clips,
    format_figures,
    score_folder,
)
from components.export.predict import Predictor, predict_files
from tests.helpers import BIN, kws
from tests.helpers.torchless import no_torch_env

LABELS = ("yes", "no", "up", "_unknown_", "_silence_")
TRUE = ["yes", "yes", "no", "_unknown_", "_unknown_", "_unknown_", "_silence_"]
PREDICTED = ["yes", "no", "no", "yes", "_unknown_", "_silence_", "_silence_"]


def test_confusion_figures_on_hand_made_predictions():
    figures = confusion_figures(TRUE, PREDICTED, LABELS)
    assert figures == {
        "num_clips": 7,
        "accuracy_pct": pytest.approx(100 * 4 / 7),
        "labels": list(LABELS),
        "confusion": [
            [1, 1, 0, 0, 0],  # yes: one right, one heard as no
            [0, 1, 0, 0, 0],
            [0, 0, 0, 0, 0],  # up: no clips
            [1, 0, 0, 1, 1],  # unknown: one false accept (yes); silence is not an accept
            [0, 0, 0, 0, 1],
        ],
        "per_class": {
            "yes": {"clips": 2, "correct": 1, "accuracy_pct": 50.0},
            "no": {"clips": 1, "correct": 1, "accuracy_pct": 100.0},
            "up": {"clips": 0, "correct": 0, "accuracy_pct": None},
            "_unknown_": {"clips": 3, "correct": 1, "accuracy_pct": pytest.approx(100 / 3)},
            "_silence_": {"clips": 1, "correct": 1, "accuracy_pct": 100.0},
        },
        "num_unknown": 3,
        "false_accepts": 1,
    }


def test_figures_are_printed_as_a_table():
    lines = format_figures(confusion_figures(TRUE, PREDICTED, LABELS))
    assert lines == [
        "accuracy: 57.14% (4 of 7)",
        "false accepts: 1 of 3 _unknown_ clips predicted as a keyword (33.33%)",
        "confusion matrix (rows: true label, columns: predicted):",
        "          yes no up _unknown_ _silence_ clips acc %",
        "yes         1  1  0         0         0     2  50.0",
        "no          0  1  0         0         0     1 100.0",
        "up          0  0  0         0         0     0     -",
        "_unknown_   1  0  0         1         1     3  33.3",
        "_silence_   0  0  0         0         1     1 100.0",
    ]


def test_bad_predictions_are_refused():
    with pytest.raises(ValueError, match="2 true labels but 1 predictions"):
        confusion_figures(["yes", "no"], ["yes"], LABELS)
    with pytest.raises(ValueError, match="no clips to score"):
        confusion_figures([], [], LABELS)
    with pytest.raises(ValueError, match=r"labels not in .*: \['maybe'\]"):
        confusion_figures(["yes"], ["maybe"], LABELS)


def test_folders_outside_the_labels_count_as_unknown_and_noise_is_skipped(tmp_path):
    names = "yes/a.wav yes/b.WAV yes/notes.txt yes/.hidden.wav bird/c.wav _unknown_/d.wav"
    for rel in (*names.split(), "_background_noise_/tap.wav", ".cache/e.wav", "README.wav"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    (tmp_path / "hey_edge").mkdir()
    (tmp_path / "hey_edge" / "f.wav").write_bytes(b"")
    found = find_clips(tmp_path, (*LABELS, "Hey Edge"))
    assert [(p.relative_to(tmp_path).as_posix(), label) for p, label in found.clips] == [
        ("_unknown_/d.wav", "_unknown_"),
        ("bird/c.wav", "_unknown_"),
        ("hey_edge/f.wav", "Hey Edge"),  # a phrase keyword in its corpus folder
        ("yes/a.wav", "yes"),
        ("yes/b.WAV", "yes"),
    ]
    assert found.as_unknown == {"bird": 1} and found.skipped == ["_background_noise_"]


def test_a_missing_or_empty_folder_is_one_error_naming_it(tmp_path):
    with pytest.raises(EvaluationError, match=f"^{tmp_path / 'nope'}: folder does not exist$"):
        find_clips(tmp_path / "nope", LABELS)
    (tmp_path / "file.wav").write_bytes(b"")
    with pytest.raises(EvaluationError, match=r"file\.wav: not a folder \(expected <label>/"):
        find_clips(tmp_path / "file.wav", LABELS)
    (tmp_path / "empty" / "yes").mkdir(parents=True)
    (tmp_path / "empty" / "_background_noise_").mkdir()
    (tmp_path / "empty" / "_background_noise_" / "x.wav").write_bytes(b"")
    with pytest.raises(EvaluationError, match=r"empty: no labelled clips \(expected <label>/"):
        find_clips(tmp_path / "empty", LABELS)


# --- the real bundle ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def voices(tmp_path_factory, espeak):
    """The keywords and two words outside the list, spoken by the two test voices at a speed
    and pitch never trained on, in ``<word>/<voice>.wav``; a noise clip in ``_silence_/``, a
    ``_background_noise_/`` recording, a corrupt file and a stray note."""
    out = tmp_path_factory.mktemp("voices")
    for word in (*KEYWORDS, "bird", "dog"):
        for voice in kws.TEST_VOICES:
            audio = kws.speak(espeak, word, (*voice, 165, 45))
            write_wav(out / word / f"{voice[0]}_{voice[1]}.wav", audio)
    noise = np.random.default_rng(0).standard_normal(16000) * 10 ** (-35 / 20)
    write_wav(out / "_silence_" / "noise.wav", noise.astype(np.float32))
    write_wav(out / "_background_noise_" / "long.wav", np.zeros(48000, dtype=np.int16))
    (out / "yes" / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    (out / "README.txt").write_text("recorded in the test\n")
    return out


def run(directory, bundle, int8=False) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = evaluate_folder(str(directory), str(bundle), int8, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.slow
def test_figures_agree_with_predict_clip_by_clip(exported, voices):
    bundle = open_bundle(exported.result.bundle_dir)
    score = score_folder(voices, Predictor(bundle), bundle.metadata)
    clips = [path for path, _ in score.found.clips if path.name != "broken.wav"]
    out = io.StringIO()
    predict_files([str(p) for p in clips], str(bundle.directory), out=out, err=io.StringIO())
    predicted = [line.split("\t")[1] for line in out.getvalue().splitlines()]
    true = [p.parent.name if p.parent.name in CLASSES else UNKNOWN for p in clips]
    assert score.figures == confusion_figures(true, predicted, bundle.labels)
    assert score.figures["num_clips"] == 25 and score.figures["num_unknown"] == 4
    per_class = score.figures["per_class"]
    assert [per_class[w]["clips"] for w in KEYWORDS] == [2] * 10
    assert score.rejected == [(voices / "yes" / "broken.wav", "corrupt WAV: no fmt chunk")]
    assert score.fitted["padded"] == 24  # every trimmed word; the noise clip is exactly 1 s


@pytest.mark.slow
def test_report_names_the_unknown_folders_and_the_broken_clip(exported, voices):
    code, out, err = run(voices, exported.result.bundle_dir)
    assert code == 1  # a clip failed, the rest were scored
    assert out.startswith(f"{voices}: 25 clips scored with {exported.result.bundle_dir} (fp32)\n")
    assert (f"count as {UNKNOWN} (Speech Commands convention: words outside the keyword list): "
            "bird/ (2), dog/ (2)") in out  # fmt: skip
    assert "note: skipped _background_noise_/ (long noise recordings" in out
    assert "confusion matrix (rows: true label, columns: predicted):" in out
    assert err.splitlines() == [
        f"edgelearn: error: {voices / 'yes' / 'broken.wav'}: corrupt WAV: no fmt chunk",
        "edgelearn: 1 of 26 files could not be scored",
    ]


@pytest.mark.slow
def test_cli_in_a_process_that_cannot_import_torch(exported, voices, tmp_path):
    env = no_torch_env(tmp_path)
    probe = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True)
    assert probe.returncode != 0 and b"blocked by the test" in probe.stderr
    bundle = str(exported.result.bundle_dir)

    def evaluate(directory, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "edgelearn"), "evaluate", str(directory), "--bundle", bundle, *extra],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    proc = evaluate(voices)
    assert proc.returncode == 1 and proc.stdout == run(voices, bundle)[1]
    proc = evaluate(voices, "--int8")
    assert proc.returncode == 1 and "25 clips scored with" in proc.stdout
    assert "(int8)" in proc.stdout
    (tmp_path / "empty").mkdir()
    for directory, why in ((tmp_path / "missing", "folder does not exist"),
                           (tmp_path / "empty", "no labelled clips")):  # fmt: skip
        proc = evaluate(directory)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.startswith(f"edgelearn: error: {directory}: {why}")
