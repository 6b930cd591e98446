"""Online Model Compression: per-variable affine quantization of weight tensors, bit-packed.

Our reading of OMC (Yang et al., 2022): every compressed variable carries its own transform, an
offset and a scale chosen for that tensor, so ``w ~= offset + scale * q`` with integer codes
``q in [0, 2**bits - 1]``. ``minmax`` takes the tensor's range (no clipping: the worst-case error is
half a step); ``mse`` also tries ranges shrunk towards the middle and keeps the one with the least
squared reconstruction error. Stochastic rounding (``q = floor(x + u)``, ``u ~ U[0, 1)``) makes the
stored value unbiased, so an update smaller than one step still moves the weight in expectation:
that matters because the client recompresses after every optimizer step and keeps no fp32 copy.
Codes of fewer than 8 bits are packed densely (``bits`` bits each), in memory and on the wire.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

MAX_BITS = 8
_MSE_SHRINKS = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5)


@dataclass(frozen=True)
class QuantizedTensor:
    """A variable as the OMC client stores and sends it: packed codes plus its own transform."""

    codes: torch.Tensor  # uint8, packed: ceil(numel * bits / 8) bytes
    scale: float
    offset: float
    bits: int
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes held: the packed codes and the two float32 transform values."""
        return int(self.codes.numel()) + 8


def packed_length(numel: int, bits: int) -> int:
    return (numel * bits + 7) // 8


def pack_bits(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack integer codes (< 2**bits) into bytes, most significant bit first."""
    codes = codes.reshape(-1).to(torch.uint8)
    if bits == 8:
        return codes.clone()
    shifts = torch.arange(bits - 1, -1, -1, dtype=torch.uint8)
    planes = ((codes[:, None] >> shifts) & 1).reshape(-1)
    pad = (-planes.numel()) % 8
    if pad:
        planes = torch.cat([planes, planes.new_zeros(pad)])
    weights = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)
    return (planes.reshape(-1, 8) * weights).sum(1, dtype=torch.int32).to(torch.uint8)


def unpack_bits(packed: torch.Tensor, bits: int, numel: int) -> torch.Tensor:
    """Inverse of ``pack_bits``: ``numel`` codes as int64."""
    if bits == 8:
        return packed[:numel].to(torch.int64)
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8)
    planes = ((packed[:, None] >> shifts) & 1).reshape(-1)[: numel * bits].to(torch.int64)
    weights = 2 ** torch.arange(bits - 1, -1, -1, dtype=torch.int64)
    return (planes.reshape(numel, bits) * weights).sum(1)


def _codes(
    w: torch.Tensor, lo: float, scale: float, levels: int, generator: torch.Generator | None
) -> torch.Tensor:
    x = (w - lo) / scale
    if generator is None:
        q = torch.round(x)
    else:
        q = torch.floor(x + torch.rand(x.shape, generator=generator, dtype=x.dtype))
    return q.clamp_(0, levels)


def _range(w: torch.Tensor, bits: int, transform: str) -> tuple[float, float]:
    lo, hi = float(w.min()), float(w.max())
    if transform == "minmax" or hi <= lo:
        return lo, hi
    levels = 2**bits - 1
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    best, best_err = (lo, hi), float("inf")
    for shrink in _MSE_SHRINKS:
        a, b = mid - shrink * half, mid + shrink * half
        scale = (b - a) / levels
        err = float(((a + _codes(w, a, scale, levels, None) * scale - w) ** 2).sum())
        if err < best_err:
            best, best_err = (a, b), err
    return best


def quantize(
    w: torch.Tensor,
    bits: int,
    transform: str = "minmax",
    generator: torch.Generator | None = None,
) -> QuantizedTensor:
    """Compress one variable; ``generator`` given = stochastic rounding, else round to nearest."""
    if not 1 <= bits <= MAX_BITS:
        raise ValueError(f"bits must be in 1..{MAX_BITS}, got {bits}")
    if transform not in ("minmax", "mse"):
        raise ValueError(f"unknown transform {transform!r}")
    w = w.detach().to(torch.float32)
    flat = w.reshape(-1)
    lo, hi = _range(flat, bits, transform)
    levels = 2**bits - 1
    # float32 transform values: what is stored and sent, so the client and server agree exactly
    scale = _f32((hi - lo) / levels) if hi > lo else 1.0
    lo = _f32(lo)
    q = _codes(flat, lo, scale, levels, generator)
    return QuantizedTensor(pack_bits(q.to(torch.uint8), bits), scale, lo, bits, tuple(w.shape))


def _f32(x: float) -> float:
    return float(torch.tensor(x, dtype=torch.float32))


def dequantize(qt: QuantizedTensor) -> torch.Tensor:
    """A fresh float32 tensor with the variable's value (the caller drops it after use)."""
    q = unpack_bits(qt.codes, qt.bits, qt.numel).to(torch.float32)
    scale = torch.tensor(qt.scale, dtype=torch.float32)
    offset = torch.tensor(qt.offset, dtype=torch.float32)
    return (offset + q * scale).reshape(qt.shape)


def is_weight_matrix(shape: tuple[int, ...]) -> bool:
    """OMC compresses weight matrices and convolution kernels only (biases and norms stay float)."""
    return len(shape) >= 2


def choose_compressed(shapes: dict[str, tuple[int, ...]], fraction: float) -> frozenset[str]:
    """The weight matrices kept compressed: the largest ``fraction`` of them (by count), since
    that is where the bytes are. Ties keep the model's order."""
    weights = [name for name, shape in shapes.items() if is_weight_matrix(shape)]
    k = round(fraction * len(weights))
    ranked = sorted(weights, key=lambda n: -_numel(shapes[n]))
    return frozenset(ranked[:k])


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n
