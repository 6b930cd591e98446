"""The training log-mel frontend rewritten for the ONNX graph: the same numbers, fewer operations.

``LogMelFrontend`` uses ``torch.stft``, which exports to ONNX's ``STFT`` operator. ONNX Runtime
builds that operator's DFT weights from an unreduced float32 phase, so a 480-point transform has
relative errors near 1e-4 (onnxruntime issue 16163, PR 32457); measured here, that moved log-mel
values by up to 0.07 and class scores by 2e-3, and the operator ran 8-13x slower than this module.

``ConvLogMelFrontend`` computes the same centered, reflect-padded, periodic-Hann-windowed power
spectrum, keeps only the frequency bins the mel filters use (the others have zero weight, so the
result is unchanged), then applies the training filterbank and log floor. The transform is a
two-step (Cooley-Tukey) DFT written as two grouped convolutions: with ``n_fft = N1 * N2`` and
``N2`` dividing the hop, sample ``n = N2 * n1 + n2`` of a frame is row ``n1``, column ``n2`` of the
audio laid out in rows of ``N2``, so

    X[k1 + N1 k2] = sum_n2 e^(-2 pi i n2 (k1 + N1 k2) / N) sum_n1 w[n] x[n] e^(-2 pi i n1 k1 / N1)

The inner sums (a windowed ``N1``-point DFT per ``n2``) are one strided convolution over the rows
with ``N2`` groups (the frames come from the stride: no framing op), the outer ones a 1x1
convolution with ``N1`` groups. The inner sums transform real samples, so ``A[N1 - k1]`` is the
conjugate of ``A[k1]``: the first step computes ``N1`` real outputs per group (the real parts of
``k1 <= N1 / 2``, the imaginary parts of ``0 < k1 < N1 / 2``) instead of ``2 N1``, and the channel
gather between the steps hands the mirrored ``k1`` the same channels, the sign of their imaginary
part folded into the second step's weights. For the default 480-point window and 10 ms hop
(``N1 = 30``, ``N2 = 16``) that is 3.0 M multiply-adds per second of audio instead of the 22 M of
one convolution with the whole windowed DFT basis, for the same result up to float32 rounding.
Where ``N2`` cannot divide both the window and the hop, the single convolution is used.

The DFT weights are computed inside the graph from index ranges (phases reduced exactly in
integers, cosines in float64, then rounded to float32): ONNX Runtime folds them into constants when
the session loads, and the file does not carry them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from components.config import FeatureParams
from components.features import LOG_FLOOR, LogMelFrontend, num_frames


def windowed_dft_basis(
    n_fft: int, first_bin: int, num_bins: int, device: torch.device
) -> torch.Tensor:
    """Rows ``[cos; -sin]`` of the periodic-Hann-windowed DFT for ``num_bins`` bins from
    ``first_bin``, shape (2 * num_bins, n_fft), float32 rounded from float64."""
    k = torch.arange(first_bin, first_bin + num_bins, dtype=torch.int64, device=device)[:, None]
    n = torch.arange(n_fft, dtype=torch.int64, device=device)[None, :]
    step = 2.0 * math.pi / n_fft
    phase = torch.remainder(k * n, n_fft).to(torch.float64) * step
    window = hann(n, n_fft)
    return torch.cat([torch.cos(phase) * window, -torch.sin(phase) * window]).to(torch.float32)


def hann(n: torch.Tensor, n_fft: int) -> torch.Tensor:
    """The periodic Hann window (``torch.hann_window``) at integer positions ``n``, float64."""
    return 0.5 - 0.5 * torch.cos(n.to(torch.float64) * (2.0 * math.pi / n_fft))


def factorization(n_fft: int, hop: int, num_bins: int) -> tuple[int, int] | None:
    """``(N1, N2)`` with ``N1 * N2 = n_fft`` and ``N2`` dividing ``hop`` that needs the fewest
    multiply-adds per frame for ``num_bins`` bins (from bin 0), or None when no such split beats
    the single convolution (``2 * num_bins * n_fft``): ``n_fft * N1`` in the first step (``N1``
    real outputs of ``N1`` taps per group), ``4 * N2`` per bin computed in the second."""
    best, best_cost = None, 2 * num_bins * n_fft
    for n2 in range(2, math.gcd(n_fft, hop) + 1):
        if n_fft % n2 or hop % n2 or n_fft // n2 < 2:
            continue
        n1 = n_fft // n2
        nk2 = -(-num_bins // n1)
        cost = n_fft * n1 + 4 * n2 * n1 * nk2
        if cost < best_cost:
            best, best_cost = (n1, n2), cost
    return best


class ConvLogMelFrontend(nn.Module):
    """Raw audio (batch, samples) -> log-mel (batch, n_mels, frames), equal to ``LogMelFrontend``
    up to float32 rounding, built from Pad, Conv, Gather, Mul, Add, MatMul, Log and the ops that
    compute the constant DFT weights."""

    filterbank: torch.Tensor
    order: torch.Tensor

    def __init__(self, cfg: FeatureParams, factorize: bool = True) -> None:
        super().__init__()
        full = LogMelFrontend(cfg).filterbank  # (n_fft // 2 + 1, n_mels)
        used = torch.nonzero(full.sum(dim=1) > 0).flatten()
        self.n_fft = cfg.n_fft
        self.hop_length = cfg.hop_length
        self.frames = num_frames(cfg)
        last = int(used.max())
        split = factorization(cfg.n_fft, cfg.hop_length, last + 1) if factorize else None
        if split is None:  # one convolution with the windowed DFT basis of the bins used
            self.first_bin = int(used.min())
            self.num_bins = last + 1 - self.first_bin
            fb = full[self.first_bin : self.first_bin + self.num_bins].contiguous()
            self.register_buffer("filterbank", fb.T.contiguous())  # (n_mels, bins)
            self.register_buffer("order", torch.zeros(0, dtype=torch.int64))
            self.n1 = self.n2 = self.nk2 = 0
            return
        self.n1, self.n2 = split
        self.nk2 = -(-(last + 1) // self.n1)
        # the filterbank's rows in the order the second step leaves the bins: k1 * nk2 + k2 holds
        # bin k1 + N1 * k2 (bins past the last used one have zero weight)
        k = torch.arange(self.n1)[:, None] + self.n1 * torch.arange(self.nk2)[None, :]
        padded = torch.cat([full, torch.zeros(self.n1 * self.nk2, full.shape[1])])
        self.register_buffer("filterbank", padded[k.flatten()].T.contiguous())  # (n_mels, bins)
        # first-step channels come out per group n2 as the real parts of k1 = 0 .. N1 // 2, then
        # the imaginary parts of k1 = 1 .. (N1 - 1) // 2 (N1 channels); the second step's groups
        # need them per k1 as [re/im][n2], k1 > N1 / 2 reading its mirror N1 - k1, and a k1 whose
        # imaginary part is zero (0, N1 / 2) reading its real part there (with zero weight)
        mirror = torch.minimum(torch.arange(self.n1), self.n1 - torch.arange(self.n1))
        has_imag = (mirror > 0) & (2 * mirror < self.n1)
        imag = torch.where(has_imag, self.n1 // 2 + mirror, mirror)
        channel = torch.stack([mirror, imag], dim=1)  # (k1, re/im)
        source = channel[:, :, None] + self.n1 * torch.arange(self.n2)[None, None, :]
        self.register_buffer("order", source.flatten().contiguous())

    def first_step_weights(self, device: torch.device) -> torch.Tensor:
        """Per group ``n2``: rows cos(2 pi n1 k1 / N1) * w[N2 n1 + n2] for k1 = 0 .. N1 // 2,
        then -sin(...) * w[...] for k1 = 1 .. (N1 - 1) // 2, over taps ``n1``, shape
        (N2 * N1, 1, N1)."""
        n1 = torch.arange(self.n1, dtype=torch.int64, device=device)
        k1 = torch.cat([n1[: self.n1 // 2 + 1], n1[1 : (self.n1 + 1) // 2]])
        phase = torch.remainder(k1[:, None] * n1[None, :], self.n1).to(torch.float64)
        phase = phase * (2.0 * math.pi / self.n1)  # (N1 outputs, n1)
        real = torch.arange(self.n1, device=device)[:, None] <= self.n1 // 2
        rows = torch.where(real, torch.cos(phase), -torch.sin(phase))
        n2 = torch.arange(self.n2, dtype=torch.int64, device=device)
        window = hann(self.n2 * n1[None, :] + n2[:, None], self.n_fft)[:, None, :]  # (n2, 1, n1)
        return (rows[None] * window).reshape(self.n2 * self.n1, 1, self.n1).to(torch.float32)

    def second_step_weights(self, device: torch.device) -> torch.Tensor:
        """Per group ``k1``: the rotation by e^(-2 pi i n2 (k1 + N1 k2) / N) summed over ``n2``,
        as real rows [re; im] over inputs [re; im], shape (N1 * 2 * nk2, 2 * N2, 1). The input's
        imaginary part is its mirror's: negated for k1 > N1 / 2, zero for k1 = 0 and N1 / 2."""
        k1 = torch.arange(self.n1, dtype=torch.int64, device=device)
        k2 = torch.arange(self.nk2, dtype=torch.int64, device=device)[None, :, None]
        n2 = torch.arange(self.n2, dtype=torch.int64, device=device)[None, None, :]
        mirror = torch.minimum(k1, self.n1 - k1)
        sign = torch.where(k1 > mirror, -1.0, 1.0).to(torch.float64)
        sign = torch.where((mirror > 0) & (2 * mirror < self.n1), sign, torch.zeros_like(sign))
        sign = sign[:, None, None]
        k1 = k1[:, None, None]
        phase = torch.remainder(n2 * (k1 + self.n1 * k2), self.n_fft).to(torch.float64)
        phase = phase * (2.0 * math.pi / self.n_fft)  # (k1, k2, n2)
        cos, sin = torch.cos(phase), torch.sin(phase)
        real = torch.cat([cos, sin * sign], dim=2)  # re X = sum re A cos + im A sin
        imag = torch.cat([-sin, cos * sign], dim=2)  # im X = sum im A cos - re A sin
        rows = torch.stack([real, imag], dim=1)  # (k1, 2, k2, 2 * n2)
        return rows.reshape(self.n1 * 2 * self.nk2, 2 * self.n2, 1).to(torch.float32)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        half = self.n_fft // 2
        x = F.pad(audio.unsqueeze(1), (half, half), mode="reflect")  # (batch, 1, samples)
        if not self.n1:
            bins = self.num_bins
            basis = windowed_dft_basis(self.n_fft, self.first_bin, bins, audio.device)
            spec = F.conv1d(x, basis[:, None, :], stride=self.hop_length)  # (batch, 2*bins, frames)
            re, im = spec[:, :bins], spec[:, bins:]
            power = re * re + im * im  # (batch, bins, frames)
        else:
            batch, rows = x.shape[0], x.shape[2] // self.n2
            grid = x[:, 0, : rows * self.n2].reshape(batch, rows, self.n2).transpose(1, 2)
            first = F.conv1d(grid, self.first_step_weights(audio.device),
                             stride=self.hop_length // self.n2, groups=self.n2)  # fmt: skip
            first = torch.index_select(first[..., : self.frames], 1, self.order)
            second = F.conv1d(first, self.second_step_weights(audio.device), groups=self.n1)
            spec = second.reshape(batch, self.n1, 2, self.nk2, self.frames)  # [re/im] on axis 2
            power = (spec * spec).sum(2).reshape(batch, self.n1 * self.nk2, self.frames)
        return torch.log(torch.matmul(self.filterbank, power) + LOG_FLOOR)
