"""The search space: a JSON-serializable description of the network family and its sub-networks.

The family is a depthwise-separable CNN over log-mel input (DS-CNN, Zhang et al. 2017) in stages.
Within a stage every block keeps the stage's channel count, so each block can carry NetAdaptV2's
channel-level bypass: a block's *width* is how many of its output channels it computes, the rest
pass their input through, and width 0 removes the block (depth is searched as width).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from components.config import SupernetParams


@dataclass(frozen=True)
class StageSpec:
    channels: int
    blocks: int
    stride: int = 1  # of the transition block that enters this stage (the first stage: the stem's)


@dataclass(frozen=True)
class SearchSpace:
    n_mels: int = 40
    frames: int = 101
    num_classes: int = 12
    stem_kernel: tuple[int, int] = (5, 3)
    stem_stride: tuple[int, int] = (2, 2)
    kernel: int = 3
    width_step: int = 8
    stages: tuple[StageSpec, ...] = field(
        default_factory=lambda: (StageSpec(32, 3, 1), StageSpec(64, 3, 2))
    )

    def __post_init__(self) -> None:
        for s in self.stages:
            if s.channels % self.width_step:
                raise ValueError(f"stage channels {s.channels} not a multiple of {self.width_step}")

    @property
    def layer_channels(self) -> list[int]:
        """Channel count of every searchable layer (block), in order."""
        return [s.channels for s in self.stages for _ in range(s.blocks)]

    @property
    def num_layers(self) -> int:
        return len(self.layer_channels)

    def width_choices(self, layer: int) -> list[int]:
        """Allowed widths of a layer: 0 (removed) to its channels, in hardware-friendly steps."""
        return list(range(0, self.layer_channels[layer] + 1, self.width_step))

    def largest(self) -> list[int]:
        return list(self.layer_channels)

    def smallest(self) -> list[int]:
        return [0] * self.num_layers

    def validate(self, widths: list[int]) -> list[int]:
        if len(widths) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} widths, got {len(widths)}: {widths}")
        for i, w in enumerate(widths):
            if w not in self.width_choices(i):
                raise ValueError(f"layer {i}: width {w} not in {self.width_choices(i)}")
        return [int(w) for w in widths]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stem_kernel"], d["stem_stride"] = list(self.stem_kernel), list(self.stem_stride)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchSpace:
        d = dict(d)
        d["stages"] = tuple(StageSpec(**s) for s in d.get("stages", ()))
        for key in ("stem_kernel", "stem_stride"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


def _out(n: int, stride: int) -> int:
    return (n - 1) // stride + 1  # 'same' padding


def layer_macs(space: SearchSpace, widths: list[int]) -> dict[str, int]:
    """Multiply-accumulates of each part of a sub-network at batch 1 (conv and linear layers)."""
    widths = space.validate(widths)
    h, w = space.n_mels, space.frames
    h, w = _out(h, space.stem_stride[0]), _out(w, space.stem_stride[1])
    c = space.stages[0].channels
    k2 = space.kernel * space.kernel
    macs = {"stem": h * w * c * space.stem_kernel[0] * space.stem_kernel[1]}
    layer = 0
    for si, stage in enumerate(space.stages):
        if si > 0:  # transition block: strided depthwise + pointwise to the new width
            h, w = _out(h, stage.stride), _out(w, stage.stride)
            macs[f"transition{si}"] = h * w * (c * k2 + c * stage.channels)
            c = stage.channels
        for _ in range(stage.blocks):
            kept = widths[layer]
            macs[f"block{layer}"] = 0 if kept == 0 else h * w * (c * k2 + c * kept)
            layer += 1
    macs["head"] = c * space.num_classes
    return macs


def count_macs(space: SearchSpace, widths: list[int]) -> int:
    return sum(layer_macs(space, widths).values())


def space_from_params(p: SupernetParams, n_mels: int, frames: int, num_classes: int) -> SearchSpace:
    stages = tuple(StageSpec(s.channels, s.blocks, s.stride) for s in p.stages)
    return SearchSpace(
        n_mels=n_mels,
        frames=frames,
        num_classes=num_classes,
        stem_stride=p.stem_stride,
        width_step=p.width_step,
        stages=stages,
    )


def random_architectures(space: SearchSpace, n: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [
        [int(rng.choice(space.width_choices(i))) for i in range(space.num_layers)] for _ in range(n)
    ]
