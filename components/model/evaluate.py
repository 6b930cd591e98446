"""Scoring sub-networks with inherited weights: batch-norm recalibration, then accuracy."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """Re-estimate every BatchNorm's running statistics on ``batches`` (inputs only).

    Statistics gathered while training the super-network mix many widths; a sub-network needs
    its own. Uses a cumulative average (momentum None) over all batches, then returns the model in
    eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for x in batches:
        model(x)
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    return model.eval()


@torch.no_grad()
def accuracy(
    model: nn.Module, features: torch.Tensor, labels: torch.Tensor, batch: int = 512
) -> float:
    """Top-1 accuracy in percent (0-100), in eval mode."""
    model.eval()
    correct = 0
    for start in range(0, len(labels), batch):
        logits = model(features[start : start + batch])
        correct += int((logits.argmax(1) == labels[start : start + batch]).sum())
    return 100.0 * correct / max(1, len(labels))
