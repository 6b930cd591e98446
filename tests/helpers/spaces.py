"""Small search spaces shared by the model, training, search and federated tests."""

from __future__ import annotations

import torch
from torch import nn

from components.config import FeatureParams
from components.model.space import SearchSpace, StageSpec
from components.model.supernet import SuperNet

# Real input size (40 mels x 101 frames, 12 classes); layers of 16, 16, 24, 24 channels.
SMALL_SPACE = SearchSpace(stem_stride=(2, 4), stages=(StageSpec(16, 2, 1), StageSpec(24, 2, 2)))

# The same stages with inverted residuals of hidden width up to 2x: layers of 32, 32, 48, 48.
INVERTED_SPACE = SearchSpace(stem_stride=(2, 4), stages=(StageSpec(16, 2, 1), StageSpec(24, 2, 2)),
                             block="inverted", expand=2)  # fmt: skip

# Toy input (8 mels x 12 frames, 3 classes); three layers of 16 channels (widths 0, 8, 16).
TINY_SPACE = SearchSpace(n_mels=8, frames=12, num_classes=3, stem_stride=(2, 2), width_step=8,
                         stages=(StageSpec(16, 2, 1), StageSpec(16, 1, 2)))  # fmt: skip
# The audio that makes TINY_SPACE's input: 8 mels x 12 frames of 10 ms (1,760 samples).
TINY_FEATURES = FeatureParams(clip_samples=1760, n_mels=8)


def randomized_supernet(seed: int = 0, space: SearchSpace = SMALL_SPACE) -> SuperNet:
    """A super-network with non-trivial weights and batch-norm statistics (eval mode)."""
    torch.manual_seed(seed)
    net = SuperNet(space)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    net.norm.set_stats(torch.randn(64, space.n_mels, space.frames) * 3 + 1)
    return net.eval()


# The stage tests' space: the real input size, two searchable layers of 16 channels (widths 0, 8,
# 16: nine architectures), and the supernet params section that builds it, trained briefly.
STAGE_SPACE = SearchSpace(stem_stride=(2, 4), stages=(StageSpec(16, 1, 1), StageSpec(16, 1, 2)))
STAGE_SUPERNET = {
    "stages": [{"channels": 16, "blocks": 1, "stride": 1},
               {"channels": 16, "blocks": 1, "stride": 2}],
    "block": "bypass", "width_step": 8,
    "stem_stride": [2, 4], "epochs": 1, "batch_size": 16, "recalibration_batches": 1,
    "eval_subnets": 2, "report_subnets": 2,
}  # fmt: skip
