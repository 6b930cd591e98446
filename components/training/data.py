"""The server pool's training and validation tensors for super-network training and search."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from components.data.labels import SILENCE
from components.data.prepared import load_prepared
from components.data.splits import SERVER, TRAIN, VAL
from components.errors import CorpusError


@dataclass(frozen=True)
class ServerData:
    train_x: torch.Tensor  # (clips, n_mels, frames) log-mel
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    classes: tuple[str, ...] = ()  # the label of each class index (the prepared data's summary)

    def noise_clips(self) -> torch.Tensor:
        """The training split's ``_silence_`` clips (noise alone), for ``augment``'s noise
        mixing; none when the classes have no ``_silence_``."""
        if SILENCE not in self.classes:
            return self.train_x[:0]
        return self.train_x[self.train_y == self.classes.index(SILENCE)]

    def calibration_batches(self, batches: int, batch_size: int, seed: int) -> list[torch.Tensor]:
        """A fixed set of training batches for batch-norm recalibration (same for every subnet)."""
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(self.train_y), generator=g)
        return [
            self.train_x[order[i * batch_size : (i + 1) * batch_size]]
            for i in range(min(batches, max(1, len(order) // batch_size)))
        ]


def load_server_data(prepared_dir: Path, split_eval: str = VAL) -> ServerData:
    """The server pool's training split and ``split_eval`` (val, or test for final scores)."""
    data = load_prepared(prepared_dir)

    def take(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = data.tensors(SERVER, split)
        if len(y) == 0:
            raise CorpusError(f"{prepared_dir}: the server pool has no '{split}' clips")
        return x, y

    train_x, train_y = take(TRAIN)
    val_x, val_y = take(split_eval)
    return ServerData(train_x, train_y, val_x, val_y, tuple(data.classes))
