"""Server learning: the server's own SGD steps on its data after each counted round.

Federated fine-tuning here adapts a network trained on the server pool to clients whose voices
and channels the server never heard. Averaging client updates alone drifts the model toward the
clients' conditions and away from everything else: on the default corpus FedAvg raises the
client test by ~10 points while the server test falls ~6 and the share of real non-keyword speech
called ``_unknown_`` falls from ~95% to ~67% (docs/benchmarks.md). *Federated Learning with
Server Learning* (Mai, La, Zhang 2023) has the server, which holds a small dataset of its own,
take a few gradient steps on it after every aggregation; here that dataset is the server pool's
training split (what the super-network trained on; its validation and test splits stay unseen).

The paper also studies decaying the server's share over the rounds; here ``lr_decay_to`` is
where a linear decay of the server's learning rate ends in the last round (1: constant, the
default). With ``noise_mix`` > 0 that share of each batch is mixed with the server's own noise
clips, as the server's training recipe does (``components.training.augment.mix_noise``).
Simplifications: plain SGD with a fixed step count and that linear schedule;
batch-norm statistics stay frozen, as on the clients;
the steps run on every variable, whatever PVT let the clients train. Nothing a client sends or
holds changes: the upload, download and client memory figures are those of the method without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from components.config import Params, ServerLearningParams
from components.data.labels import SILENCE
from components.data.prepared import PreparedData
from components.data.splits import SERVER, TRAIN
from components.errors import CorpusError
from components.federated.training import materialize
from components.training.augment import mix_noise


class ServerLearner:
    """``steps`` SGD steps on ``(x, y)`` applied to a global model state (numpy arrays), at the
    learning rate of ``lr_at`` over ``rounds`` rounds."""

    def __init__(
        self, p: ServerLearningParams, arch: Mapping[str, Any], x: torch.Tensor,
        y: torch.Tensor, seed: int, rounds: int = 1, noise: torch.Tensor | None = None,
    ) -> None:  # fmt: skip
        if len(y) == 0:
            raise ValueError("server learning needs server training clips")
        self.p, self.arch, self.x, self.y, self.seed = p, dict(arch), x, y, seed
        self.noise = x[:0] if noise is None else noise  # noise clips for ``p.noise_mix``
        self.rounds = max(1, rounds)
        self.batches = 0

    def lr_at(self, server_round: int) -> float:
        """``lr`` in round 1, falling linearly to ``lr * lr_decay_to`` in round ``rounds`` (and
        staying there, should a run go on)."""
        progress = (min(max(server_round, 1), self.rounds) - 1) / max(self.rounds - 1, 1)
        return self.p.lr * (1.0 - (1.0 - self.p.lr_decay_to) * progress)

    def step(self, state: Mapping[str, np.ndarray], server_round: int) -> dict[str, np.ndarray]:
        """The state after the steps; batches drawn with (seed, round), so a run repeats."""
        lr = self.lr_at(server_round)
        net = materialize(self.arch, {n: torch.from_numpy(v.copy()) for n, v in state.items()})
        params = dict(net.named_parameters())
        g = torch.Generator().manual_seed(self.seed * 100_003 + server_round)
        bs = min(self.p.batch_size, len(self.y))
        for _ in range(self.p.steps):
            idx = torch.randint(0, len(self.y), (bs,), generator=g)
            x = mix_noise(self.x[idx], self.noise, self.p.noise_mix, self.p.noise_snr_db, g)
            loss = F.cross_entropy(net(x), self.y[idx])
            grads = torch.autograd.grad(loss, list(params.values()))
            with torch.no_grad():
                for p, grad in zip(params.values(), grads, strict=True):
                    p.sub_(grad, alpha=lr)
            self.batches += 1
        new = {n: t.detach().numpy().astype(np.float32) for n, t in net.state_dict().items()
               if n in state}  # fmt: skip
        return {n: new.get(n, v) for n, v in state.items()}


def server_learner(
    params: Params, data: PreparedData, prepared_dir: Path, arch: Mapping[str, Any]
) -> ServerLearner | None:
    """The stage's learner (None when ``finetune.server_learning.steps`` is 0), on the server
    pool's training clips of ``data``; a dataset without them stops here, naming the key."""
    p = params.finetune.server_learning
    if not p.steps:
        return None
    x, y = data.tensors(SERVER, TRAIN)
    if len(y) == 0:
        raise CorpusError(
            f"{prepared_dir}: finetune.server_learning.steps={p.steps} needs the server pool's "
            "training clips and there are none (set it to 0 to fine-tune without them)"
        )
    noise = x[y == data.classes.index(SILENCE)] if SILENCE in data.classes else x[:0]
    return ServerLearner(p, arch, x, y, params.base.seed, params.finetune.rounds, noise)
