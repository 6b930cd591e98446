"""The model's variables as federated learning sees them, and PVT's choice of which to train.

Partial Variable Training (Yang et al., ICASSP 2022): each round each client trains a subset of the
variables (tensors) and freezes the rest at the server's values. Strategies here:

- ``all``: every variable (plain FedAvg, the baseline);
- ``random``: per client per round, a uniformly random subset of the candidates, the variables
  of layers at relative depth ``>= min_depth`` (0 = the whole network). ``budget="count"``:
  ``round(fraction * |candidates|)`` variables (at least one). ``budget="size"``: the candidates
  in random order, each taken if it still fits in ``fraction`` of the candidates' parameters (at
  least one), so the fraction bounds the upload rather than the tensor count and a client trains
  many small tensors (norm scales, biases) or a few large ones. Back-propagation stops below the
  lowest trainable layer, so ``min_depth`` bounds the activations a client must keep;
- ``fixed``: the variables whose names match any of the glob patterns, for every client and round.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

STRATEGIES = ("all", "random", "fixed")


@dataclass(frozen=True)
class Entry:
    """One float tensor of the model's state that travels between server and clients."""

    name: str
    shape: tuple[int, ...]
    # a parameter (a variable PVT may train) or a float buffer (sent, never trained)
    trainable: bool
    layer: int  # position of its layer (stem, body.i, head) in forward order

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def layer_name(name: str) -> str:
    """``body.3.pw.0.weight`` -> ``body.3``, ``stem.1.bias`` -> ``stem``, ``head.b`` -> ``head``."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "body" else parts[0]


@dataclass(frozen=True)
class ModelLayout:
    """The canonical order of a model's float state; payloads refer to entries by index."""

    entries: tuple[Entry, ...]

    @classmethod
    def from_model(cls, model: nn.Module) -> ModelLayout:
        params = {n for n, _ in model.named_parameters()}
        layers: list[str] = []
        entries = []
        for name, tensor in model.state_dict().items():
            if not torch.is_floating_point(tensor):
                continue  # BatchNorm's num_batches_tracked: irrelevant with frozen statistics
            layer = layer_name(name)
            if layer not in layers:
                layers.append(layer)
            entries.append(Entry(name, tuple(tensor.shape), name in params, layers.index(layer)))
        return cls(tuple(entries))

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    @property
    def variables(self) -> list[str]:
        return [e.name for e in self.entries if e.trainable]

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {e.name: e.shape for e in self.entries}

    @property
    def trained_layers(self) -> list[int]:
        """Layers that hold variables, in forward order (the input normalization holds none)."""
        return sorted({e.layer for e in self.entries if e.trainable})

    def index(self, name: str) -> int:
        return self.names.index(name)

    def entry(self, name: str) -> Entry:
        return self.entries[self.index(name)]

    def depth(self, name: str) -> float:
        """Relative depth of a variable's layer: 0 for the first layer with variables, 1 for the
        last."""
        layers = self.trained_layers
        return layers.index(self.entry(name).layer) / max(1, len(layers) - 1)


def select_trainable(
    layout: ModelLayout,
    strategy: str,
    rng: np.random.Generator,
    fraction: float = 1.0,
    min_depth: float = 0.0,
    fixed: tuple[str, ...] = (),
    budget: str = "count",
) -> list[str]:
    """The variables one client trains this round, in layout order."""
    variables = layout.variables
    if strategy == "all":
        return variables
    if strategy == "fixed":
        chosen = [v for v in variables if any(fnmatch.fnmatchcase(v, p) for p in fixed)]
        if not chosen:
            raise ValueError(f"no variable matches the fixed patterns {list(fixed)}")
        return chosen
    if strategy != "random":
        raise ValueError(f"unknown PVT strategy {strategy!r}; choose one of {STRATEGIES}")
    candidates = [v for v in variables if layout.depth(v) >= min_depth - 1e-9]
    if not candidates:
        raise ValueError(f"no variable at relative depth >= {min_depth}")
    if budget == "count":
        k = min(len(candidates), max(1, round(fraction * len(candidates))))
        picked = set(rng.choice(len(candidates), size=k, replace=False).tolist())
    elif budget == "size":
        sizes = [layout.entry(v).numel for v in candidates]
        room = fraction * sum(sizes)
        picked = set()
        for i in rng.permutation(len(candidates)).tolist():
            if sizes[i] <= room or not picked:
                picked.add(i)
                room -= sizes[i]
    else:
        raise ValueError(f"unknown PVT budget {budget!r}; choose count or size")
    return [v for i, v in enumerate(candidates) if i in picked]
