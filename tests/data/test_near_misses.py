"""Near-misses of the keywords: exact lists over a hand-made phoneme table, then real espeak-ng."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.data.labels import KEYWORDS
from components.data.near_misses import (
    NearMisses,
    espeak_phonemes,
    find_near_misses,
    load_vocabulary,
    near_miss_words,
    onset_part,
    parse_phonemes,
    rhyme_part,
    syllables,
    vocabulary_phonemes,
    without_keywords,
)
from components.errors import EdgelearnError


def ph(text: str) -> tuple[str, ...]:
    return tuple(text.split())


PHONEMES = {
    "yes": ph("j ɛ s"), "no": ph("n oʊ"), "hey edge": ph("h eɪ ɛ dʒ"),
    "yesterday": ph("j ɛ s t ɚ d eɪ"), "less": ph("l ɛ s"), "guess": ph("ɡ ɛ s"),
    "nevertheless": ph("n ɛ v ɚ ð ə l ɛ s"), "yet": ph("j ɛ t"), "yellow": ph("j ɛ l oʊ"),
    "know": ph("n oʊ"), "nose": ph("n oʊ z"), "snow": ph("s n oʊ"), "so": ph("s oʊ"),
    "piano": ph("p i æ n oʊ"), "noble": ph("n oʊ b əl"), "hedge": ph("h ɛ dʒ"),
    "ledge": ph("l ɛ dʒ"), "hay": ph("h eɪ"), "yes-man": ph("j ɛ s m æ n"), "Yes": ph("j ɛ s"),
    "cat": ph("k æ t"), "bed": ph("b ɛ d"),
}  # fmt: skip
# word -> commonness tier (0 the most common); "missing" has no phonemes and is skipped
VOCABULARY = {w: 0 for w in PHONEMES if w not in ("yes", "no", "hey edge")} | {
    "guess": 1, "hedge": 1, "missing": 0,
}  # fmt: skip
KWS = ["yes", "no", "hey edge"]


def test_phoneme_parts():
    assert parse_phonemes("h ˈeɪ  ˈɛ d\u200dʒ") == ("h", "eɪ", "ɛ", "dʒ")
    assert rhyme_part(ph("s t ɑː p")) == ph("ɑː p") and onset_part(ph("s t ɑː p")) == ph("s t ɑː")
    assert rhyme_part(ph("ʌ p")) == ph("ʌ p") and onset_part(ph("ʌ p")) == ph("ʌ")
    assert rhyme_part(ph("h m")) == ph("h m") == onset_part(ph("h m"))  # no vowel: all of it
    assert syllables(ph("j ɛ s t ɚ d eɪ")) == 3 and syllables(ph("b ʌ t n\u0329")) == 2


def test_each_kind_closest_first_never_a_keyword_or_a_homophone():
    table = find_near_misses(KWS, VOCABULARY, PHONEMES, per_kind=2)
    assert table == {
        # "yes-man" holds the keyword, "Yes" is it: never; "less" before "guess" (more common),
        # both before "nevertheless" (more syllables)
        "yes": NearMisses(inside=("yesterday",), rhyme=("less", "guess"), onset=("yet", "yellow")),
        # "know" sounds the same, so it is no near-miss; "nose" and "snow" hold "no" but have no
        # more syllables: an onset and a rhyme; the inside ones start with it first
        "no": NearMisses(inside=("noble", "piano"), rhyme=("snow", "so"), onset=("nose",)),
        # a phrase rhymes on its last word and shares the onset of its first
        "hey edge": NearMisses(inside=(), rhyme=("ledge", "hedge"), onset=("hay",)),
    }
    assert near_miss_words(table) == (
        "guess", "hay", "hedge", "ledge", "less", "noble", "nose", "piano", "snow", "so",
        "yellow", "yesterday", "yet",
    )  # fmt: skip
    assert find_near_misses(KWS, VOCABULARY, PHONEMES, per_kind=0)["yes"] == NearMisses((), (), ())
    three = find_near_misses(KWS, VOCABULARY, PHONEMES, per_kind=3)
    assert three["yes"].rhyme == ("less", "guess", "nevertheless")
    assert three["no"].rhyme == ("snow", "so", "yellow")  # another keyword's onset may rhyme here


def test_full_ties_are_broken_by_the_seed_and_always_the_same_way():
    vocabulary = {"hedge": 0, "ledge": 0}
    orders = {find_near_misses(["hey edge"], vocabulary, PHONEMES, 2, seed)["hey edge"].rhyme
              for seed in range(8)}  # fmt: skip
    assert orders == {("hedge", "ledge"), ("ledge", "hedge")}
    first = find_near_misses(["hey edge"], vocabulary, PHONEMES, 2, seed=5)
    assert first == find_near_misses(["hey edge"], vocabulary, PHONEMES, 2, seed=5)


def test_generic_unknown_words_lose_keywords_and_homophones():
    words = ["bed", "know", "Yes", "yes-man", "cat", "hey-edge"]
    assert without_keywords(words, KWS, PHONEMES) == ("bed", "cat")


def test_a_keyword_without_phonemes_is_an_error():
    with pytest.raises(EdgelearnError, match="no phonemes for the keyword 'hey edge'"):
        find_near_misses(KWS, VOCABULARY, {k: v for k, v in PHONEMES.items() if k != "hey edge"}, 1)


def test_the_shipped_vocabulary():
    vocabulary = load_vocabulary()
    assert len(vocabulary) > 10_000 and set(vocabulary.values()) == {0, 1}
    assert all(w.isascii() and w.isalpha() and w.islower() and len(w) > 1 for w in vocabulary)
    assert vocabulary["yesterday"] == 0 and vocabulary["aardvark"] == 1


def test_through_real_espeak_ng(espeak):
    words = ["yes", "no", "less", "yesterday", "yet", "know", "snow", "nose", "hey edge", "ledge"]
    phonemes = espeak_phonemes(espeak, words)
    assert phonemes["yes"] == ("j", "ɛ", "s") and phonemes["know"] == phonemes["no"]
    assert phonemes["hey edge"] == ("h", "eɪ", "ɛ", "dʒ")
    assert phonemes == espeak_phonemes(espeak, words, jobs=1)  # batches do not change a word
    vocabulary = dict.fromkeys(words[2:], 0)
    assert find_near_misses(["yes", "no", "hey edge"], vocabulary, phonemes, 3) == {
        "yes": NearMisses(inside=("yesterday",), rhyme=("less",), onset=("yet",)),
        "no": NearMisses(inside=(), rhyme=("snow",), onset=("nose",)),
        "hey edge": NearMisses(inside=(), rhyme=("ledge",), onset=()),
    }


@pytest.mark.slow
def test_the_default_keywords_over_the_shipped_vocabulary(espeak):
    phonemes = {**vocabulary_phonemes(espeak), **espeak_phonemes(espeak, KEYWORDS)}
    table = find_near_misses(KEYWORDS, load_vocabulary(), phonemes, per_kind=3, seed=1234)
    assert table["yes"].inside[0] == "yesterday" and "less" in table["yes"].rhyme
    assert table["up"].inside[0] == "upper" and "downhill" in table["down"].inside
    assert "town" in table["down"].rhyme and "top" in table["stop"].rhyme
    words = near_miss_words(table)
    assert not set(words) & {*KEYWORDS, "know", "write", "rite"}  # keywords and homophones
    assert 60 <= len(words) <= 90


def _fake_espeak(tmp_path: Path, script: str) -> str:
    fake = tmp_path / "espeak-ng"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    return str(fake)


def test_a_batch_that_breaks_one_line_per_text_is_redone_one_text_a_call(tmp_path):
    # prints one line whatever it is given: right for one text, wrong for a batch
    fake = _fake_espeak(tmp_path, "cat > /dev/null; echo 'h ˈɛ l oʊ'")
    assert espeak_phonemes(fake, ["one", "two"], jobs=1) == {
        "one": ("h", "ɛ", "l", "oʊ"), "two": ("h", "ɛ", "l", "oʊ"),
    }  # fmt: skip
    silent = _fake_espeak(tmp_path, "cat > /dev/null; echo 'voice data is broken' >&2")
    with pytest.raises(EdgelearnError, match=r"no phonemes for 'one' \(voice en-us\); "
                       r"stderr: voice data is broken"):  # fmt: skip
        espeak_phonemes(silent, ["one"])
