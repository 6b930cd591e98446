"""Speaker-disjoint splits: a server pool (train/val/test) and a client pool (one client each)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from components.config import PrepareParams
from components.data.labels import UNKNOWN
from components.data.speech_commands import Clip
from components.errors import CorpusError

SERVER, CLIENT = "server", "client"
TRAIN, VAL, TEST = "train", "val", "test"


@dataclass(frozen=True)
class Assignment:
    pool: str
    split: str
    client: int = -1  # index into the client list; -1 in the server pool


@dataclass(frozen=True)
class SpeakerSplit:
    assignments: list[Assignment | None]  # per clip; None = left out (reason in `excluded`)
    clients: list[str]  # client index -> speaker id
    excluded: dict[str, str]  # speaker -> why its clips are left out


def _take(n_total: int, fraction: float) -> int:
    return max(1, round(fraction * n_total)) if fraction > 0 else 0


def split_by_speaker(
    clips: Sequence[Clip],
    *,
    validation: frozenset[str],
    testing: frozenset[str],
    speaker_pools: dict[str, str],
    params: PrepareParams,
    seed: int,
) -> SpeakerSplit:
    """Assign every clip to a pool and split, by speaker, deterministically from ``seed``.

    Pools come from the corpus' own ``speakers.json`` when it has one (the synthesized corpus,
    whose client pool has accents and noise the server never hears); otherwise a
    ``client_fraction`` of the speakers that no official list names become clients. Server speakers
    are split into train/val/test by the official lists when present, else by seeded shuffling.
    Clips named in an official list never land in a training split, in either pool.
    """
    rng = np.random.default_rng(seed)
    by_speaker: dict[str, list[int]] = defaultdict(list)
    for i, clip in enumerate(clips):
        by_speaker[clip.speaker].append(i)
    speakers = sorted(by_speaker)
    listed = validation | testing
    listed_speakers = {clips[i].speaker for i in range(len(clips)) if clips[i].path in listed}

    if speaker_pools:
        client_speakers = [s for s in speakers if speaker_pools.get(s) == CLIENT]
    else:
        candidates = [s for s in speakers if s not in listed_speakers]
        order = rng.permutation(len(candidates))
        n_clients = min(len(candidates), round(params.client_fraction * len(speakers)))
        client_speakers = sorted(candidates[j] for j in order[:n_clients])
    client_set = set(client_speakers)
    server_speakers = [s for s in speakers if s not in client_set]

    split_of_speaker: dict[str, str] = {}
    use_lists = bool(listed)
    if not use_lists:
        order = rng.permutation(len(server_speakers))
        shuffled = [server_speakers[j] for j in order]
        n_val = _take(len(shuffled), params.val_fraction)
        n_test = _take(len(shuffled), params.test_fraction)
        for k, s in enumerate(shuffled):
            split_of_speaker[s] = VAL if k < n_val else TEST if k < n_val + n_test else TRAIN
        if TRAIN not in split_of_speaker.values():
            raise CorpusError(
                f"only {len(server_speakers)} server speakers: too few for train/val/test splits "
                "(need more speakers, or lower prepare.val_fraction / prepare.test_fraction)"
            )

    assignments: list[Assignment | None] = [None] * len(clips)
    for s in server_speakers:
        for i in by_speaker[s]:
            path = clips[i].path
            if use_lists:
                split = VAL if path in validation else TEST if path in testing else TRAIN
            else:
                split = split_of_speaker[s]
            assignments[i] = Assignment(SERVER, split)
    if not any(a is not None and a.split == TRAIN for a in assignments):
        raise CorpusError("no server-pool training clips left after splitting by speaker")

    excluded: dict[str, str] = {}
    clients: list[str] = []
    for s in client_speakers:
        idx = by_speaker[s]
        if len(idx) < params.min_client_clips:
            excluded[s] = f"{len(idx)} clips, fewer than prepare.min_client_clips"
            continue
        if params.max_clients and len(clients) >= params.max_clients:
            excluded[s] = "beyond prepare.max_clients"
            continue
        forced_test = [i for i in idx if clips[i].path in listed]
        free = [i for i in idx if clips[i].path not in listed]
        n_test = max(0, _take(len(idx), params.client_test_fraction) - len(forced_test))
        order = rng.permutation(len(free))
        test = set(forced_test) | {free[j] for j in order[:n_test]}
        if len(test) == len(idx):
            excluded[s] = "no clips left for client training after the official lists"
            continue
        for i in idx:
            assignments[i] = Assignment(CLIENT, TEST if i in test else TRAIN, len(clients))
        clients.append(s)
    return SpeakerSplit(assignments, clients, excluded)


def group_key(a: Assignment) -> tuple[str, str, int]:
    return (a.pool, a.split, a.client)


def balance_unknown(
    labels: Sequence[str], assignments: Sequence[Assignment | None], ratio: float, seed: int,
    *, num_keywords: int,
) -> list[bool]:  # fmt: skip
    """Keep at most ``ratio`` x (mean keyword-class size) `_unknown_` clips in every split group.

    Speech Commands has many more non-keyword clips than keyword clips; the 12-class setup
    subsamples them. A mean keyword class is a group's keyword clips / ``num_keywords``.
    Returns a keep-mask per clip (already-excluded clips stay excluded).
    """
    rng = np.random.default_rng([seed, 1])
    keep = [a is not None for a in assignments]
    keywords: dict[tuple[str, str, int], int] = defaultdict(int)
    unknown: dict[tuple[str, str, int], list[int]] = defaultdict(list)
    for i, (label, a) in enumerate(zip(labels, assignments, strict=True)):
        if a is None:
            continue
        if label == UNKNOWN:
            unknown[group_key(a)].append(i)
        else:
            keywords[group_key(a)] += 1
    for key in sorted(unknown):
        members = unknown[key]
        limit = math.ceil(ratio * keywords[key] / num_keywords)
        if len(members) > limit:
            drop = rng.choice(len(members), size=len(members) - limit, replace=False)
            for j in drop:
                keep[members[j]] = False
    return keep


def silence_counts(
    assignments: Sequence[Assignment | None], keep: Sequence[bool], ratio: float,
    *, num_speech_classes: int,
) -> dict[tuple[str, str, int], int]:  # fmt: skip
    """How many `_silence_` clips each split group gets: ``ratio`` x its mean class size, over
    the ``num_speech_classes`` classes of its clips (the keywords and `_unknown_`)."""
    sizes: dict[tuple[str, str, int], int] = defaultdict(int)
    for a, k in zip(assignments, keep, strict=True):
        if a is not None and k:
            sizes[group_key(a)] += 1
    if ratio <= 0:
        return {}
    return {key: max(1, round(ratio * n / num_speech_classes)) for key, n in sorted(sizes.items())}
