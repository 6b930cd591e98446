"""Scoring candidates with inherited weights, and NetAdaptV2's last step: training the winner."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from components.config import SupernetParams
from components.model.evaluate import accuracy, recalibrate_batch_norm
from components.model.subnet import SubNetwork, extract_subnet
from components.model.supernet import SuperNet
from components.search.records import TrainedNetwork
from components.training.data import ServerData
from components.training.trainer import fit


class SupernetEvaluator:
    """Accuracy (%) of an architecture with the super-network's inherited weights after
    batch-norm recalibration on fixed training batches, on the held-out split (never test)."""

    def __init__(self, net: SuperNet, data: ServerData, calibration: Sequence[torch.Tensor]):
        self.net, self.data, self.calibration = net, data, calibration

    def evaluate(self, widths: Sequence[int]) -> float:
        sub = recalibrate_batch_norm(extract_subnet(self.net, list(widths)), self.calibration)
        return accuracy(sub, self.data.val_x, self.data.val_y)


def train_network(
    method: str,
    widths: list[int],
    net: SuperNet,
    recipe: SupernetParams,
    seed: int,
    data: ServerData,
    test: ServerData,
    clients: tuple[torch.Tensor, torch.Tensor],
) -> TrainedNetwork:
    """Train the discovered architecture from scratch on the server training split with the
    super-network's ``recipe`` (its ``epochs`` set by the caller); the last epoch is kept: no
    selection on validation. The input normalization is the super-network's."""
    torch.manual_seed(seed)
    model = SubNetwork(net.space, widths)
    model.norm.load_state_dict(net.norm.state_dict())
    result = fit(model, recipe, data, seed)
    model.eval()
    return TrainedNetwork(
        method, widths, model,
        val_acc=accuracy(model, data.val_x, data.val_y),
        test_acc=accuracy(model, test.val_x, test.val_y),
        client_test_acc=accuracy(model, *clients) if len(clients[1]) else float("nan"),
        seconds=result.seconds,
        history=result.module.history,
    )  # fmt: skip
