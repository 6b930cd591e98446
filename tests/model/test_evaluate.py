"""Scoring with inherited weights: batch-norm recalibration and top-1 accuracy."""

import torch
from torch import nn

from components.model.evaluate import accuracy, recalibrate_batch_norm
from components.model.subnet import extract_subnet
from tests.helpers.spaces import SMALL_SPACE as SPACE
from tests.helpers.spaces import randomized_supernet


def test_recalibration_sets_batch_statistics():
    net = randomized_supernet()
    sub = extract_subnet(net, [16, 16, 24, 24])
    batches = [torch.randn(32, SPACE.n_mels, SPACE.frames) for _ in range(3)]
    recalibrate_batch_norm(sub, batches)
    assert not sub.training
    stem_bn = sub.stem[1]
    with torch.no_grad():
        pre = torch.cat([sub.stem[0](sub.norm(b).unsqueeze(1)) for b in batches])
    assert torch.allclose(stem_bn.running_mean, pre.mean(dim=(0, 2, 3)), atol=1e-5)
    assert stem_bn.momentum == 0.1  # restored


class Lookup(nn.Module):
    """Logits are the input itself: the label predicted for a row is its argmax."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_accuracy_is_percent_correct_over_all_batches():
    x = torch.eye(3)[[0, 1, 2, 0, 1]]  # predicts 0, 1, 2, 0, 1
    y = torch.tensor([0, 1, 0, 0, 2])  # three right
    assert accuracy(Lookup(), x, y, batch=2) == 60.0
    assert accuracy(Lookup(), x[:0], y[:0]) == 0.0  # no clips: 0, not a division by zero
