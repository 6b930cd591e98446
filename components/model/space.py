"""The search space: a JSON-serializable description of the network family and its sub-networks.

The network works on log-mel input in stages; within a stage every searchable block keeps the
stage's channel count, and a block's *width* of 0 removes it (NetAdaptV2's depth searched as
width). Two block families (``block``):

- ``inverted`` (the default): MobileNetV2's inverted residual, ``x + project(dw(expand(x)))``,
  whose *hidden* width is searched, up to ``expand`` times the stage's channels. Every operation
  of the block shrinks with the width, and width 0 leaves the residual alone (the identity), with
  no slice or concatenation: a block's latency falls with its width.
- ``bypass``: a depthwise-separable block (DS-CNN, Zhang et al. 2017) with NetAdaptV2's
  channel-level bypass: the width is how many of its output channels it computes, the rest pass
  their input through. Kept for comparison: its depthwise conv runs at full width whatever the
  width, and a partial width adds a slice and a concatenation, so partial widths measure slower
  than the full block on ONNX Runtime (docs/benchmarks.md).
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


BLOCKS = ("bypass", "inverted")


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
    block: str = "bypass"  # an older space (no "block" in its dict) is a bypass space
    expand: int = 1  # inverted: hidden channels (the widest width) = expand x stage channels

    def __post_init__(self) -> None:
        if self.block not in BLOCKS:
            raise ValueError(f"block {self.block!r} is not one of {', '.join(BLOCKS)}")
        if self.block == "bypass" and self.expand != 1:
            raise ValueError("expand applies to inverted blocks only")
        for c in self.layer_channels:
            if c % self.width_step:
                raise ValueError(f"layer width {c} not a multiple of {self.width_step}")

    def stage_channels(self, layer: int) -> int:
        """The residual stream's channels at searchable layer ``layer``."""
        return [s.channels for s in self.stages for _ in range(s.blocks)][layer]

    @property
    def layer_channels(self) -> list[int]:
        """The widest width of every searchable layer (block), in order: its output channels
        (bypass) or its hidden channels (inverted)."""
        return [s.channels * self.expand for s in self.stages for _ in range(s.blocks)]

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
            if space.block == "inverted":  # expand c -> kept, depthwise, project kept -> c
                macs[f"block{layer}"] = h * w * kept * (2 * c + k2)
            else:
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
        block=p.block,
        expand=p.expand if p.block == "inverted" else 1,
    )


def random_architectures(space: SearchSpace, n: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [
        [int(rng.choice(space.width_choices(i))) for i in range(space.num_layers)] for _ in range(n)
    ]
