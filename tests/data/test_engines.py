"""Speech engines: every voice the corpus may use speaks, knobs work, failures say what failed."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from components.data import festival
from components.data.engines import (
    ENGINES,
    FestivalEngine,
    close_sessions,
    get_engine,
    missing_engines,
    missing_voices,
)
from components.data.speech import trim_silence
from components.errors import EdgelearnError

SR = 16000
# The voices `make install` provides (scripts/install-system-deps.sh): each must speak here.
VOICES = [
    *(("espeak-ng", v) for v in ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp",
                                 "en-gb-x-gbclan", "en-029", "en-us-nyc", "en-gb-x-gbcwmd")),
    *(("flite", v) for v in ("kal", "kal16", "awb", "rms", "slt")),
    *(("festival", v) for v in ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")),
]  # fmt: skip
# One voice per engine and pitch mechanism: native knobs and the resampling fallback.
PITCH_VOICES = [
    ("espeak-ng", "en-gb+f2"), ("flite", "awb"), ("flite", "rms"),
    ("festival", "ked_diphone"), ("festival", "cmu_us_slt_arctic_hts"),
]  # fmt: skip


def _f0(x: np.ndarray) -> float:
    """Median F0 of the voiced 40 ms frames (autocorrelation peak between 60 and 450 Hz)."""
    frame, found = 640, []
    for i in range(0, len(x) - frame, frame // 2):
        seg = x[i : i + frame] - x[i : i + frame].mean()
        if np.sqrt(np.mean(seg**2)) < 0.05 * np.abs(x).max():
            continue
        ac = np.correlate(seg, seg, "full")[frame - 1 :]
        lag = SR // 450 + int(np.argmax(ac[SR // 450 : SR // 60]))
        if ac[lag] > 0.4 * ac[0]:
            found.append(SR / lag)
    return float(np.median(found))


@pytest.mark.parametrize(("engine", "voice"), VOICES)
def test_every_voice_speaks_a_word_deterministically(speech_engines, engine, voice):
    audio = speech_engines[engine].speak("yes", voice)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 0.2 <= len(trim_silence(audio)) / SR <= 1.2
    assert 0.05 < float(np.abs(audio).max()) <= 1.0
    np.testing.assert_array_equal(audio, speech_engines[engine].speak("yes", voice))


def test_voice_lists_hold_the_corpus_voices(speech_engines):
    for engine, voice in VOICES:
        assert voice in speech_engines[engine].voices(), (engine, voice)
    assert "awb_time" not in speech_engines["flite"].voices()  # says only times of day


@pytest.mark.parametrize(("engine", "voice"), PITCH_VOICES)
def test_pitch_moves_f0_by_semitones(speech_engines, engine, voice):
    e = speech_engines[engine]
    base = _f0(e.speak("nine", voice))
    assert _f0(e.speak("nine", voice, pitch=5.0)) / base == pytest.approx(2 ** (5 / 12), rel=0.08)
    assert _f0(e.speak("nine", voice, pitch=-5.0)) / base == pytest.approx(2 ** (-5 / 12), rel=0.08)


@pytest.mark.parametrize(("engine", "voice"), [*PITCH_VOICES[:1], *PITCH_VOICES[2:]])
def test_rate_shortens_the_word(speech_engines, engine, voice):
    e = speech_engines[engine]
    slow = len(trim_silence(e.speak("seven", voice, rate=0.75)))
    fast = len(trim_silence(e.speak("seven", voice, rate=1.5)))
    assert 1.4 <= slow / fast <= 2.4  # 2.0 asked; pauses and edges do not all stretch


def test_pitch_fallback_keeps_the_duration(speech_engines):
    flite = speech_engines["flite"]
    assert not flite.native_pitch("rms")
    plain = len(trim_silence(flite.speak("seven", "rms")))
    high = len(trim_silence(flite.speak("seven", "rms", pitch=6.0)))
    assert high / plain == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("engine", ["espeak-ng", "flite", "festival"])
def test_unknown_voice_lists_the_voices(speech_engines, engine):
    e = speech_engines[engine]
    with pytest.raises(EdgelearnError, match=rf"{engine} has no voice 'nobody' here; available: "):
        e.speak("yes", "nobody")
    with pytest.raises(EdgelearnError) as err:
        e.speak("yes", "nobody")
    assert all(v in str(err.value) for v in e.voices())


def test_unknown_espeak_variant_is_refused(speech_engines):
    with pytest.raises(EdgelearnError, match=r"espeak-ng has no variant 'zzz'; available: .*m3"):
        speech_engines["espeak-ng"].speak("yes", "en-us+zzz")


@pytest.mark.parametrize(
    ("engine", "voice", "text"),
    [("espeak-ng", "en-us", ""), ("flite", "slt", "..."), ("festival", "kal_diphone", "..."),
     ("festival", "ked_diphone", "ö"), ("flite", "kal16", "  ")],
)  # fmt: skip
def test_unspeakable_text_names_engine_voice_and_text(speech_engines, engine, voice, text):
    with pytest.raises(
        EdgelearnError, match=rf"^{engine} cannot speak {text!r} with voice {voice}"
    ):
        speech_engines[engine].speak(text, voice)


def test_festival_survives_a_dead_process(speech_engines):
    engine = speech_engines["festival"]
    first = engine.speak("go", "kal_diphone")
    festival._SESSIONS[os.getpid()].proc.kill()
    np.testing.assert_array_equal(engine.speak("go", "kal_diphone"), first)


def test_festival_is_one_process_closed_on_demand(speech_engines):
    engine = speech_engines["festival"]
    first = engine.speak("go", "ked_diphone")
    pid = festival.session_pid()
    assert pid is not None
    engine.speak("up", "cmu_us_slt_arctic_hts")
    assert festival.session_pid() == pid  # one process speaks every voice
    close_sessions()
    assert festival.session_pid() is None
    assert not os.path.exists(f"/proc/{pid}")  # ended and reaped, not left behind
    np.testing.assert_array_equal(engine.speak("go", "ked_diphone"), first)  # a fresh one
    assert festival.session_pid() not in (None, pid)


@pytest.mark.parametrize("voice", ["kal_diphone", "ked_diphone"])
def test_festival_diphone_voices_end_where_their_last_phone_ends(speech_engines, voice,
                                                                 monkeypatch):  # fmt: skip
    """The final pause is cut off (Festival fills its second half from memory past the last
    diphone, so that the same word differed from one process history to another); it is
    near-silence, and nothing before it changes."""
    audio = speech_engines["festival"].speak("yes", voice, 1.1, -1.0)
    monkeypatch.setattr(festival, "_without_final_pause", lambda x, sr, _: (x, sr))
    whole = speech_engines["festival"].speak("yes", voice, 1.1, -1.0)
    assert 0.1 * len(whole) < len(whole) - len(audio) < 0.5 * len(whole)
    np.testing.assert_array_equal(whole[: len(audio)], audio)
    assert np.abs(whole[len(audio) :]).max() < 10 ** (-30 / 20) * np.abs(whole).max()  # -30 dB


@pytest.mark.parametrize("voice", ["kal_diphone", "ked_diphone"])
def test_festival_diphone_audio_ignores_what_follows_the_last_phone(
    speech_engines, voice, garble_festival
):
    clean = speech_engines["festival"].speak("go", voice)
    garble_festival()
    np.testing.assert_array_equal(speech_engines["festival"].speak("go", voice), clean)


def test_festival_text_is_quoted_for_scheme(speech_engines):
    audio = speech_engines["festival"].speak('say "left" \\ now', "kal_diphone")
    assert len(trim_silence(audio)) / SR > 0.5


def test_check_phrase_refuses_what_is_spelled_out(speech_engines):
    flite = speech_engines["flite"]
    flite.check_phrase("hey edge", "slt")
    assert flite.can_say("marvin", "awb")
    assert not flite.can_say("xqzzkt", "slt")
    with pytest.raises(EdgelearnError, match=r"flite voice slt says 'xqzzkt' in .* plausible"):
        flite.check_phrase("xqzzkt", "slt")


def test_unknown_engine_lists_the_known_ones():
    with pytest.raises(EdgelearnError, match=r"unknown speech engine 'sam'; known: espeak-ng, "):
        get_engine("sam")


@pytest.mark.parametrize(
    ("engine", "exe", "package"),
    [("espeak-ng", "espeak-ng", "espeak-ng"), ("flite", "flite", "flite"),
     ("festival", "festival", "festival"), ("mbrola", "mbrola", "mbrola-us1")],
)  # fmt: skip
def test_missing_engine_names_its_debian_package(monkeypatch, engine, exe, package):
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == exe else real(name))
    e = get_engine(engine)
    assert package in (e.missing() or "")
    with pytest.raises(EdgelearnError, match=rf"^{engine} is not installed.*{package}"):
        e.speak("yes", "any")
    assert any(package in msg for msg in missing_engines((engine,)))


def test_missing_festival_voice_names_its_package(monkeypatch):
    monkeypatch.setattr(FestivalEngine, "voices", lambda self: ("ked_diphone",))
    with pytest.raises(
        EdgelearnError, match=r"voice kal_diphone is not installed.*festvox-kallpc16k"
    ):
        ENGINES["festival"].speak("yes", "kal_diphone")
    wanted = [("festival", "kal_diphone"), ("festival", "ked_diphone"), ("flite", "slt")]
    assert missing_voices(wanted) == [
        "festival voice kal_diphone is not installed: install the Debian package festvox-kallpc16k"
    ]
