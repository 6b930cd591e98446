"""Stand-alone sub-networks: compact modules with tensors sliced from the super-network."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from components.model.space import SearchSpace
from components.model.supernet import DSBlock, FeatureNorm, SuperNet, conv_bn


class CompactBypassBlock(nn.Module):
    """A block of width w < C computes only w output channels; channels w.. are its input."""

    def __init__(self, channels: int, width: int, kernel: int) -> None:
        super().__init__()
        self.width = width
        self.dw = conv_bn(channels, channels, kernel, groups=channels)
        self.pw = conv_bn(channels, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.pw(self.dw(x))
        return torch.cat([f, x[:, self.width :]], dim=1) if f.shape[1] < x.shape[1] else f


class SubNetwork(nn.Module):
    """One architecture of the space with physically fewer parameters: no masks, no dead weights.

    Built from the plain dict ``{"space": ..., "widths": [...]}`` (``config``), so an architecture
    round-trips through JSON. Width-0 layers are absent.
    """

    def __init__(self, space: SearchSpace, widths: list[int]) -> None:
        super().__init__()
        self.space = space
        self.widths = space.validate(widths)
        self.norm = FeatureNorm(space.n_mels)
        c = space.stages[0].channels
        self.stem = conv_bn(1, c, space.stem_kernel, space.stem_stride)
        layers: list[nn.Module] = []
        layer = 0
        for si, stage in enumerate(space.stages):
            if si > 0:
                layers.append(DSBlock(c, stage.channels, space.kernel, stage.stride))
                c = stage.channels
            for _ in range(stage.blocks):
                if self.widths[layer] > 0:
                    layers.append(CompactBypassBlock(c, self.widths[layer], space.kernel))
                layer += 1
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c, space.num_classes)

    @property
    def config(self) -> dict[str, Any]:
        return {"space": self.space.to_dict(), "widths": list(self.widths)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(self.stem(self.norm(x).unsqueeze(1)))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


def build_subnet(config: dict[str, Any]) -> SubNetwork:
    return SubNetwork(SearchSpace.from_dict(config["space"]), list(config["widths"]))


def _copy_sliced(dst: nn.Module, src: nn.Module, out_channels: int | None = None) -> None:
    """Copy every parameter and buffer of ``src`` into ``dst``, keeping the first output rows."""
    src_state = src.state_dict()
    sliced = {}
    for name, tensor in dst.state_dict().items():
        value = src_state[name]
        if out_channels is not None and value.dim() > 0 and value.shape != tensor.shape:
            value = value[:out_channels]
        sliced[name] = value.clone()
    dst.load_state_dict(sliced)


@torch.no_grad()
def extract_subnet(supernet: SuperNet, widths: list[int]) -> SubNetwork:
    """The sub-network ``widths`` with the super-network's weights (batch-norm stats included).

    In eval mode it gives the same outputs as ``supernet(x, fixed_widths(widths, batch))``.
    """
    sub = SubNetwork(supernet.space, widths)
    sub.norm.load_state_dict(supernet.norm.state_dict())
    sub.stem.load_state_dict(supernet.stem.state_dict())
    sub.head.load_state_dict(supernet.head.state_dict())
    body = iter(sub.body)
    layer = 0
    for si, stage in enumerate(supernet.space.stages):
        if si > 0:
            next(body).load_state_dict(supernet.transitions[si - 1].state_dict())
        for _ in range(stage.blocks):
            w = sub.widths[layer]
            if w > 0:
                block, source = next(body), supernet.bypass_block(layer)
                assert isinstance(block, CompactBypassBlock)
                _copy_sliced(block.dw, source.dw)
                _copy_sliced(block.pw, source.pw, out_channels=w)
            layer += 1
    return sub.train(supernet.training)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
