from collections import defaultdict

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from components.config import PrepareParams
from components.data.labels import UNKNOWN
from components.data.speech_commands import Clip
from components.data.splits import (
    CLIENT,
    SERVER,
    TRAIN,
    Assignment,
    balance_unknown,
    silence_counts,
    split_by_speaker,
)
from components.errors import CorpusError


def make_clips(num_speakers: int, per_speaker: int) -> list[Clip]:
    return [
        Clip(f"w{k}/{s:08x}_nohash_0.wav", "yes", f"{s:08x}")
        for s in range(num_speakers)
        for k in range(per_speaker)
    ]


def split(clips, seed=0, validation=frozenset(), testing=frozenset(), pools=None, **params):
    return split_by_speaker(
        clips,
        validation=validation,
        testing=testing,
        speaker_pools=pools or {},
        params=PrepareParams(**params),
        seed=seed,
    )


def check_invariants(clips, result):
    pools_of = defaultdict(set)
    clients_of = defaultdict(set)
    for clip, a in zip(clips, result.assignments, strict=True):
        if a is None:
            continue
        pools_of[clip.speaker].add(a.pool)
        if a.pool == SERVER:
            pools_of[clip.speaker].add(("server-split", a.split))
            assert a.client == -1
        else:
            clients_of[clip.speaker].add(a.client)
            assert result.clients[a.client] == clip.speaker
    for speaker, pools in pools_of.items():
        assert not ({SERVER, CLIENT} <= pools), f"{speaker} is in both pools"
        assert len([p for p in pools if isinstance(p, tuple)]) <= 1, f"{speaker} in 2 splits"
        assert len(clients_of[speaker]) <= 1


@settings(max_examples=40, deadline=None)
@given(
    num_speakers=st.integers(6, 40),
    per_speaker=st.integers(1, 8),
    seed=st.integers(0, 2**31),
    client_fraction=st.floats(0.0, 0.6),
)
@example(num_speakers=6, per_speaker=1, seed=0, client_fraction=0.59375)  # 2 server speakers left
def test_split_invariants_hold(num_speakers, per_speaker, seed, client_fraction):
    clips = make_clips(num_speakers, per_speaker)
    server = num_speakers - round(client_fraction * num_speakers)
    if server < 3:  # val and test take one speaker each (fractions 0.1): none would train
        with pytest.raises(CorpusError, match=f"only {server} server speakers"):
            split(clips, seed, client_fraction=client_fraction, min_client_clips=2)
        return
    result = split(clips, seed, client_fraction=client_fraction, min_client_clips=2)
    check_invariants(clips, result)
    assert result == split(clips, seed, client_fraction=client_fraction, min_client_clips=2)


def test_same_seed_same_split_other_seed_other_split():
    clips = make_clips(30, 5)
    assert split(clips, 1) == split(clips, 1)
    assert split(clips, 1).assignments != split(clips, 2).assignments


def test_client_clips_split_into_train_and_test():
    clips = make_clips(10, 10)
    result = split(clips, client_fraction=0.5, client_test_fraction=0.3)
    assert len(result.clients) == 5
    for c in range(5):
        mine = [a for a in result.assignments if a is not None and a.client == c]
        assert sorted(a.split for a in mine) == ["test"] * 3 + ["train"] * 7


def test_official_lists_never_train_and_listed_speakers_stay_on_server():
    clips = make_clips(12, 4)
    validation = frozenset(c.path for c in clips if c.speaker == f"{0:08x}")
    testing = frozenset(c.path for c in clips if c.speaker == f"{1:08x}")
    result = split(clips, validation=validation, testing=testing, client_fraction=0.5)
    for clip, a in zip(clips, result.assignments, strict=True):
        if clip.path in validation:
            assert a == Assignment(SERVER, "val")
        elif clip.path in testing:
            assert a == Assignment(SERVER, "test")
        else:
            assert (a is not None and a.split == TRAIN) or a.pool == CLIENT
    assert f"{0:08x}" not in result.clients and f"{1:08x}" not in result.clients


def test_corpus_pools_are_respected_and_small_clients_excluded():
    clips = make_clips(8, 5) + make_clips(9, 2)[-2:]  # speaker 8 has only 2 clips
    pools = {f"{s:08x}": (CLIENT if s >= 5 else SERVER) for s in range(9)}
    result = split(clips, pools=pools, min_client_clips=4)
    assert result.clients == [f"{s:08x}" for s in (5, 6, 7)]
    assert result.excluded == {f"{8:08x}": "2 clips, fewer than prepare.min_client_clips"}


def test_balance_unknown_caps_each_group():
    labels = ["yes"] * 20 + [UNKNOWN] * 10
    assignments = [Assignment(SERVER, TRAIN)] * 30
    keep = balance_unknown(labels, assignments, ratio=2.0, seed=0, num_keywords=10)
    assert keep[:20] == [True] * 20
    assert sum(keep[20:]) == 4  # ceil(2.0 * 20 / 10)
    assert keep == balance_unknown(labels, assignments, ratio=2.0, seed=0, num_keywords=10)
    # two keywords: a mean keyword class is 10 clips, so 20 unknown clips may stay
    assert sum(balance_unknown(labels, assignments, ratio=2.0, seed=0, num_keywords=2)) == 30


def test_silence_counts_follow_group_size():
    assignments = [Assignment(SERVER, TRAIN)] * 22 + [Assignment(CLIENT, TRAIN, 0)] * 3
    counts = silence_counts(assignments, [True] * 25, ratio=1.0, num_speech_classes=11)
    assert counts == {(SERVER, TRAIN, -1): 2, (CLIENT, TRAIN, 0): 1}
    counts = silence_counts(assignments, [True] * 25, ratio=1.0, num_speech_classes=3)
    assert counts == {(SERVER, TRAIN, -1): 7, (CLIENT, TRAIN, 0): 1}  # 22 / 3, 3 / 3
    assert silence_counts(assignments, [True] * 25, ratio=0.0, num_speech_classes=11) == {}
