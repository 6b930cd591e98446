"""The espeak-ng corpus: layout, speaker pools, determinism and atomic replacement."""

from __future__ import annotations

import json
import re
import wave
from pathlib import Path

import numpy as np
import pytest

from components.config import CorpusParams
from components.data import synthesize
from components.data.labels import BACKGROUND_NOISE_DIR, KEYWORDS, UNKNOWN_WORDS
from components.data.synthesize import CLIENT_VOICES, SERVER_VOICES, synthesize_corpus
from components.errors import EdgelearnError

TINY = CorpusParams(
    num_server_speakers=4,
    num_client_speakers=2,
    keyword_repeats=1,
    unknown_words_per_speaker=2,
    noise_seconds=3.0,
    workers=1,
)
NAME = re.compile(r"^[0-9a-f]{8}_nohash_\d+\.wav$")


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, espeak) -> tuple[Path, synthesize.CorpusSummary]:
    """The tiny corpus, synthesized once for the module (several seconds: slow tests only)."""
    out = tmp_path_factory.mktemp("synth") / "corpus"
    calls: list[tuple[int, int]] = []
    summary = synthesize_corpus(TINY, out, seed=7, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (6, 6)
    return out, summary


@pytest.mark.slow
def test_layout_and_wav_format(corpus):
    out, summary = corpus
    clips = [p for p in out.glob("*/*.wav") if p.parent.name != BACKGROUND_NOISE_DIR]
    assert summary.num_clips == len(clips) == 6 * (len(KEYWORDS) + 2)
    for word in KEYWORDS:
        assert len(list((out / word).glob("*.wav"))) == 6
    for path in clips:
        assert path.parent.name in KEYWORDS or path.parent.name in UNKNOWN_WORDS
        assert NAME.match(path.name), path.name
        with wave.open(str(path)) as f:
            assert (f.getframerate(), f.getnchannels(), f.getsampwidth()) == (16000, 1, 2)
            assert f.getnframes() == 16000
            pcm = np.frombuffer(f.readframes(16000), dtype="<i2").astype(np.float64)
        assert np.sqrt(np.mean(pcm**2)) > 100, f"{path} is (nearly) silent"
    assert not (out / "validation_list.txt").exists()
    assert (out / "README.md").read_text().count("espeak-ng") >= 1


@pytest.mark.slow
def test_background_noise(corpus):
    out, summary = corpus
    noises = sorted((out / BACKGROUND_NOISE_DIR).glob("*.wav"))
    assert summary.num_noise_files == len(noises) >= 5
    assert "babble.wav" in {p.name for p in noises}
    for path in noises:
        with wave.open(str(path)) as f:
            assert (f.getframerate(), f.getnchannels(), f.getnframes()) == (16000, 1, 48000)


@pytest.mark.slow
def test_speakers_json_pools(corpus):
    out, summary = corpus
    speakers = json.loads((out / "speakers.json").read_text())
    assert list(speakers) == sorted(speakers)
    assert all(re.fullmatch(r"[0-9a-f]{8}", s) for s in speakers)
    pools = [m["pool"] for m in speakers.values()]
    assert (pools.count("server"), pools.count("client")) == (4, 2)
    assert (summary.num_server_speakers, summary.num_client_speakers) == (4, 2)
    server = {m["voice"] for m in speakers.values() if m["pool"] == "server"}
    client = {m["voice"] for m in speakers.values() if m["pool"] == "client"}
    assert server <= set(SERVER_VOICES) and client <= set(CLIENT_VOICES)
    assert not server & client
    keys = {(m["voice"], m["variant"], m["rate"], m["pitch"]) for m in speakers.values()}
    assert len(keys) == len(speakers)
    for m in speakers.values():
        snr = TINY.server_snr_db if m["pool"] == "server" else TINY.client_snr_db
        assert m["snr_db"] == list(snr)
    on_disk = {p.name.split("_")[0] for p in (out / "yes").glob("*.wav")}
    assert on_disk == set(speakers)


@pytest.mark.slow
def test_same_seed_is_byte_identical_and_other_seed_differs(corpus, tmp_path):
    out, _ = corpus
    again = synthesize_corpus(TINY.model_copy(update={"workers": 2}), tmp_path / "a", seed=7)
    assert _snapshot(again.out_dir) == _snapshot(out)
    other = synthesize_corpus(TINY, tmp_path / "b", seed=8)
    assert _snapshot(other.out_dir) != _snapshot(out)


def test_missing_espeak_keeps_old_corpus(tmp_path, monkeypatch):
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "old.txt").write_text("previous corpus")
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(EdgelearnError, match="espeak-ng") as err:
        synthesize_corpus(TINY, out, seed=7)
    assert "apt-get install espeak-ng" in str(err.value)
    assert _snapshot(out) == {"old.txt": b"previous corpus"}


def test_failure_half_way_keeps_old_corpus_and_cleans_up(tmp_path, monkeypatch, espeak):
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "old.txt").write_text("previous corpus")
    real, calls = synthesize.espeak, []

    def flaky(exe, text, voice, variant, rate, pitch):
        calls.extend([text] if text in KEYWORDS else [])
        if len(calls) > 10:  # the babble never says a keyword: this fails inside the clips
            raise EdgelearnError(f"espeak-ng failed for voice {voice}+{variant}, word {text!r}")
        return real(exe, text, voice, variant, rate, pitch)

    monkeypatch.setattr(synthesize, "espeak", flaky)
    with pytest.raises(EdgelearnError, match="espeak-ng failed"):
        synthesize_corpus(TINY, out, seed=7)
    assert _snapshot(out) == {"old.txt": b"previous corpus"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


def test_espeak_error_names_voice_word_and_stderr(tmp_path):
    fake = tmp_path / "espeak-ng"
    fake.write_text("#!/bin/sh\necho 'voice data is broken' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(EdgelearnError, match=r"en-029\+m1.*'yes'.*stderr: voice data is broken"):
        synthesize.espeak(str(fake), "yes", "en-029", "m1", 150, 50)
