"""Server learning: the server's own SGD steps on its data after each counted round.

Federated fine-tuning here adapts a network trained on the server pool to clients whose voices
and channels the server never heard. Averaging client updates alone drifts the model toward the
clients' conditions and away from everything else: on the default corpus FedAvg raises the
client test by ~10 points while the server test falls ~6 and the share of real non-keyword speech
called ``_unknown_`` falls from ~95% to ~67% (docs/benchmarks.md). *Federated Learning with
Server Learning* (Mai, La, Zhang 2023) has the server, which holds a small dataset of its own,
take a few gradient steps on it after every aggregation; here that dataset is the server pool's
training split (what the super-network trained on; its validation and test splits stay unseen).

Simplifications: plain SGD with a fixed learning rate and step count (the paper also studies
decaying the server's share over rounds); batch-norm statistics stay frozen, as on the clients;
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
from components.data.prepared import PreparedData
from components.data.splits import SERVER, TRAIN
from components.errors import CorpusError
from components.federated.training import materialize


class ServerLearner:
    """``steps`` SGD steps on ``(x, y)`` applied to a global model state (numpy arrays)."""

    def __init__(
        self, p: ServerLearningParams, arch: Mapping[str, Any], x: torch.Tensor,
        y: torch.Tensor, seed: int,
    ) -> None:  # fmt: skip
        if len(y) == 0:
            raise ValueError("server learning needs server training clips")
        self.p, self.arch, self.x, self.y, self.seed = p, dict(arch), x, y, seed
        self.batches = 0

    def step(self, state: Mapping[str, np.ndarray], server_round: int) -> dict[str, np.ndarray]:
        """The state after the steps; batches drawn with (seed, round), so a run repeats."""
        net = materialize(self.arch, {n: torch.from_numpy(v.copy()) for n, v in state.items()})
        params = dict(net.named_parameters())
        g = torch.Generator().manual_seed(self.seed * 100_003 + server_round)
        bs = min(self.p.batch_size, len(self.y))
        for _ in range(self.p.steps):
            idx = torch.randint(0, len(self.y), (bs,), generator=g)
            loss = F.cross_entropy(net(self.x[idx]), self.y[idx])
            grads = torch.autograd.grad(loss, list(params.values()))
            with torch.no_grad():
                for p, grad in zip(params.values(), grads, strict=True):
                    p.sub_(grad, alpha=self.p.lr)
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
    return ServerLearner(p, arch, x, y, params.base.seed)
