"""The client population of a prepared dataset, opened lazily: one device's clips at a time.

A device is what Flower calls a client (one SuperNode, one ``partition-id``). By default each client
speaker of the prepared data is one device. ``finetune.population = N`` deals the client speakers'
clips to N devices instead, as real federated populations are: many devices with few clips each,
every device holding the clips of one speaker (``device_rows``).

Only the manifest is read up front; a device's clips are copied out of the memory-mapped feature
array when that device is asked for them, so a population of thousands costs no more memory than
the devices sampled in a round.
"""

from __future__ import annotations

import functools
import heapq
from pathlib import Path

import numpy as np
import torch

from components.data.prepared import PreparedData, load_prepared
from components.data.splits import CLIENT, TEST, TRAIN
from components.errors import ConfigError, CorpusError


def allot_devices(train_counts: list[int], population: int) -> list[int]:
    """Devices per speaker: one each, then one at a time to the speaker whose devices would hold
    the most training clips each (ties: the earlier speaker), never more devices than clips.
    Sums to ``population``; the caller checks that it fits."""
    devices = [1] * len(train_counts)
    heap: list[tuple[float, int]] = [(-n, s) for s, n in enumerate(train_counts) if n > 1]
    heapq.heapify(heap)
    for _ in range(population - len(train_counts)):
        _, s = heapq.heappop(heap)
        devices[s] += 1
        if devices[s] < train_counts[s]:
            heapq.heappush(heap, (-train_counts[s] / devices[s], s))
    return devices


def _rows_by_client(data: PreparedData, split: str) -> dict[int, np.ndarray]:
    """Each client speaker's rows of one split, ascending (one pass over the manifest)."""
    m = data.manifest
    rows = np.flatnonzero(((m["pool"] == CLIENT) & (m["split"] == split)).to_numpy())
    clients = m["client"].to_numpy()[rows].astype(np.int64)
    order = np.argsort(clients, kind="stable")
    rows, clients = rows[order], clients[order]
    cuts = np.flatnonzero(np.diff(clients)) + 1
    return {int(c[0]): r for c, r in zip(np.split(clients, cuts), np.split(rows, cuts), strict=True)
            if len(c)}  # fmt: skip


def device_rows(
    data: PreparedData, speakers: list[int], population: int, seed: int, where: Path
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, test rows) of every device. ``population`` 0: one device per client speaker.
    Otherwise each speaker's training and test clips, shuffled by ``(seed, speaker)``, are dealt
    round-robin to that speaker's devices (``allot_devices``): every device gets at least one
    training clip; a device may get no test clip."""
    train_of, test_of = _rows_by_client(data, TRAIN), _rows_by_client(data, TEST)
    none = np.zeros(0, np.int64)
    per_speaker = [(train_of.get(c, none), test_of.get(c, none)) for c in speakers]
    if population == 0:
        return per_speaker
    train_counts = [len(tr) for tr, _ in per_speaker]
    usable = sum(n > 0 for n in train_counts)
    if not len(speakers) <= population <= sum(train_counts) or usable < len(speakers):
        raise ConfigError(
            f"finetune.population={population}: {where} has {len(speakers)} client speakers with "
            f"{sum(train_counts)} training clips; use 0 (one device per speaker) or a number "
            f"from {len(speakers)} to {sum(train_counts)} (every device needs a training clip)"
        )
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for client, (train, test), k in zip(
        speakers, per_speaker, allot_devices(train_counts, population), strict=True
    ):
        rng = np.random.default_rng([seed, client])
        train, test = rng.permutation(train), rng.permutation(test)
        out.extend((np.sort(train[j::k]), np.sort(test[j::k])) for j in range(k))
    return out


class ClientPool:
    """Device ``k`` of the simulation (its Flower partition id) is the k-th device: the client
    speakers in order, each speaker's devices in turn. The device id is ``k``."""

    def __init__(self, prepared_dir: Path, population: int = 0, seed: int = 0) -> None:
        self.prepared_dir = Path(prepared_dir)
        self.data: PreparedData = load_prepared(self.prepared_dir)
        m = self.data.manifest
        speakers = sorted({int(c) for c in m.loc[m["pool"] == CLIENT, "client"].to_numpy()})
        if not speakers:
            raise CorpusError(f"{self.prepared_dir}: the prepared data has no federated clients")
        self.population = population
        self.rows = device_rows(self.data, speakers, population, seed, self.prepared_dir)
        self.ids: list[int] = speakers if population == 0 else list(range(len(self.rows)))
        self._index = {c: k for k, c in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def client_id(self, partition: int) -> int:
        if not 0 <= partition < len(self.ids):
            raise CorpusError(f"{self.prepared_dir}: no client for partition {partition}")
        return self.ids[partition]

    def device(self, client: int) -> int:
        """``client`` if it is a device of this pool (a message may name one)."""
        if client not in self._index:
            raise CorpusError(f"{self.prepared_dir}: no device {client} in this population")
        return client

    def clips(self, client: int, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """One device's features (clips, n_mels, frames) and labels for ``split`` (train/test)."""
        train, test = self.rows[self._index[client]]
        return self.data.tensors_at({TRAIN: train, TEST: test}[split])

    def counts(self, client: int) -> tuple[int, int]:
        train, test = self.rows[self._index[client]]
        return len(train), len(test)


@functools.lru_cache(maxsize=4)
def open_pool(prepared_dir: str, population: int = 0, seed: int = 0) -> ClientPool:
    """One pool per process, folder and population (a Flower client process serves many devices
    in turn)."""
    return ClientPool(Path(prepared_dir), population, seed)
