"""The corpus stage: a note in place of the audio for the user's own corpus; the keyword list
checked against every voice; a list of phrases synthesized into their folders and prepared."""

import json

import pytest

from components import corpus, prepare
from components.config import Params, params_from_dict
from components.data import festival
from components.data.labels import (
    BACKGROUND_NOISE_DIR,
    PHRASE_FOLDER,
    SILENCE,
    UNKNOWN,
    UNKNOWN_WORDS,
)
from components.data.near_misses import (
    NearMisses,
    espeak_phonemes,
    find_near_misses,
    load_vocabulary,
    near_miss_words,
    vocabulary_phonemes,
)
from components.data.prepared import load_prepared
from components.errors import ConfigError


def test_real_data_leaves_only_a_note_and_replaces_the_old_corpus(tmp_path):
    old = tmp_path / "data/corpus"
    (old / "yes").mkdir(parents=True)
    (old / "yes/a0000000_nohash_0.wav").write_bytes(b"RIFF")  # a previous synthesized corpus
    params = params_from_dict(
        {"prepare": {"source": "speech_commands", "speech_commands_dir": "/data/sc"}}
    )
    result = corpus.run(params, tmp_path)
    assert result.out_dir == old
    assert result.metrics == {"num_clips": 0, "num_speakers": 0, "seconds": 0.0}
    assert [p.name for p in old.iterdir()] == ["README.md"]
    assert (old / "README.md").read_text() == (
        "No audio here on purpose: prepare.source is 'speech_commands', so the\n"
        "prepare stage reads /data/sc instead of a synthesized corpus.\n"
    )
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["corpus"]  # no temporaries


PHRASES = ["hey edge", "lights on"]
TINY = {
    "num_server_speakers": 6, "num_client_speakers": 2, "keyword_repeats": 2,
    "unknown_words_per_speaker": 2, "near_misses_per_speaker": 2, "noise_seconds": 3.0,
    "workers": 1, "unknown_phrases_per_speaker": 1,
}  # fmt: skip


def phrase_params(**corpus_overrides: object) -> Params:
    return params_from_dict({
        "base": {"seed": 7},
        "corpus": {**TINY, **corpus_overrides},
        "prepare": {"keywords": PHRASES, "val_fraction": 0.2, "test_fraction": 0.2},
    })  # fmt: skip


def test_a_keyword_a_voice_cannot_say_stops_the_stage_naming_word_engine_and_voice(tmp_path):
    old = tmp_path / "data/corpus"
    old.mkdir(parents=True)
    (old / "README.md").write_text("previous corpus")
    asked: list[tuple[str, str, str]] = []

    def can_speak(engine: str, voice: str, text: str) -> bool:
        asked.append((engine, voice, text))
        return (voice, text) != ("ked_diphone", "lights on")

    with pytest.raises(ConfigError) as err:
        corpus.run(phrase_params(num_client_speakers=3), tmp_path, can_speak=can_speak)
    assert str(err.value) == (
        "prepare.keywords: festival voice ked_diphone cannot say 'lights on' (no audio, or not as "
        "a word: spelled out or garbled); choose another word or spelling"
    )
    # every keyword in every voice the speakers use, espeak-ng's accents without their variants
    voices = {(e, v) for e, v, _ in asked}
    assert {t for _, _, t in asked} == set(PHRASES) and len(asked) == 2 * len(voices)
    assert voices == {
        ("flite", "kal16"),
        ("espeak-ng", "en-us"),
        ("flite", "awb"),
        ("espeak-ng", "en-gb"),
        ("flite", "rms"),
        ("festival", "kal_diphone"),
        ("flite", "slt"),
        ("espeak-ng", "en-029"),
        ("festival", "ked_diphone"),
    }
    assert [p.name for p in old.iterdir()] == ["README.md"]  # nothing synthesized, nothing replaced


def test_the_real_engines_refuse_a_keyword_festival_cannot_say(tmp_path, espeak):
    params = params_from_dict({
        "base": {"seed": 7}, "corpus": {**TINY, "num_client_speakers": 3},
        "prepare": {"keywords": ["hey edge", "über"]},
    })  # fmt: skip
    with pytest.raises(ConfigError) as err:
        corpus.run(params, tmp_path)
    assert str(err.value).startswith(
        "prepare.keywords: festival voice kal_diphone cannot say 'über' (no audio, or not as a "
        "word: spelled out or garbled); nor can 1 other voice(s): festival ked_diphone; choose"
    )
    assert not (tmp_path / "data/corpus").exists()
    assert festival.session_pid() is None  # the check's Festival was closed


@pytest.mark.slow
def test_a_keyword_list_of_phrases_goes_from_the_corpus_to_the_prepared_classes(tmp_path, espeak):
    params = phrase_params()
    result = corpus.run(params, tmp_path)
    root = result.out_dir
    folders = {p.name for p in root.iterdir() if p.is_dir()}
    generic = folders & set(UNKNOWN_WORDS)
    near = folders - generic - {"hey_edge", "lights_on", BACKGROUND_NOISE_DIR, PHRASE_FOLDER}
    assert {"hey_edge", "lights_on"} <= folders and generic and near
    for folder in ("hey_edge", "lights_on"):  # 8 speakers, twice each
        assert len(list((root / folder).glob("*_nohash_*.wav"))) == 16
    # the near-misses of these phrases (rhymes such as "edge", onsets such as "lightly")
    assert len(near) == result.metrics["num_near_miss_words"] > 0
    assert near <= set(near_miss_words(near_miss_table(espeak)))
    assert all(p.name.endswith("_nohash_0.wav") for w in near for p in (root / w).iterdir())
    assert "Near-misses of the keywords" in (root / "README.md").read_text()
    # running speech: one phrase per speaker, of common words that never hold a keyword
    assert len(list((root / PHRASE_FOLDER).glob("*_nohash_0.wav"))) == 8
    assert result.metrics["num_phrases"] == 8 and result.metrics["num_phrase_words"] > 1000
    said = [p for s in json.loads((root / "speakers.json").read_text()).values()
            for p in s["phrases"]]  # fmt: skip
    assert len(said) == 8 and all(3 <= len(p.split()) <= 5 for p in said)
    assert not any(f" {k} " in f" {p} " for p in said for k in PHRASES)
    assert "running speech" in (root / "README.md").read_text()
    assert result.metrics["num_clips"] == 8 * (2 * 2 + 2 + 2 + 1)
    per_speaker = 2 * 2 + 2 + 2 + 1  # keywords twice, two words, two near-misses, a phrase
    assert {k: v for k, v in result.metrics.items() if k.startswith("num_clips_")} == {
        "num_clips_server": 6 * per_speaker, "num_clips_client": 2 * per_speaker,
        "num_clips_espeak_ng": 3 * per_speaker, "num_clips_flite": 4 * per_speaker,
        "num_clips_festival": per_speaker, "num_clips_server_espeak_ng": 2 * per_speaker,
        "num_clips_server_flite": 3 * per_speaker, "num_clips_server_festival": per_speaker,
        "num_clips_client_espeak_ng": per_speaker, "num_clips_client_flite": per_speaker,
    }  # fmt: skip
    assert festival.session_pid() is None

    prepared = prepare.run(params, tmp_path)
    data = load_prepared(prepared.out_dir)
    assert data.classes == ["hey edge", "lights on", UNKNOWN, SILENCE]
    assert prepared.metrics["num_classes"] == 4
    man = data.manifest
    assert set(man["label"]) == set(data.classes)
    assert (man["label_index"] == [data.classes.index(x) for x in man["label"]]).all()
    folder = man["path"].str.split("/").str[0]
    assert set(man.loc[folder == "hey_edge", "label"]) == {"hey edge"}
    assert set(man.loc[folder.isin(near | generic | {PHRASE_FOLDER}), "label"]) == {UNKNOWN}


def near_miss_table(espeak: str) -> dict[str, NearMisses]:
    phonemes = {**vocabulary_phonemes(espeak), **espeak_phonemes(espeak, PHRASES)}
    return find_near_misses(PHRASES, load_vocabulary(), phonemes, per_kind=3, seed=7)
