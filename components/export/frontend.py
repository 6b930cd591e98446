"""The training log-mel frontend rewritten for the ONNX graph: the same numbers, exact DFT weights.

``LogMelFrontend`` uses ``torch.stft``, which exports to ONNX's ``STFT`` operator. ONNX Runtime
builds that operator's DFT weights from an unreduced float32 phase, so a 480-point transform has
relative errors near 1e-4 (onnxruntime issue 16163, PR 32457); measured here, that moved log-mel
values by up to 0.07 and class scores by 2e-3, and the operator ran 13x slower than this module.

This module computes the same centered, reflect-padded, Hann-windowed power spectrum as one strided
``Conv1d`` whose kernels are the windowed DFT basis, keeps only the frequency bins the mel filters
use (the others have zero weight, so the result is unchanged), then applies the training
filterbank and log floor. The basis is computed inside the graph from index ranges (phase reduced
exactly in integers, cosines in float64, then rounded to float32): ONNX Runtime folds it into a
constant when the session loads, and the file does not carry ~0.9 MB of cosines.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from components.config import FeatureParams
from components.features import LOG_FLOOR, LogMelFrontend


def windowed_dft_basis(
    n_fft: int, first_bin: int, num_bins: int, device: torch.device
) -> torch.Tensor:
    """Rows ``[cos; -sin]`` of the periodic-Hann-windowed DFT for ``num_bins`` bins from
    ``first_bin``, shape (2 * num_bins, n_fft), float32 rounded from float64."""
    k = torch.arange(first_bin, first_bin + num_bins, dtype=torch.int64, device=device)[:, None]
    n = torch.arange(n_fft, dtype=torch.int64, device=device)[None, :]
    step = 2.0 * math.pi / n_fft
    phase = torch.remainder(k * n, n_fft).to(torch.float64) * step
    window = 0.5 - 0.5 * torch.cos(n.to(torch.float64) * step)  # torch.hann_window(periodic)
    return torch.cat([torch.cos(phase) * window, -torch.sin(phase) * window]).to(torch.float32)


class ConvLogMelFrontend(nn.Module):
    """Raw audio (batch, samples) -> log-mel (batch, n_mels, frames), equal to ``LogMelFrontend``
    up to float32 rounding, built only from Pad, Conv, Mul, Add, MatMul, Log and the ops that
    compute the constant DFT basis."""

    filterbank: torch.Tensor

    def __init__(self, cfg: FeatureParams) -> None:
        super().__init__()
        full = LogMelFrontend(cfg).filterbank  # (n_fft // 2 + 1, n_mels)
        used = torch.nonzero(full.sum(dim=1) > 0).flatten()
        self.first_bin = int(used.min())
        self.num_bins = int(used.max()) + 1 - self.first_bin
        self.n_fft = cfg.n_fft
        self.hop_length = cfg.hop_length
        fb = full[self.first_bin : self.first_bin + self.num_bins].contiguous()
        self.register_buffer("filterbank", fb)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        half = self.n_fft // 2
        x = F.pad(audio.unsqueeze(1), (half, half), mode="reflect")
        basis = windowed_dft_basis(self.n_fft, self.first_bin, self.num_bins, audio.device)
        spec = F.conv1d(x, basis[:, None, :], stride=self.hop_length)  # (batch, 2*bins, frames)
        re, im = spec[:, : self.num_bins], spec[:, self.num_bins :]
        power = re * re + im * im
        mel = torch.matmul(power.transpose(1, 2), self.filterbank).transpose(1, 2)
        return torch.log(mel + LOG_FLOOR)
