"""The synthesized corpus: layout, pools of disjoint voices, every engine, determinism across
worker counts, atomic replacement, and the word pipeline (warp, channel, clip)."""

from __future__ import annotations

import json
import os
import re
import shutil
import wave
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from components.config import CorpusParams
from components.data import acoustics, festival, speakers, synthesize
from components.data.acoustics import Channel
from components.data.engines import FliteEngine
from components.data.espeak import espeak
from components.data.labels import BACKGROUND_NOISE_DIR, PHRASE_FOLDER, UNKNOWN_WORDS
from components.data.speakers import CLIENT, SERVER, clip_counts
from components.data.synthesize import CLIP_SAMPLES, render_clip, synthesize_corpus
from components.errors import EdgelearnError

# 7 server speakers: 3 espeak-ng, one of each of the 4 recorded server voices; 5 client
# speakers: 2 espeak-ng, one of each of the 3 recorded client voices. Every engine speaks.
TINY = CorpusParams(
    num_server_speakers=7,
    num_client_speakers=5,
    keyword_repeats=1,
    unknown_words_per_speaker=1,
    unknown_phrases_per_speaker=1,
    noise_seconds=3.0,
    workers=1,
)
WORDS = ("yes", "left", "go")  # keywords of the tiny corpus
PHRASE_WORDS = ("table", "window", "morning", "water")  # running speech is made of these
NAME = re.compile(r"^[0-9a-f]{8}_nohash_\d+\.wav$")
# The recorded person behind each voice: no person may speak in both pools.
PERSON = {"kal16": "kal", "kal_diphone": "kal", "awb": "awb", "rms": "rms", "slt": "slt",
          "cmu_us_slt_arctic_hts": "slt", "ked_diphone": "ked"}  # fmt: skip


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _stray_festivals() -> list[int]:
    """festival processes of this test session that no live process of ours owns (a worker's
    that outlived it): same session id, parent not this process."""
    stray = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
            comm, rest = fields[0].split("(", 1)[1], fields[1].split()
        except (OSError, IndexError):
            continue
        ppid, sid = int(rest[1]), int(rest[3])
        if comm == "festival" and sid == os.getsid(0) and ppid != os.getpid():
            stray.append(int(stat.parent.name))
    return stray


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, speech_engines) -> tuple[Path, synthesize.CorpusSummary]:
    """The tiny corpus, synthesized once for the module in this process (a few seconds)."""
    out = tmp_path_factory.mktemp("synth") / "corpus"
    calls: list[tuple[int, int]] = []
    summary = synthesize_corpus(
        TINY, out, seed=7, progress=lambda d, t: calls.append((d, t)), keywords=WORDS,
        phrase_words=PHRASE_WORDS,
    )  # fmt: skip
    assert calls[-1] == (12, 12)
    assert festival.session_pid() is None  # the in-process Festival was closed
    return out, summary


@pytest.mark.slow
def test_layout_and_wav_format(corpus):
    out, summary = corpus
    clips = [p for p in out.glob("*/*.wav") if p.parent.name != BACKGROUND_NOISE_DIR]
    assert summary.num_clips == len(clips) == 12 * (len(WORDS) + 2)
    for word in (*WORDS, PHRASE_FOLDER):
        assert len(list((out / word).glob("*.wav"))) == 12
    for path in clips:
        assert path.parent.name in (*WORDS, *UNKNOWN_WORDS, PHRASE_FOLDER)
        assert NAME.match(path.name), path.name
        with wave.open(str(path)) as f:
            assert (f.getframerate(), f.getnchannels(), f.getsampwidth()) == (16000, 1, 2)
            assert f.getnframes() == 16000
            pcm = np.frombuffer(f.readframes(16000), dtype="<i2").astype(np.float64)
        assert np.sqrt(np.mean(pcm**2)) > 100, f"{path} is (nearly) silent"
    assert not (out / "validation_list.txt").exists()
    readme = (out / "README.md").read_text()
    for pool in (SERVER, CLIENT):
        for engine, voice in pool.recorded:
            assert f"{engine} {voice} (1)" in readme, (engine, voice)


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
def test_pools_hear_disjoint_voices_of_every_engine(corpus):
    out, summary = corpus
    table = json.loads((out / "speakers.json").read_text())
    assert list(table) == sorted(table)
    assert all(re.fullmatch(r"[0-9a-f]{8}", s) for s in table)
    by_pool = {p: [m for m in table.values() if m["pool"] == p] for p in ("server", "client")}
    assert (len(by_pool["server"]), len(by_pool["client"])) == (7, 5)
    assert (summary.num_server_speakers, summary.num_client_speakers) == (7, 5)
    for pool in (SERVER, CLIENT):
        rows = by_pool[pool.name]
        used = {(m["engine"], m["voice"].partition("+")[0]) for m in rows}
        assert set(pool.recorded) < used <= set(pool.voices())  # every recorded voice
        assert Counter(m["engine"] == "espeak-ng" for m in rows)[True] == round(0.4 * len(rows))
        snr = TINY.server_snr_db if pool.name == "server" else TINY.client_snr_db
        assert all(m["snr_db"] == list(snr) for m in rows)
    server = {PERSON[m["voice"]] for m in by_pool["server"] if m["engine"] != "espeak-ng"}
    client = {PERSON[m["voice"]] for m in by_pool["client"] if m["engine"] != "espeak-ng"}
    assert server == {"kal", "awb", "rms"} and client == {"slt", "ked"}
    accents = {p: {m["voice"].split("+")[0] for m in by_pool[p] if m["engine"] == "espeak-ng"}
               for p in by_pool}  # fmt: skip
    assert not accents["server"] & accents["client"]
    for m in table.values():
        assert speakers.RATE_RANGE[0] <= m["rate"] <= speakers.RATE_RANGE[1]
        assert speakers.PITCH_RANGE[0] <= m["pitch"] <= speakers.PITCH_RANGE[1]
        assert speakers.WARP_RANGE[0] <= m["warp"] <= speakers.WARP_RANGE[1]
        assert m["channel"]["codec"] in acoustics.CODECS
    on_disk = {p.name.split("_")[0] for p in (out / "yes").glob("*.wav")}
    assert on_disk == set(table)


@pytest.mark.slow
def test_clip_counts_per_engine_and_pool_match_the_files(corpus):
    out, _ = corpus
    table = json.loads((out / "speakers.json").read_text())
    files: Counter[str] = Counter()
    for path in out.glob("*/*_nohash_*.wav"):
        m = table[path.name.split("_")[0]]
        files.update([m["pool"], m["engine"], f"{m['pool']}/{m['engine']}"])
    made = speakers.make_speakers(TINY, seed=7, phrase_words=PHRASE_WORDS)
    assert clip_counts(made, len(WORDS)) == dict(files)
    assert files["festival"] > 0 and files["flite"] > 0 and files["espeak-ng"] > 0


@pytest.mark.slow
def test_byte_identical_whatever_the_workers_and_no_festival_left(corpus, tmp_path):
    out, _ = corpus
    again = synthesize_corpus(TINY.model_copy(update={"workers": 2}), tmp_path / "a", seed=7,
                              keywords=WORDS, phrase_words=PHRASE_WORDS)  # fmt: skip
    assert _snapshot(again.out_dir) == _snapshot(out)
    assert _stray_festivals() == []  # each worker ended its Festival before it exited
    other = synthesize_corpus(TINY, tmp_path / "b", seed=8, keywords=WORDS,
                              phrase_words=PHRASE_WORDS)  # fmt: skip
    assert _snapshot(other.out_dir) != _snapshot(out)


@pytest.mark.slow
def test_byte_identical_whatever_festival_leaves_after_the_last_phone(
    corpus, tmp_path, garble_festival
):
    """Two runs of the default corpus once differed in two clips of a Festival ked_diphone
    speaker: the end of Festival's final pause depends on what its process said before (which
    speakers a worker had spoken). The corpus must not depend on it."""
    out, _ = corpus
    garble_festival()
    again = synthesize_corpus(TINY, tmp_path / "g", seed=7, keywords=WORDS,
                              phrase_words=PHRASE_WORDS)  # fmt: skip
    assert _snapshot(again.out_dir) == _snapshot(out)


def test_missing_espeak_keeps_old_corpus(tmp_path, monkeypatch):
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "old.txt").write_text("previous corpus")
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(EdgelearnError, match="espeak-ng") as err:
        synthesize_corpus(TINY, out, seed=7)
    assert "apt-get install espeak-ng" in str(err.value)
    assert _snapshot(out) == {"old.txt": b"previous corpus"}


def test_missing_engines_are_named_once_before_anything_starts(tmp_path, monkeypatch):
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "old.txt").write_text("previous corpus")
    real = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name: None if name in ("flite", "festival") else real(name)
    )
    with pytest.raises(EdgelearnError) as err:
        synthesize_corpus(TINY, out, seed=7)
    message = str(err.value)
    assert message.startswith("the corpus cannot be spoken here: flite is not installed")
    assert "apt-get install flite" in message and "apt-get install festival" in message
    assert message.count("flite is not installed") == 1  # one sentence per engine
    assert _snapshot(out) == {"old.txt": b"previous corpus"}


def test_failure_half_way_keeps_old_corpus_and_cleans_up(tmp_path, monkeypatch, speech_engines):
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "old.txt").write_text("previous corpus")
    real, calls = FliteEngine._synthesize, []

    def flaky(self, text, voice, rate, pitch):
        calls.append(text)
        if len(calls) > 5:
            raise ValueError("the voice broke")
        return real(self, text, voice, rate, pitch)

    monkeypatch.setattr(FliteEngine, "_synthesize", flaky)
    with pytest.raises(
        EdgelearnError, match=r"^flite cannot speak '\w+' with voice \w+: the voice"
    ):
        synthesize_corpus(TINY, out, seed=7, keywords=WORDS)
    assert _snapshot(out) == {"old.txt": b"previous corpus"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]
    assert festival.session_pid() is None


def test_espeak_error_names_voice_word_and_stderr(tmp_path):
    fake = tmp_path / "espeak-ng"
    fake.write_text("#!/bin/sh\necho 'voice data is broken' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(EdgelearnError, match=r"en-029\+m1.*'yes'.*stderr: voice data is broken"):
        espeak(str(fake), "yes", "en-029", "m1", 150, 50)


def test_render_places_the_word_and_its_tail_and_levels_the_word():
    rng = np.random.default_rng(0)
    word = np.sin(np.arange(4000) * 0.3).astype(np.float32)
    x = np.concatenate([word, 0.1 * word[:2000]])  # the word, then a quieter "tail"
    silent = [np.zeros(32000, np.float32)]
    clip = render_clip(x, 4000, silent, (10.0, 10.0), max_shift_s=0.0, rng=rng)
    assert clip.shape == (CLIP_SAMPLES,)
    start = (CLIP_SAMPLES - 4000) // 2
    assert not clip[:start].any() and not clip[start + 6000 :].any()
    level = 20 * np.log10(np.sqrt(np.mean(clip[start : start + 4000].astype(np.float64) ** 2)))
    assert synthesize.SPEECH_RMS_DB[0] - 0.01 <= level <= synthesize.SPEECH_RMS_DB[1] + 0.01
    np.testing.assert_allclose(
        clip[start + 4000 : start + 6000], 0.1 * clip[start : start + 2000], atol=1e-6
    )
    long = np.ones(20000, np.float32)
    long[:2000] = long[-2000:] = 0.5
    clip = render_clip(long, 20000, silent, (10.0, 10.0), 0.0, rng)
    assert len(np.unique(np.round(clip, 6))) == 1  # the middle second, no edges


def test_running_speech_is_a_random_second_of_the_phrase():
    """A phrase longer than a clip keeps a random second (each one somewhere else), never a
    window past its ends; words keep their middle second."""
    n, a = 48000, 0.1
    b = (1.0 - a) / (n - 1)  # the ramp: a + b·i at sample i, so a cut's start shows in its ends
    ramp = (a + b * np.arange(n)).astype(np.float32)
    silent = [np.zeros(32000, np.float32)]
    starts = set()
    for seed in range(12):
        clip = render_clip(ramp, n, silent, (10.0, 10.0), 0.0, np.random.default_rng(seed),
                           random_crop=True).astype(np.float64)  # fmt: skip
        assert clip.shape == (CLIP_SAMPLES,) and clip.all()
        r = clip[0] / clip[-1]  # the level is random, the ratio of the ends is not
        start = (a * (1 - r) - r * b * (CLIP_SAMPLES - 1)) / (b * (r - 1))
        assert -50 <= start <= n - CLIP_SAMPLES + 50  # int16 rounding: within a few samples
        starts.add(round(start / 1000))
    assert len(starts) >= 6  # spread over the phrase, not one place


def test_speak_word_warps_then_adds_the_room_tail(speech_engines):
    room = Channel(rt60_s=0.5, drr_db=3.0, low_hz=None, high_hz=None, gain_db=0.0, codec="none")
    spk = replace(speakers.make_speakers(TINY, seed=7)[0], channel=room, warp=1.0)
    x, n = synthesize.speak_word(spk, "yes", np.random.default_rng(1))
    assert len(x) == n + 8000  # the word, then half a second of reverberation
    assert float(np.sqrt(np.mean(x[n:] ** 2))) > 1e-4  # the tail rings on after the word
    y, _ = synthesize.speak_word(spk, "yes", np.random.default_rng(1))
    np.testing.assert_array_equal(x, y)
    _, k = synthesize.speak_word(replace(spk, warp=1.1), "yes", np.random.default_rng(1))
    assert k == pytest.approx(n / 1.1, abs=2)  # a shorter vocal tract: every frequency × 1.1
