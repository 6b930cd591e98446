"""Scoring candidates with inherited weights, and NetAdaptV2's last step: training the winner
(from scratch, or on from the super-network's weights: ``search.train_from``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from components.config import SupernetParams
from components.model.evaluate import accuracy, recalibrate_batch_norm
from components.model.space import SearchSpace
from components.model.subnet import SubNetwork, extract_subnet
from components.model.supernet import SuperNet
from components.search.records import TrainedNetwork
from components.training.data import ServerData
from components.training.trainer import FitResult, fit


class SupernetEvaluator:
    """Accuracy (%) of an architecture with the super-network's inherited weights after
    batch-norm recalibration on fixed training batches, on the held-out split (never test)."""

    def __init__(self, net: SuperNet, data: ServerData, calibration: Sequence[torch.Tensor]):
        self.net, self.data, self.calibration = net, data, calibration

    def evaluate(self, widths: Sequence[int]) -> float:
        sub = recalibrate_batch_norm(extract_subnet(self.net, list(widths)), self.calibration)
        return accuracy(sub, self.data.val_x, self.data.val_y)


@dataclass
class Tuned:
    """A network trained by ``long_term_finetune``: the scored network and the phase's training
    and monitoring seconds."""

    network: TrainedNetwork
    seconds: float
    monitor_seconds: float


def scored(method: str, widths: list[int], model: SubNetwork, result: FitResult,
           data: ServerData, test: ServerData, clients: tuple[torch.Tensor, torch.Tensor],
           ) -> TrainedNetwork:  # fmt: skip
    """A trained network's accuracies: server validation, server test and every client's test
    clips (NaN without clients); ``seconds`` the training alone."""
    model.eval()
    return TrainedNetwork(
        method, widths, model,
        val_acc=accuracy(model, data.val_x, data.val_y),
        test_acc=accuracy(model, test.val_x, test.val_y),
        client_test_acc=accuracy(model, *clients) if len(clients[1]) else float("nan"),
        seconds=result.seconds,
        history=result.module.history,
    )  # fmt: skip


def train_network(
    method: str,
    widths: list[int],
    net: SuperNet,
    recipe: SupernetParams,
    seed: int,
    data: ServerData,
    test: ServerData,
    clients: tuple[torch.Tensor, torch.Tensor],
    space: SearchSpace | None = None,
) -> TrainedNetwork:
    """Train the architecture ``widths`` of ``space`` (default: the super-network's; the
    uniform baseline's is a scaled one) from scratch on the server training split with the
    super-network's ``recipe`` (its ``epochs`` set by the caller); the last epoch is kept: no
    selection on validation. The input normalization is the super-network's."""
    torch.manual_seed(seed)
    model = SubNetwork(space or net.space, widths)
    model.norm.load_state_dict(net.norm.state_dict())
    return scored(method, widths, model, fit(model, recipe, data, seed), data, test, clients)


def long_term_finetune(
    container: SuperNet,
    widths: list[int],
    recipe: SupernetParams,
    seed: int,
    data: ServerData,
    test: ServerData,
    clients: tuple[torch.Tensor, torch.Tensor],
    method: str = "netadapt_v1",
) -> Tuned:
    """NetAdapt's long-term fine-tuning: the network ``widths`` with the weights ``container``
    holds (NetAdapt v1's adapted network, or the super-network for a winner trained on from its
    inherited weights) trained on with ``recipe`` from those weights, then scored like a trained
    winner. ``container`` is not modified."""
    torch.manual_seed(seed)
    model = extract_subnet(container, widths)
    result = fit(model, recipe, data, seed)
    network = scored(method, widths, model, result, data, test, clients)
    return Tuned(network, result.seconds, result.monitor_seconds)
