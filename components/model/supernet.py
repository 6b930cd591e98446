"""The super-network: searchable blocks whose widths are masked per sample (NetAdaptV2's ordered
dropout, ODO), width 0 removing a block: inverted residuals with a masked hidden width, or DS-CNN
blocks with channel-level bypass (CBC)."""

from __future__ import annotations

from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from components.model.space import SearchSpace


class FeatureNorm(nn.Module):
    """Per-mel-bin standardization with statistics of the training split, kept in the model so
    that every consumer (search, federated clients, the ONNX graph) normalizes the same way."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, n_mels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_mels))
        self.register_buffer("std", torch.ones(n_mels))

    def set_stats(self, features: torch.Tensor) -> None:
        """Fit to (clips, n_mels, frames) training features."""
        self.mean.copy_(features.mean(dim=(0, 2)))
        self.std.copy_(features.std(dim=(0, 2)).clamp_min(1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean[:, None]) / self.std[:, None]


# Convolution weights in channels-last order. On CPU, PyTorch's oneDNN kernels then run the
# convolutions and batch norms of these small networks much faster, in training and inference
# (bench/layout.py); values, shapes and state-dict keys are as in the default order. Linear
# layers and buffers are unaffected; the ONNX export sees the same values.
CONV_LAYOUT = torch.channels_last

M = TypeVar("M", bound=nn.Module)


def with_layout(module: M, layout: torch.memory_format = CONV_LAYOUT) -> M:
    """``module`` with its 4-d weights and buffers in ``layout`` (in place; returned)."""
    # Module.to takes memory_format (it restrides 4-d tensors), but its typed overloads omit it
    return module.to(memory_format=layout)  # type: ignore[call-overload]


def conv_bn(
    c_in: int, c_out: int, kernel: int | tuple[int, int], stride=1, groups=1
) -> nn.Sequential:
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride, (k[0] // 2, k[1] // 2), groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class DSBlock(nn.Module):
    """Depthwise 3x3 then pointwise 1x1, each with batch norm and ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.dw = conv_bn(c_in, c_in, kernel, stride, groups=c_in)
        self.pw = conv_bn(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


def ordered_mask(widths: torch.Tensor, channels: int) -> torch.Tensor:
    """``m[b, c] = 1[c < widths[b]]``, shape (batch, channels, 1, 1): keep the first w channels."""
    idx = torch.arange(channels, device=widths.device)
    return (idx[None, :] < widths[:, None]).to(torch.float32)[:, :, None, None]


class BypassBlock(DSBlock):
    """A searchable layer: ``y = m * f(x) + (1 - m) * x`` with ``m`` the ordered mask of width w.

    Width = channels gives the plain block, width 0 the identity (the layer is removed).
    """

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__(channels, channels, kernel)
        self.channels = channels

    def forward_masked(self, x: torch.Tensor, widths: torch.Tensor | None) -> torch.Tensor:
        f = super().forward(x)
        if widths is None:
            return f
        m = ordered_mask(widths, self.channels)
        return m * f + (1.0 - m) * x


class InvertedBlock(nn.Module):
    """A searchable inverted residual (MobileNetV2): ``y = x + g * project(m * dw(expand(x)))``
    with ``m`` the ordered mask of hidden width w and ``g = [w > 0]``.

    Width = hidden gives the whole block; width 0 the identity (the residual alone; the gate is
    needed because the projection's batch norm maps zeros to its shift).
    """

    def __init__(self, channels: int, hidden: int, kernel: int) -> None:
        super().__init__()
        self.channels, self.hidden = channels, hidden
        self.expand = conv_bn(channels, hidden, 1)
        self.dw = conv_bn(hidden, hidden, kernel, groups=hidden)
        self.project = project_bn(hidden, channels)

    def forward_masked(self, x: torch.Tensor, widths: torch.Tensor | None) -> torch.Tensor:
        h = self.dw(self.expand(x))
        if widths is None:
            return x + self.project(h)
        m = ordered_mask(widths, self.hidden)
        gate = (widths > 0).to(x.dtype)[:, None, None, None]
        return x + gate * self.project(h * m)


def project_bn(c_in: int, c_out: int) -> nn.Sequential:
    """The linear bottleneck of an inverted residual: 1x1 conv and batch norm, no activation."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))


SearchableBlock = BypassBlock | InvertedBlock


class SuperNet(nn.Module):
    """All sub-networks of a ``SearchSpace`` in one set of weights.

    ``forward(x, widths)`` takes log-mel features (batch, n_mels, frames) and per-sample widths
    (batch, layers) as ints; ``widths=None`` runs the largest network.
    """

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space
        self.norm = FeatureNorm(space.n_mels)
        c = space.stages[0].channels
        self.stem = conv_bn(1, c, space.stem_kernel, space.stem_stride)
        self.transitions = nn.ModuleList()
        self.blocks = nn.ModuleList()
        for si, stage in enumerate(space.stages):
            if si > 0:
                self.transitions.append(DSBlock(c, stage.channels, space.kernel, stage.stride))
                c = stage.channels
            for _ in range(stage.blocks):
                if space.block == "inverted":
                    self.blocks.append(InvertedBlock(c, c * space.expand, space.kernel))
                else:
                    self.blocks.append(BypassBlock(c, space.kernel))
        self.head = nn.Linear(c, space.num_classes)
        with_layout(self)

    def searchable(self, layer: int) -> SearchableBlock:
        block = self.blocks[layer]
        assert isinstance(block, BypassBlock | InvertedBlock)
        return block

    def forward(self, x: torch.Tensor, widths: torch.Tensor | None = None) -> torch.Tensor:
        x = self.stem(self.norm(x).unsqueeze(1))
        layer = 0
        for si, stage in enumerate(self.space.stages):
            if si > 0:
                x = self.transitions[si - 1](x)
            for _ in range(stage.blocks):
                w = None if widths is None else widths[:, layer]
                x = self.searchable(layer).forward_masked(x, w)
                layer += 1
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


def fixed_widths(widths: list[int], batch: int) -> torch.Tensor:
    """The same architecture for every sample of a batch, as SuperNet.forward takes it."""
    return torch.tensor(widths, dtype=torch.long).expand(batch, -1)


def sample_widths(
    space: SearchSpace,
    batch: int,
    generator: torch.Generator,
    full_fraction: float,
    smallest_fraction: float,
    depth_fraction: float = 0.0,
) -> torch.Tensor:
    """Ordered-dropout widths for one batch, one row per sample (NetAdaptV2 ODO).

    The first ``full_fraction`` of the rows keep every channel (the full network trains in
    every step), the next ``smallest_fraction`` take the smallest network, the next
    ``depth_fraction`` keep a number of layers drawn uniformly from 0..L (which ones at random,
    each at a uniform non-zero width), and the rest draw each layer's width uniformly from its
    choices, so one pass trains many nested sub-networks.

    Why the depth rows: with CBC a removed layer is width 0, one choice among 5-9 per layer, so
    uniform widths almost never train a network with most layers removed (4 of 6 removed: ~1% of
    rows here), yet that is where a search at half the latency ends up. Drawing the number of
    kept layers uniformly gives every depth the same share of those rows.
    """
    n_full = round(full_fraction * batch)
    n_small = min(batch - n_full, round(smallest_fraction * batch))
    n_depth = min(batch - n_full - n_small, round(depth_fraction * batch))
    cols = []
    for layer in range(space.num_layers):
        choices = torch.tensor(space.width_choices(layer))
        picks = choices[torch.randint(len(choices), (batch,), generator=generator)]
        picks[:n_full] = space.layer_channels[layer]
        picks[n_full : n_full + n_small] = 0
        cols.append(picks)
    widths = torch.stack(cols, dim=1)
    if n_depth:
        rows = slice(n_full + n_small, n_full + n_small + n_depth)
        layers = space.num_layers
        kept = torch.randint(layers + 1, (n_depth, 1), generator=generator)
        order = torch.rand(n_depth, layers, generator=generator).argsort(dim=1).argsort(dim=1)
        nonzero = torch.stack(
            [
                torch.tensor(space.width_choices(i)[1:])[
                    torch.randint(len(space.width_choices(i)) - 1, (n_depth,), generator=generator)
                ]
                for i in range(layers)
            ],
            dim=1,
        )
        widths[rows] = torch.where(order < kept, nonzero, torch.zeros_like(nonzero))
    return widths
