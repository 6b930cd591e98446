"""Speakers of the synthesized corpus: pools, shares, cycling, ids, near-misses (no audio)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from components.config import CorpusParams
from components.data import speakers
from components.data.speakers import (
    CLIENT,
    SERVER,
    clip_counts,
    engine_slots,
    make_speakers,
    voices_used,
)

CFG = CorpusParams(num_server_speakers=20, num_client_speakers=15, unknown_words_per_speaker=2)


def test_engine_slots_spread_the_share_evenly():
    assert engine_slots(5, 0.4) == [False, True, False, True, False]
    assert sum(engine_slots(120, 0.4)) == 48
    assert engine_slots(3, 0.0) == [False] * 3 and engine_slots(3, 1.0) == [True] * 3


def test_pools_share_no_voice_and_no_accent():
    assert not set(SERVER.voices()) & set(CLIENT.voices())
    assert not set(SERVER.accents) & set(CLIENT.accents)


def test_voices_are_cycled_so_each_is_balanced():
    made = make_speakers(CFG, seed=3)
    for pool, n in ((SERVER, 20), (CLIENT, 15)):
        mine = [s for s in made if s.pool == pool.name]
        assert len(mine) == n
        counts = Counter((s.engine, s.voice.partition("+")[0]) for s in mine)
        assert set(counts) == set(pool.voices())
        espeak = [counts[("espeak-ng", a)] for a in pool.accents]
        recorded = [counts[v] for v in pool.recorded]
        assert sum(espeak) == round(0.4 * n)
        assert max(espeak) - min(espeak) <= 1 and max(recorded) - min(recorded) <= 1
    for s in made:
        if s.engine == "espeak-ng":
            assert s.voice.split("+")[1] in speakers.VARIANTS


def test_speakers_are_deterministic_distinct_and_drawn_in_range():
    made = make_speakers(CFG, seed=3)
    assert made == make_speakers(CFG, seed=3)
    assert made != make_speakers(CFG, seed=4)
    assert len({s.speaker_id for s in made}) == len(made)
    assert [s.index for s in made] == list(range(len(made)))
    for s in made:
        assert speakers.RATE_RANGE[0] <= s.rate <= speakers.RATE_RANGE[1]
        assert speakers.PITCH_RANGE[0] <= s.pitch <= speakers.PITCH_RANGE[1]
        assert speakers.WARP_RANGE[0] <= s.warp <= speakers.WARP_RANGE[1]
    server = [s.channel for s in made if s.pool == "server"]
    assert all(c.rt60_s is None or 0.2 <= c.rt60_s <= 0.6 for c in server)
    assert all((c.low_hz, c.high_hz) != (300.0, 3400.0) for c in server)  # no telephone band


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_espeak_share_moves_speakers_between_engines(share):
    made = make_speakers(CFG.model_copy(update={"espeak_share": share}), seed=3)
    assert {s.engine == "espeak-ng" for s in made} == {bool(share)}


def test_voices_used_and_clip_counts():
    made = make_speakers(CFG.model_copy(update={"num_server_speakers": 5,
                                                "num_client_speakers": 2}), seed=3)  # fmt: skip
    assert voices_used(made) == [
        ("flite", "kal16"), ("espeak-ng", "en-us"), ("flite", "awb"), ("espeak-ng", "en-gb"),
        ("flite", "rms"), ("flite", "slt"), ("espeak-ng", "en-029"),
    ]  # fmt: skip
    assert clip_counts(made, 10) == {
        "server": 60, "client": 24, "espeak-ng": 36, "flite": 48,
        "server/espeak-ng": 24, "server/flite": 36, "client/espeak-ng": 12, "client/flite": 12,
    }  # fmt: skip


def test_near_misses_are_dealt_on_top_of_the_unknown_words_and_change_nothing_else():
    cfg = CFG.model_copy(update={"num_server_speakers": 6, "num_client_speakers": 2,
                                 "near_misses_per_speaker": 2})  # fmt: skip
    near = ("less", "yet", "upper", "town", "top")
    plain = make_speakers(cfg, seed=7)
    made = make_speakers(cfg, seed=7, near_misses=near)
    assert [replace(s, near_misses=()) for s in made] == plain  # same speakers, same words
    assert all(s.near_misses == () for s in plain)
    for pool in ("server", "client"):
        dealt = [s.near_misses for s in made if s.pool == pool]
        assert all(len(set(words)) == 2 for words in dealt)
    assert {w for s in made if s.pool == "server" for w in s.near_misses} == set(near)
    # no generic words left (a keyword list that takes them all): near-misses only
    only = make_speakers(cfg, seed=7, unknown_words=(), near_misses=near)
    assert all(s.unknown_words == () and len(s.near_misses) == 2 for s in only)


def test_phrases_are_running_speech_of_the_phrase_words_and_change_nothing_else():
    cfg = CFG.model_copy(update={"num_server_speakers": 6, "num_client_speakers": 3,
                                 "unknown_phrases_per_speaker": 3})  # fmt: skip
    words = ("table", "window", "morning", "water", "green")
    plain = make_speakers(cfg, seed=7)
    made = make_speakers(cfg, seed=7, phrase_words=words)
    assert [replace(s, phrases=()) for s in made] == plain  # a stream of their own
    assert all(s.phrases == () for s in plain)
    lengths = Counter()
    for s in made:
        assert len(s.phrases) == 3
        for phrase in s.phrases:
            said = phrase.split(" ")
            assert set(said) <= set(words)
            lengths[len(said)] += 1
    assert set(lengths) == set(range(speakers.PHRASE_WORDS[0], speakers.PHRASE_WORDS[1] + 1))
    assert made == make_speakers(cfg, seed=7, phrase_words=words)
    assert made != make_speakers(cfg, seed=8, phrase_words=words)
    none = make_speakers(cfg.model_copy(update={"unknown_phrases_per_speaker": 0}), seed=7,
                         phrase_words=words)  # fmt: skip
    assert all(s.phrases == () for s in none)
    counts = clip_counts(made, keyword_clips=4)
    assert counts["server"] == 6 * (4 + 2 + 3) and counts["client"] == 3 * (4 + 2 + 3)
