"""A tiny prepared dataset and start model for the federated tests (written in a few ms), and a
hand-made model layout for the tests that need no network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from components.data import prepared
from components.federated.variables import Entry, ModelLayout
from components.model.checkpoint import save_subnet
from components.model.subnet import SubNetwork
from tests.supernet.test_model import SPACE

WIDTHS = [16, 8, 24, 0]

# Five variables over three layers (depths 0, 0.5, 1) and a float buffer (sent, never trained).
TOY_LAYOUT = ModelLayout(
    (
        Entry("norm.mean", (2,), False, 0),
        Entry("stem.weight", (2, 2), True, 1),
        Entry("stem.bias", (2,), True, 1),
        Entry("body.0.weight", (2, 2), True, 2),
        Entry("head.weight", (3, 2), True, 3),
        Entry("head.bias", (3,), True, 3),
    )
)


def toy_model(offset: float = 0.0) -> dict[str, np.ndarray]:
    """Values for ``TOY_LAYOUT``: entry ``i`` holds ``offset + i + 0.5 * (0, 1, 2, ...)``."""
    return {
        e.name: (offset + i + 0.5 * np.arange(e.numel, dtype=np.float32)).reshape(e.shape)
        for i, e in enumerate(TOY_LAYOUT.entries)
    }


def banded(n: int, rng: np.random.Generator, shift: int = 0, noise: float = 1.0):
    """Log-mel-like clips whose class is which band of 3 mel bins is loud; clients shift it."""
    y = np.arange(n) % SPACE.num_classes
    x = rng.standard_normal((n, SPACE.n_mels, SPACE.frames)).astype(np.float32) * noise - 4.0
    for i, label in enumerate(y):
        lo = min(3 * label + shift, SPACE.n_mels - 3)
        x[i, lo : lo + 3, 20:80] += 4.0
    return x, y


def write_prepared(root: Path, clients: int = 6, train: int = 10, test: int = 6) -> Path:
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
    features = np.concatenate(xs)
    audio = np.zeros((len(features), 16), np.int16)
    classes = [str(c) for c in range(SPACE.num_classes)]
    return prepared.write_prepared(root, audio, features, pd.DataFrame(rows), {"classes": classes})


def write_start_model(path: Path, prepared: Path, steps: int = 40) -> Path:
    """A sub-network trained a little on the server clips (so it is neither random nor done)."""
    torch.manual_seed(0)
    net = SubNetwork(SPACE, WIDTHS)
    x, y = banded(96, np.random.default_rng(1))
    x, y = torch.from_numpy(x), torch.from_numpy(y).long()
    net.norm.set_stats(x)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    save_subnet(path, net.eval())
    return path
