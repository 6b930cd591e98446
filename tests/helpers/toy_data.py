"""A tiny learnable dataset: log-mel-like clips whose class is which band of 3 mel bins is loud.

At the real input size (40 mels x 101 frames, 12 classes) and written as a prepared dataset in a
few milliseconds, for the tests that run the training, search and federated code on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from components.data import prepared
from tests.helpers.spaces import SMALL_SPACE

N_MELS, FRAMES, NUM_CLASSES = SMALL_SPACE.n_mels, SMALL_SPACE.frames, SMALL_SPACE.num_classes


def banded(n: int, rng: np.random.Generator, shift: int = 0, noise: float = 1.0):
    """``n`` clips (labels 0, 1, 2, ... in turn) as float32 numpy; clients shift the bands."""
    y = np.arange(n) % NUM_CLASSES
    x = rng.standard_normal((n, N_MELS, FRAMES)).astype(np.float32) * noise - 4.0
    for i, label in enumerate(y):
        lo = min(3 * label + shift, N_MELS - 3)
        x[i, lo : lo + 3, 20:80] += 4.0
    return x, y


def banded_tensors(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The same kind of clips as torch tensors, from a seeded torch generator."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % NUM_CLASSES
    x = torch.randn(n, N_MELS, FRAMES, generator=g) - 4.0
    for i, label in enumerate(y.tolist()):
        x[i, 3 * label : 3 * label + 3, 20:80] += 4.0
    return x, y


def write_prepared(root: Path, clients: int = 6, train: int = 10, test: int = 6,
                   val: int = 0) -> Path:  # fmt: skip
    """A prepared dataset: 48 server train and 24 server test clips, ``train`` + ``test`` clips
    for each of ``clients`` clients (bands shifted, noisier), and ``val`` server validation
    clips (drawn last, so the other clips do not depend on it)."""
    rng = np.random.default_rng(0)
    xs, rows = [], []

    def add(x: np.ndarray, y: np.ndarray, pool: str, split: str, client: int) -> None:
        for label in y:
            path = f"c{client}/{len(rows)}.wav"
            rows.append({"index": len(rows), "path": path, "speaker": str(client),
                         "label": str(label), "label_index": int(label), "pool": pool,
                         "split": split, "client": client})  # fmt: skip
        xs.append(x)

    for split, n in (("train", 48), ("test", 24)):
        add(*banded(n, rng), "server", split, -1)
    for c in range(clients):
        for split, n in (("train", train), ("test", test)):
            add(*banded(n, rng, shift=1, noise=1.5), "client", split, c)
    if val:
        add(*banded(val, rng), "server", "val", -1)
    features = np.concatenate(xs)
    audio = np.zeros((len(features), 16), np.int16)
    classes = [str(c) for c in range(NUM_CLASSES)]
    return prepared.write_prepared(root, audio, features, pd.DataFrame(rows), {"classes": classes})
