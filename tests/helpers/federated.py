"""The federated tests' models: a hand-made layout for the tests that need no network, the layout
of a real sub-network, and a start model trained a little on the toy data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from components.federated.variables import Entry, ModelLayout
from components.model.checkpoint import save_subnet
from components.model.subnet import SubNetwork
from tests.helpers.spaces import SMALL_SPACE
from tests.helpers.toy_data import banded

WIDTHS = [16, 8, 24, 0]

# SMALL_SPACE: stem, stage 1 (16 ch, 2 blocks), a transition, stage 2 (24 ch, 2 blocks), head
with torch.random.fork_rng():
    torch.manual_seed(0)
    NET = SubNetwork(SMALL_SPACE, WIDTHS)
LAYOUT = ModelLayout.from_model(NET)

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


def write_start_model(path: Path, prepared: Path, steps: int = 40) -> Path:
    """A sub-network trained a little on the server clips (so it is neither random nor done)."""
    torch.manual_seed(0)
    net = SubNetwork(SMALL_SPACE, WIDTHS)
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
