"""Stand-alone sub-networks: compact modules with tensors sliced from the super-network."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from components.model.space import SearchSpace
from components.model.supernet import (
    BypassBlock,
    DSBlock,
    FeatureNorm,
    InvertedBlock,
    SuperNet,
    conv_bn,
    project_bn,
    with_layout,
)


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


class CompactInvertedBlock(nn.Module):
    """An inverted residual of hidden width w: ``x + project(dw(expand(x)))``, every tensor
    sliced to w hidden channels."""

    def __init__(self, channels: int, width: int, kernel: int) -> None:
        super().__init__()
        self.width = width
        self.expand = conv_bn(channels, width, 1)
        self.dw = conv_bn(width, width, kernel, groups=width)
        self.project = project_bn(width, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(self.dw(self.expand(x)))


def compact_block(space: SearchSpace, channels: int, width: int) -> nn.Module:
    if space.block == "inverted":
        return CompactInvertedBlock(channels, width, space.kernel)
    return CompactBypassBlock(channels, width, space.kernel)


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
                    layers.append(compact_block(space, c, self.widths[layer]))
                layer += 1
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c, space.num_classes)
        with_layout(self)

    @property
    def config(self) -> dict[str, Any]:
        return {"space": self.space.to_dict(), "widths": list(self.widths)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(self.stem(self.norm(x).unsqueeze(1)))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


def build_subnet(config: dict[str, Any]) -> SubNetwork:
    return SubNetwork(SearchSpace.from_dict(config["space"]), list(config["widths"]))


def _copy_sliced(dst: nn.Module, src: nn.Module) -> None:
    """Copy every parameter and buffer of ``src`` into ``dst``, keeping the first rows (output
    channels) and, of a conv weight, the first columns (input channels) ``dst`` has."""
    src_state = src.state_dict()
    sliced = {}
    for name, tensor in dst.state_dict().items():
        value = src_state[name]
        if value.dim() > 0:
            value = value[tuple(slice(0, n) for n in tensor.shape[:2])]
        sliced[name] = value.clone()
    dst.load_state_dict(sliced)


@torch.no_grad()
def _copy_into(dst: nn.Module, src: nn.Module) -> None:
    """The inverse of ``_copy_sliced``: ``src``'s tensors into the first rows/columns of
    ``dst``'s."""
    target = dst.state_dict()
    for name, value in src.state_dict().items():
        if value.dim() > 0:
            target[name][tuple(slice(0, n) for n in value.shape[:2])].copy_(value)
        else:
            target[name].copy_(value)


def _block_parts(block: nn.Module) -> list[str]:
    """The sub-modules of a block whose tensors are sliced by width."""
    if isinstance(block, CompactInvertedBlock | InvertedBlock):
        return ["expand", "dw", "project"]
    return ["dw", "pw"]


def slice_block(dst: nn.Module, src: BypassBlock | InvertedBlock) -> None:
    """A searchable block's weights into its compact form of fewer channels."""
    for part in _block_parts(dst):
        _copy_sliced(getattr(dst, part), getattr(src, part))


def implant_block(dst: BypassBlock | InvertedBlock, src: nn.Module) -> None:
    """A compact block's weights back into the first channels of its searchable block."""
    for part in _block_parts(src):
        _copy_into(getattr(dst, part), getattr(src, part))


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
                slice_block(next(body), supernet.searchable(layer))
            layer += 1
    return sub.train(supernet.training)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
