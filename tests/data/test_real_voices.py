"""The real-voice test set: built from the Debian packages installed on this machine.

Like the speech engines, the packages are required: a test that needs them fails, never skips,
when one is missing (``bash scripts/install-real-voices.sh`` installs them).
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

import components.data.real_voices as rv
from components.data.labels import KEYWORDS, UNKNOWN, classes_of
from components.data.wav import read_wav
from components.export.evaluate import find_clips


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict]:
    """The set for the default keywords, built once from the installed packages."""
    out = tmp_path_factory.mktemp("real-voices") / "set"
    try:
        manifest = rv.build(out)
    except rv.RealVoicesError as err:
        pytest.fail(str(err))
    return out, manifest


# --- the table, and labels decided from transcripts alone ------------------------------------


def test_every_recording_is_described_once_with_a_usable_speaker_id():
    paths = [r.path for r in rv.RECORDINGS]
    assert len(paths) == len(set(paths))
    for r in rv.RECORDINGS:
        assert rv.SPEAKER_ID.match(r.speaker), r.speaker
        assert r.path.startswith("/usr/share/"), r.path
        assert r.said == r.said.lower() and all(p for p in r.parts), r.said
        if len(r.parts) > 1:
            assert r.below_db is not None, f"{r.path} is cut but has no silence threshold"


def test_the_plan_for_the_default_keywords_has_the_documented_counts():
    clips, skipped = rv.plan()
    counts = {label: sum(c.label == label for c in clips) for label in rv.DEFAULT_COUNTS}
    assert counts == rv.DEFAULT_COUNTS
    assert {c.label for c in clips} == set(rv.DEFAULT_COUNTS)
    assert skipped == []


def test_a_keyword_inside_a_longer_phrase_is_neither_keyword_nor_unknown():
    clips, skipped = rv.plan(["ten", "over"])
    said = {(c.recording.path.rsplit("/", 1)[1], c.said): c.label for c in clips}
    reasons = {(s["source"].rsplit("/", 1)[1], s["said"]): s["reason"] for s in skipped}
    assert ("goforward.raw", "ten meters") in reasons
    assert ("001.wav", "ten of clubs") in reasons  # a whole recording: left out whole
    assert ("over.ogg", "game over") in reasons
    assert "'ten'" in reasons[("goforward.raw", "ten meters")]
    # the other parts of the same recording stay, as what they are
    assert said[("goforward.raw", "go")] == UNKNOWN  # "go" is no keyword in this list
    assert said[("goforward.raw", "forward")] == UNKNOWN
    assert not any(c.label in ("ten", "over") for c in clips)


def test_a_keyword_phrase_that_is_the_whole_recording_is_one_uncut_clip():
    clips, skipped = rv.plan(["front left", "go forward"])
    whole = [c for c in clips if c.label == "front left"]
    assert [(c.recording.path.rsplit("/", 1)[1], c.part) for c in whole] == [
        ("Front_Left.wav", None)
    ]
    # "go forward" spreads over two of the turtle's three parts: both are left out
    turtle = {s["said"] for s in skipped if s["source"].endswith("goforward.raw")}
    assert turtle == {"go", "forward"}
    assert [c.said for c in clips if c.recording.path.endswith("goforward.raw")] == ["ten meters"]


def test_labels_follow_the_keyword_list():
    clips, _ = rv.plan(["Left", "stop"])
    labels = {c.label for c in clips}
    assert labels == {"Left", UNKNOWN}  # the label is the keyword as written
    assert sum(c.label == "Left" for c in clips) == 3
    assert all(c.label == UNKNOWN for c in clips if c.said in ("right", "go"))


# --- the word cutter --------------------------------------------------------------------------


def _bursts(*layout: tuple[float, float]) -> np.ndarray:
    """Tone bursts at -6 dBFS: (seconds of silence before, seconds of tone), then 0.2 s silence."""
    rate, pieces = rv.SAMPLE_RATE, []
    for gap, tone in layout:
        pieces.append(np.zeros(round(gap * rate), np.float32))
        t = np.arange(round(tone * rate)) / rate
        pieces.append((0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32))
    pieces.append(np.zeros(round(0.2 * rate), np.float32))
    return np.concatenate(pieces)


def test_cut_parts_finds_the_words_between_the_longest_silences():
    x = _bursts((0.3, 0.3), (0.25, 0.4), (0.3, 0.2))
    spans = rv.cut_parts(x, 3, below_db=30)
    starts = [0.3, 0.85, 1.55]
    ends = [0.6, 1.25, 1.75]
    for (a, b), s, e in zip(spans, starts, ends, strict=True):
        # each part keeps up to PAD_S of silence on each side, at most half of a shared silence
        assert abs(a / rv.SAMPLE_RATE - (s - rv.PAD_S)) < 0.03
        assert abs(b / rv.SAMPLE_RATE - (e + rv.PAD_S)) < 0.03
    assert all(b1 <= a2 for (_, b1), (a2, _) in itertools.pairwise(spans))


def test_cut_parts_refuses_what_it_cannot_cut():
    with pytest.raises(ValueError, match="expected 3"):
        rv.cut_parts(_bursts((0.3, 0.3), (0.3, 0.3)), 3, below_db=30)
    with pytest.raises(ValueError, match="less than 50 ms"):
        rv.cut_parts(_bursts((0.3, 0.3), (0.045, 0.3)), 2, below_db=30)
    with pytest.raises(ValueError, match=r"less than 0\.1 s"):
        rv.cut_parts(_bursts((0.3, 0.3), (0.3, 0.05)), 2, below_db=30)
    with pytest.raises(ValueError, match="no sound"):
        rv.cut_parts(np.zeros(16000, np.float32), 2, below_db=30)


# --- the packages on this machine -------------------------------------------------------------


def test_every_package_is_installed_with_its_recordings():
    sources = rv.find_sources()
    assert [s.package for s in sources] == list(rv.PACKAGES)
    message = rv.missing_message(sources)
    if message:
        pytest.fail(message)
    assert all(s.found and s.version for s in sources)
    assert sum(s.files for s in sources) == len(rv.RECORDINGS)


def test_missing_packages_are_named_with_the_command_that_installs_them(tmp_path):
    alsa = tmp_path / "usr/share/sounds/alsa"
    alsa.mkdir(parents=True)
    for r in rv.RECORDINGS:
        if r.package == "alsa-utils":
            (alsa / Path(r.path).name).write_bytes(b"")
    with pytest.raises(rv.RealVoicesError) as err:
        rv.build(tmp_path / "out", root=tmp_path)
    text = str(err.value)
    assert "apt-get install neverball-common pocketsphinx-testdata" in text
    assert "scripts/install-real-voices.sh" in text
    assert "/usr/share/games/neverball/snd/go.ogg" in text
    assert "alsa-utils" not in text  # found: its files are there
    assert not (tmp_path / "out").exists()


def test_a_missing_decoder_names_its_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no oggdec
    sources = {s.package: s for s in rv.find_sources()}
    assert sources["neverball-common"].decoder == ("oggdec", "vorbis-tools")
    assert not sources["neverball-common"].found
    message = rv.missing_message(list(sources.values()))
    assert message is not None
    assert "apt-get install vorbis-tools" in message and "oggdec" in message


# --- the folder -------------------------------------------------------------------------------


def test_the_folder_has_the_documented_counts_and_speakers(built):
    _, manifest = built
    labels = [*KEYWORDS, UNKNOWN]
    assert manifest["counts"] == {label: rv.DEFAULT_COUNTS.get(label, 0) for label in labels}
    assert manifest["speakers"] == {
        label: sorted(rv.DEFAULT_SPEAKERS.get(label, ())) for label in labels
    }
    assert manifest["skipped"] == []
    assert set(manifest["packages"]) == set(rv.PACKAGES)


def test_the_docstring_states_the_counts():
    doc = rv.__doc__ or ""
    for label, n in rv.DEFAULT_COUNTS.items():
        speakers = len(rv.DEFAULT_SPEAKERS[label])
        line = rf"``{re.escape(label)}``: {n} clips, {speakers} speakers? \("
        assert re.search(line, doc), f"the module docstring does not say {label}: {n} clips"


def test_every_clip_is_16k_mono_pcm16_of_plausible_length(built):
    out, manifest = built
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav"))
    assert files == sorted(e["file"] for e in manifest["clips"])
    for entry in manifest["clips"]:
        path = out / entry["file"]
        with wave.open(str(path), "rb") as f:
            assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (1, 2, 16000)
            frames = f.getnframes()
        audio = read_wav(path)  # the project's strict reader accepts it
        seconds = frames / 16000
        assert abs(seconds - entry["duration_s"]) < 0.001
        if entry["label"] == UNKNOWN:
            assert 0.3 <= seconds <= 8.0, entry
        else:  # a keyword said once, cut to fit the model's 1 s clip
            assert 0.25 <= seconds <= rv.MAX_KEYWORD_S, entry
        assert np.abs(audio).max() > 0.05, f"{entry['file']} is nearly silent"


def test_the_manifest_matches_the_files(built):
    out, manifest = built
    assert manifest["format"] == rv.FORMAT and manifest["sample_rate"] == 16000
    assert rv.read_manifest(out) == manifest
    for entry in manifest["clips"]:
        folder, name = entry["file"].split("/")
        assert folder == (UNKNOWN if entry["label"] == UNKNOWN else entry["label"])
        assert name.startswith(f"{entry['speaker']}_nohash_")
        assert Path(entry["source"]).is_file()
        assert entry["package"] in rv.PACKAGES
        assert entry["said"] in entry["source_said"]
        assert abs(entry["end_s"] - entry["start_s"] - entry["duration_s"]) < 0.002
        assert entry["source_rate"] >= 16000
        assert entry["cut"] == (" " in entry["source_said"] and entry["said"] != entry[
            "source_said"])  # fmt: skip


def test_keyword_clips_say_only_their_keyword(built):
    _, manifest = built
    for entry in manifest["clips"]:
        if entry["label"] != UNKNOWN:
            assert entry["said"] == entry["label"]
        else:
            assert not set(entry["said"].split()) & set(KEYWORDS), entry


def test_edgelearn_evaluate_reads_the_folder_as_labelled_clips(built):
    out, manifest = built
    found = find_clips(out, classes_of(KEYWORDS))
    assert found.as_unknown == {} and found.skipped == []
    by_file = {p.relative_to(out).as_posix(): label for p, label in found.clips}
    assert by_file == {e["file"]: e["label"] for e in manifest["clips"]}


def test_a_rebuild_is_identical_and_a_failed_one_keeps_the_old_set(built, tmp_path, monkeypatch):
    out, manifest = built
    copy = tmp_path / "set"
    again = rv.build(copy)
    assert again == manifest
    for entry in manifest["clips"]:
        assert (copy / entry["file"]).read_bytes() == (out / entry["file"]).read_bytes()

    calls = {"n": 0}
    real = rv.load_recording

    def flaky(rec, root=Path("/")):
        calls["n"] += 1
        if calls["n"] == 5:
            raise rv.RealVoicesError(f"{rec.path}: broken on purpose")
        return real(rec, root)

    monkeypatch.setattr(rv, "load_recording", flaky)
    with pytest.raises(rv.RealVoicesError, match="broken on purpose"):
        rv.build(copy, keywords=["go"])
    assert json.loads((copy / rv.MANIFEST).read_text()) == manifest  # the old set, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # no temporary left


def test_the_command_lists_the_sources_and_builds(tmp_path, capsys):
    assert rv.main([str(tmp_path / "set"), "left", "right"]) == 0
    out = capsys.readouterr().out
    for package in rv.PACKAGES:
        assert f"found {package} " in out
    assert "left: 3 clips (alsa)" in out
    assert (tmp_path / "set" / "left").is_dir() and not (tmp_path / "set" / "go").exists()
    shutil.rmtree(tmp_path / "set")
