"""``data/prepared/``: the one format every later stage reads, written and read only here.

A prepared dataset is a folder of

- ``audio.npy``: (clips, samples) int16 PCM at 16 kHz, what the export stage verifies with;
- ``features.npy``: (clips, n_mels, frames) float32 log-mel computed from that int16 audio;
- ``manifest.csv``: one row per clip, in array order, with at least ``REQUIRED_COLUMNS``;
- ``summary.json``: at least ``classes`` (the label of each ``label_index``) and the counts;
- ``rejected.csv``: the input files that were not used, with the reason.

``write_prepared`` checks all of it before writing and swaps the folder in whole;
``load_prepared`` checks it again and memory-maps the arrays.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from components.errors import CorpusError
from components.io import atomic_dir

AUDIO, FEATURES, MANIFEST, SUMMARY, REJECTED = (
    "audio.npy", "features.npy", "manifest.csv", "summary.json", "rejected.csv",
)  # fmt: skip
FILES = (AUDIO, FEATURES, MANIFEST, SUMMARY)
REQUIRED_COLUMNS = ("index", "path", "speaker", "label", "label_index", "pool", "split", "client")
# What the prepare stage writes: the required columns, then where a _silence_ clip was cut from a
# background-noise file (offset, gain) and the SHA-256 of the source file.
MANIFEST_COLUMNS = (*REQUIRED_COLUMNS, "offset", "gain", "sha256")


@dataclass(frozen=True)
class PreparedData:
    audio: np.ndarray  # (clips, samples) int16, memory-mapped
    features: np.ndarray  # (clips, n_mels, frames) float32, memory-mapped
    manifest: pd.DataFrame
    summary: dict[str, Any]

    def select(self, pool: str, split: str, client: int | None = None) -> np.ndarray:
        """Row indices of one pool/split (and client); use them to index the arrays lazily."""
        m = self.manifest
        mask = (m["pool"] == pool) & (m["split"] == split)
        if client is not None:
            mask &= m["client"] == client
        return np.flatnonzero(mask.to_numpy())

    def tensors(
        self, pool: str, split: str, client: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (clips, n_mels, frames) and int64 labels of one selection, copied out of the
        memory map (only these clips are read)."""
        return self.tensors_at(self.select(pool, split, client))

    def tensors_at(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(self.features[rows]))
        return x, torch.from_numpy(self.labels[rows].astype(np.int64))

    @property
    def labels(self) -> np.ndarray:
        return self.manifest["label_index"].to_numpy()

    @property
    def classes(self) -> list[str]:
        return list(self.summary["classes"])


def check_prepared(
    where: Path | str,
    audio: np.ndarray,
    features: np.ndarray,
    manifest: pd.DataFrame,
    summary: dict[str, Any],
) -> None:
    """Every rule of the format; the first broken one is a ``CorpusError`` naming ``where``."""
    missing = [c for c in REQUIRED_COLUMNS if c not in manifest.columns]
    if missing:
        raise CorpusError(f"{where}: {MANIFEST} lacks the columns {', '.join(missing)}")
    if not len(manifest) == len(audio) == len(features):
        raise CorpusError(
            f"{where}: {MANIFEST} has {len(manifest)} rows but the arrays hold "
            f"{len(audio)} clips of audio and {len(features)} of features"
        )
    if audio.dtype != np.int16 or audio.ndim != 2:
        raise CorpusError(f"{where}: {AUDIO} must be (clips, samples) int16, got "
                          f"{audio.dtype} {audio.shape}")  # fmt: skip
    if features.dtype != np.float32 or features.ndim != 3:
        raise CorpusError(f"{where}: {FEATURES} must be (clips, n_mels, frames) float32, got "
                          f"{features.dtype} {features.shape}")  # fmt: skip
    classes = summary.get("classes")
    if not isinstance(classes, list) or not classes:
        raise CorpusError(f"{where}: {SUMMARY} must name the classes (a non-empty list)")
    if len(manifest) and not manifest["label_index"].between(0, len(classes) - 1).all():
        raise CorpusError(f"{where}: {MANIFEST} has label_index outside 0..{len(classes) - 1}")
    if not (manifest["index"].to_numpy() == np.arange(len(manifest))).all():
        raise CorpusError(f"{where}: {MANIFEST} 'index' must count the rows 0, 1, 2, ...")


def check_num_classes(
    prepared: Path | str, classes: list[str] | tuple[str, ...], model: Path | str, num_classes: int
) -> None:
    """A ``CorpusError`` when a model scores another number of classes than the prepared data
    names (the keyword list changed after the model was trained)."""
    if num_classes != len(classes):
        raise CorpusError(
            f"{model} scores {num_classes} classes but {prepared} has {len(classes)} "
            f"({', '.join(classes)}): the keyword list changed since the model was trained; "
            "rerun the stages after prepare (`dvc repro`)"
        )


def write_prepared(
    out_dir: Path,
    audio: np.ndarray,
    features: np.ndarray,
    manifest: pd.DataFrame,
    summary: dict[str, Any],
    rejected: Iterable[tuple[str, str]] = (),
) -> Path:
    """Check and write a prepared dataset; ``out_dir`` is replaced whole or not at all.

    ``summary`` gets ``feature_shape`` set; ``rejected`` lists (path, reason).
    """
    out_dir = Path(out_dir)
    check_prepared(out_dir, audio, features, manifest, summary)
    summary = {**summary, "feature_shape": list(features.shape[1:])}
    with atomic_dir(out_dir) as tmp:
        (tmp / SUMMARY).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        np.save(tmp / AUDIO, audio)
        np.save(tmp / FEATURES, features)
        manifest.to_csv(tmp / MANIFEST, index=False, lineterminator="\n")
        pd.DataFrame(list(rejected), columns=["path", "reason"]).to_csv(
            tmp / REJECTED, index=False, lineterminator="\n"
        )
    return out_dir


def load_prepared(out_dir: Path) -> PreparedData:
    """Open a prepared dataset; a missing, partial or malformed folder is one clear error."""
    out_dir = Path(out_dir)
    missing = [name for name in FILES if not (out_dir / name).is_file()]
    if missing:
        raise CorpusError(
            f"{out_dir}: not a prepared dataset (missing {', '.join(missing)}); "
            "run `dvc repro prepare` first"
        )
    manifest = pd.read_csv(out_dir / MANIFEST, keep_default_na=False)
    audio = np.load(out_dir / AUDIO, mmap_mode="r")
    features = np.load(out_dir / FEATURES, mmap_mode="r")
    try:
        summary = json.loads((out_dir / SUMMARY).read_text())
    except json.JSONDecodeError as err:
        raise CorpusError(f"{out_dir / SUMMARY}: not valid JSON ({err})") from None
    check_prepared(out_dir, audio, features, manifest, summary)
    return PreparedData(audio, features, manifest, summary)
