"""The prepare stage: corpus folder -> speaker-disjoint splits, audio, log-mel, manifest."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from components.config import Params
from components.data.labels import SILENCE, UNKNOWN, classes_of
from components.data.prepared import MANIFEST_COLUMNS, write_prepared
from components.data.speech_commands import Clip, CorpusScan, Rejection, scan_corpus
from components.data.splits import (
    CLIENT,
    SERVER,
    TEST,
    TRAIN,
    VAL,
    Assignment,
    balance_unknown,
    silence_counts,
    split_by_speaker,
)
from components.data.wav import WavRejected, read_wav
from components.errors import CorpusError
from components.features import compute_features

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Row:
    path: str
    speaker: str
    label: str
    assignment: Assignment
    sha256: str
    offset: int = 0  # start sample inside a background-noise file (silence rows)
    gain: float = 1.0


HEADLINE = (  # metrics/prepare.json (ARCHITECTURE.md's keys; the rest: the details file)
    "num_train", "num_val", "num_test", "num_classes", "num_speakers", "num_clients",
    "num_rejected_files",
)  # fmt: skip


@dataclass(frozen=True)
class PrepareResult:
    out_dir: Path
    metrics: dict[str, int]
    rejected: list[Rejection]
    excluded_speakers: dict[str, str]


def corpus_root(params: Params, workdir: Path) -> Path:
    if params.prepare.source == "synthetic":
        return workdir / params.paths.corpus
    return workdir / params.prepare.speech_commands_dir  # an absolute path stays absolute


def _fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad at the end or crop to ``n`` samples, as Speech Commands' own pipeline does."""
    return audio[:n] if len(audio) >= n else np.pad(audio, (0, n - len(audio)))


def _load_clips(
    scan: CorpusScan, params: Params
) -> tuple[list[Clip], dict[str, np.ndarray], dict[str, str], list[Rejection]]:
    """Read every clip; a file that fails any check is rejected with its reason, never raised."""
    feats = params.features
    min_samples = int(params.prepare.min_duration_s * feats.sample_rate)
    kept: list[Clip] = []
    audio: dict[str, np.ndarray] = {}
    digests: dict[str, str] = {}
    rejected = list(scan.rejected)
    for clip in scan.clips:
        path = scan.root / clip.path
        try:
            samples = read_wav(path, feats.sample_rate)
            if len(samples) < min_samples:
                raise WavRejected(
                    f"too short: {len(samples) / feats.sample_rate:.3f} s, "
                    f"minimum prepare.min_duration_s={params.prepare.min_duration_s} s"
                )
        except WavRejected as why:
            rejected.append(Rejection(clip.path, str(why)))
            continue
        kept.append(clip)
        audio[clip.path] = _fit_length(samples, feats.clip_samples)
        digests[clip.path] = hashlib.sha256(path.read_bytes()).hexdigest()
    for rel in scan.noise_files:
        path = scan.root / rel
        try:
            samples = read_wav(path, feats.sample_rate)
            if len(samples) < feats.clip_samples:
                raise WavRejected("background noise shorter than one clip")
        except WavRejected as why:
            rejected.append(Rejection(rel, str(why)))
            continue
        audio[rel] = samples
        digests[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return kept, audio, digests, rejected


def _silence_rows(
    counts: dict[tuple[str, str, int], int],
    noise: list[str],
    audio: dict[str, np.ndarray],
    digests: dict[str, str],
    clip_samples: int,
    seed: int,
) -> list[Row]:
    """Cut `_silence_` clips from background noise at random offsets and gains (a tenth silent)."""
    if not noise:
        return []
    rng = np.random.default_rng([seed, 2])
    rows = []
    for (pool, split, client), n in counts.items():
        for _ in range(n):
            rel = noise[int(rng.integers(len(noise)))]
            offset = int(rng.integers(len(audio[rel]) - clip_samples + 1))
            gain = 0.0 if rng.random() < 0.1 else round(float(rng.uniform(0.05, 1.0)), 4)
            assignment = Assignment(pool, split, client)
            rows.append(Row(rel, "", SILENCE, assignment, digests[rel], offset, gain))
    return rows


def _row_order(row: Row) -> tuple[int, int, int, str, int]:
    a = row.assignment
    split_rank = {TRAIN: 0, VAL: 1, TEST: 2}[a.split]
    return (0 if a.pool == SERVER else 1, a.client, split_rank, row.path, row.offset)


def _manifest(rows: list[Row], classes: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            (i, r.path, r.speaker, r.label, classes.index(r.label), r.assignment.pool,
             r.assignment.split, r.assignment.client, r.offset, r.gain, r.sha256)
            for i, r in enumerate(rows)
        ],
        columns=list(MANIFEST_COLUMNS),
    )  # fmt: skip


def run(params: Params, workdir: Path = Path(".")) -> PrepareResult:
    """Build ``paths.prepared`` from the configured corpus; the old output survives any failure."""
    root = corpus_root(params, workdir)
    keywords = params.prepare.keywords
    classes = classes_of(keywords)
    scan = scan_corpus(root, keywords)
    clips, audio, digests, rejected = _load_clips(scan, params)
    if not clips:
        reasons = Counter(r.reason.split(":")[0] for r in rejected).most_common(3)
        raise CorpusError(
            f"{root}: no usable clips; {len(rejected)} files rejected, e.g. {reasons}"
        )

    split = split_by_speaker(
        clips,
        validation=scan.validation,
        testing=scan.testing,
        speaker_pools=scan.speaker_pools,
        params=params.prepare,
        seed=params.base.seed,
    )
    labels = [c.label for c in clips]
    keep = balance_unknown(labels, split.assignments, params.prepare.unknown_ratio,
                           params.base.seed, num_keywords=len(keywords))  # fmt: skip
    rows = [
        Row(c.path, c.speaker, c.label, a, digests[c.path])
        for c, a, k in zip(clips, split.assignments, keep, strict=True)
        if a is not None and k
    ]
    noise = [rel for rel in scan.noise_files if rel in audio]
    counts = silence_counts(split.assignments, keep, params.prepare.silence_ratio,
                            num_speech_classes=len(keywords) + 1)  # fmt: skip
    clip_samples = params.features.clip_samples
    rows += _silence_rows(counts, noise, audio, digests, clip_samples, params.base.seed)
    if not noise:
        log.warning("%s: no usable background noise files, so no %s clips", root, SILENCE)
    rows.sort(key=_row_order)

    wave = np.stack(
        [
            audio[r.path][r.offset : r.offset + clip_samples] * r.gain
            if r.label == SILENCE
            else audio[r.path]
            for r in rows
        ]
    ).astype(np.float32)
    pcm = np.round(np.clip(wave, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    # Features come from the int16 audio that is stored, so export parity checks see the same input.
    features = compute_features(torch.from_numpy(pcm.astype(np.float32) / 32768.0), params.features)

    server = Counter(r.assignment.split for r in rows if r.assignment.pool == SERVER)
    client = Counter(r.assignment.split for r in rows if r.assignment.pool == CLIENT)
    labels_kept = Counter(r.label for r in rows)
    metrics = {
        "num_train": server[TRAIN],
        "num_val": server[VAL],
        "num_test": server[TEST],
        "num_client_train": client[TRAIN],
        "num_client_test": client[TEST],
        "num_classes": len(classes),
        "num_speakers": len({r.speaker for r in rows if r.speaker}),
        "num_clients": len(split.clients),
        "num_rejected_files": len(rejected),
        "num_excluded_speakers": len(split.excluded),
        "num_unknown": labels_kept[UNKNOWN],
        "num_silence": labels_kept[SILENCE],
    }
    summary = {
        "source": params.prepare.source,
        "corpus": str(root),
        "classes": list(classes),
        "features": params.features.model_dump(),
        "feature_shape": list(features.shape[1:]),
        "counts": metrics,
        "clients": split.clients,
        "excluded_speakers": split.excluded,
        "official_lists": bool(scan.validation or scan.testing),
    }
    out_dir = workdir / params.paths.prepared
    write_prepared(out_dir, pcm, features.numpy(), _manifest(rows, classes), summary,
                   [(r.path, r.reason) for r in rejected])  # fmt: skip

    log.info("prepared %d clips from %s into %s", len(rows), root, out_dir)
    return PrepareResult(out_dir, metrics, rejected, split.excluded)
