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
convolution. The inner sums transform real samples, so ``A[N1 - k1]`` is the conjugate of
``A[k1]``: the first step computes ``N1`` real outputs per group (the real parts of
``k1 <= N1 / 2``, the imaginary parts of ``0 < k1 < N1 / 2``) instead of ``2 N1``, and the
second step's groups are the pairs ``(m, N1 - m)``, ``m = 0 .. N1 // 2``: both read the same
``2 N2`` channels (``A[m]`` for every ``n2``), the conjugate folded into the weights of the
``N1 - m`` rows (the pair of ``m = 0``, and of ``m = N1 / 2`` for even ``N1``, is one ``k1``:
its other rows and its zero imaginary part have zero weight). For the default 400-point window
and 10 ms hop (``N1 = 25``, ``N2 = 16``) that is 2.3 M multiply-adds per second of audio instead
of the 15 M of one convolution with the whole windowed DFT basis, for the same result up to
float32 rounding. Where ``N2`` cannot divide both the window and the hop, the single convolution
is used.

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
    real outputs of ``N1`` taps per group), ``(N1 // 2 + 1) * 4 * nk2 * 2 * N2`` in the second
    (per pair of ``k1``, the real and imaginary parts of ``nk2`` bins each from ``2 * N2``
    inputs)."""
    best, best_cost = None, 2 * num_bins * n_fft
    for n2 in range(2, math.gcd(n_fft, hop) + 1):
        if n_fft % n2 or hop % n2 or n_fft // n2 < 2:
            continue
        n1 = n_fft // n2
        nk2 = -(-num_bins // n1)
        cost = n_fft * n1 + (n1 // 2 + 1) * 8 * nk2 * n2
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
            self.n1 = self.n2 = self.nk2 = self.pairs = 0
            return
        self.n1, self.n2 = split
        self.nk2 = -(-(last + 1) // self.n1)
        self.pairs = self.n1 // 2 + 1  # m = 0 .. N1 // 2, the second step's groups
        m = torch.arange(self.pairs)
        # the second step leaves, per pair m, the bins k1 + N1 * k2 of k1 = m, then of
        # k1 = N1 - m, k2 = 0 .. nk2 - 1: the filterbank's rows in that order (zero weight for the
        # pair's missing second k1 and for bins past the last one used)
        k1 = torch.stack([m, self.n1 - m], dim=1)  # (pair, which)
        single = (m == 0) | (2 * m == self.n1)
        k = k1[:, :, None] + self.n1 * torch.arange(self.nk2)[None, None, :]  # (pair, which, k2)
        rows = torch.where(single[:, None, None] & (torch.arange(2)[None, :, None] == 1),
                           full.shape[0], k).clamp(max=full.shape[0])  # fmt: skip
        padded = torch.cat([full, torch.zeros(1, full.shape[1])])  # row n_fft // 2 + 1: zeros
        self.register_buffer("filterbank", padded[rows.flatten()].T.contiguous())
        # first-step channels come out per group n2 as the real parts of k1 = 0 .. N1 // 2, then
        # the imaginary parts of k1 = 1 .. (N1 - 1) // 2 (N1 channels); pair m reads
        # [re A[m]; im A[m]] of every n2, its real part again where the imaginary one is zero
        imag = torch.where(single, m, self.n1 // 2 + m)
        channel = torch.stack([m, imag], dim=1)  # (pair, re/im)
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
        """Per pair ``m``: for k1 = m, then k1 = N1 - m, the rotation by
        e^(-2 pi i n2 (k1 + N1 k2) / N) summed over ``n2``, as real rows [re; im] per k2 over
        the inputs [re A[m]; im A[m]], shape (pairs * 2 * 2 * nk2, 2 * N2, 1). ``A[N1 - m]`` is
        the conjugate of ``A[m]``; a zero imaginary part, and the second k1 of a pair that has
        one, get zero weight."""
        m = torch.arange(self.pairs, dtype=torch.int64, device=device)[:, None]
        which = torch.arange(2, dtype=torch.int64, device=device)[None, :]
        k1 = torch.where(which == 0, m, self.n1 - m)  # (pair, which)
        single = (m == 0) | (2 * m == self.n1)
        sign = torch.where(which == 0, 1.0, -1.0).to(torch.float64)  # conjugate for N1 - m
        sign = torch.where(single, 0.0, sign)[:, :, None, None]  # no imaginary part
        keep = ((which == 0) | ~single).to(torch.float64)[:, :, None, None]
        k2 = torch.arange(self.nk2, dtype=torch.int64, device=device)[None, None, :, None]
        n2 = torch.arange(self.n2, dtype=torch.int64, device=device)[None, None, None, :]
        phase = torch.remainder(n2 * (k1[:, :, None, None] + self.n1 * k2), self.n_fft)
        phase = phase.to(torch.float64) * (2.0 * math.pi / self.n_fft)  # (pair, which, k2, n2)
        cos, sin = torch.cos(phase), torch.sin(phase)
        real = torch.cat([cos, sin * sign], dim=3) * keep  # re X = sum re A cos + im A sin
        imag = torch.cat([-sin, cos * sign], dim=3) * keep  # im X = sum im A cos - re A sin
        rows = torch.stack([real, imag], dim=2)  # (pair, which, re/im, k2, 2 * n2)
        return rows.reshape(self.pairs * 4 * self.nk2, 2 * self.n2, 1).to(torch.float32)

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
            second = F.conv1d(first, self.second_step_weights(audio.device), groups=self.pairs)
            spec = second.reshape(batch, 2 * self.pairs, 2, self.nk2, self.frames)  # re/im: axis 2
            power = (spec * spec).sum(2).reshape(batch, 2 * self.pairs * self.nk2, self.frames)
        return torch.log(torch.matmul(self.filterbank, power) + LOG_FLOOR)
