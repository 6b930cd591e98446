"""The client population of a prepared dataset, opened lazily: one client's clips at a time.

Only the manifest is read up front; a client's clips are copied out of the memory-mapped feature
array when that client is asked for them, so a population of thousands costs no more memory than
the clients sampled in a round.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from components.data.prepared import PreparedData, load_prepared
from components.data.splits import CLIENT, TEST, TRAIN
from components.errors import CorpusError


class ClientPool:
    """Client ``k`` of the simulation (its Flower partition id) is the k-th client id in order."""

    def __init__(self, prepared_dir: Path) -> None:
        self.prepared_dir = Path(prepared_dir)
        self.data: PreparedData = load_prepared(self.prepared_dir)
        m = self.data.manifest
        clients = m.loc[m["pool"] == CLIENT, "client"].to_numpy()
        self.ids: list[int] = sorted({int(c) for c in clients})
        if not self.ids:
            raise CorpusError(f"{self.prepared_dir}: the prepared data has no federated clients")

    def __len__(self) -> int:
        return len(self.ids)

    def client_id(self, partition: int) -> int:
        if not 0 <= partition < len(self.ids):
            raise CorpusError(f"{self.prepared_dir}: no client for partition {partition}")
        return self.ids[partition]

    def clips(self, client: int, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """One client's features (clips, n_mels, frames) and labels for ``split`` (train/test)."""
        return self.data.tensors(CLIENT, split, client)

    def counts(self, client: int) -> tuple[int, int]:
        return len(self.data.select(CLIENT, TRAIN, client)), len(
            self.data.select(CLIENT, TEST, client)
        )


@functools.lru_cache(maxsize=4)
def open_pool(prepared_dir: str) -> ClientPool:
    """One pool per process and folder (a Flower client process serves many clients in turn)."""
    return ClientPool(Path(prepared_dir))
