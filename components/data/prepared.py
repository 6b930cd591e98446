"""Read-only access to ``data/prepared/`` for the later stages (arrays are memory-mapped)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.errors import CorpusError

FILES = ("audio.npy", "features.npy", "manifest.csv", "summary.json")


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

    @property
    def labels(self) -> np.ndarray:
        return self.manifest["label_index"].to_numpy()


def load_prepared(out_dir: Path) -> PreparedData:
    """Open a prepared dataset; a missing or partial folder is one clear error naming it."""
    out_dir = Path(out_dir)
    missing = [name for name in FILES if not (out_dir / name).is_file()]
    if missing:
        raise CorpusError(
            f"{out_dir}: not a prepared dataset (missing {', '.join(missing)}); "
            "run `dvc repro prepare` first"
        )
    manifest = pd.read_csv(out_dir / "manifest.csv", keep_default_na=False)
    audio = np.load(out_dir / "audio.npy", mmap_mode="r")
    features = np.load(out_dir / "features.npy", mmap_mode="r")
    if not len(manifest) == len(audio) == len(features):
        raise CorpusError(
            f"{out_dir}: manifest has {len(manifest)} rows but the arrays hold "
            f"{len(audio)} clips of audio and {len(features)} of features"
        )
    summary = json.loads((out_dir / "summary.json").read_text())
    return PreparedData(audio, features, manifest, summary)
