"""Log-mel frontend in plain torch: training features now, the ONNX graph's own frontend later."""

from __future__ import annotations

import math

import torch
from torch import nn

from components.config import FeatureParams

LOG_FLOOR = 1e-6


def hz_to_mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(
    n_freqs: int, n_mels: int, sample_rate: int, f_min: float, f_max: float
) -> torch.Tensor:
    """HTK-style triangular filters, shape (n_freqs, n_mels), peak 1 (no area normalization)."""
    freqs = torch.linspace(0.0, sample_rate / 2, n_freqs, dtype=torch.float64)
    mels = torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2, dtype=torch.float64)
    edges = mel_to_hz(mels)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    f = freqs[:, None]
    rising = (f - lower) / (center - lower)
    falling = (upper - f) / (upper - center)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).to(torch.float32)


class LogMelFrontend(nn.Module):
    """Raw audio (batch, samples) at 16 kHz -> log-mel (batch, n_mels, frames).

    Power spectrum of a centered, reflect-padded Hann STFT, HTK mel filters, natural log with a
    floor. Pure torch ops so the same module exports into the device's ONNX graph (opset >= 17).
    """

    window: torch.Tensor
    filterbank: torch.Tensor

    def __init__(self, cfg: FeatureParams) -> None:
        super().__init__()
        self.n_fft = cfg.n_fft
        self.hop_length = cfg.hop_length
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)
        fb = mel_filterbank(cfg.n_fft // 2 + 1, cfg.n_mels, cfg.sample_rate, cfg.f_min, cfg.f_max)
        self.register_buffer("filterbank", fb, persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            audio,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()  # (batch, freqs, frames)
        mel = torch.matmul(power.transpose(1, 2), self.filterbank).transpose(1, 2)
        return torch.log(mel + LOG_FLOOR)


def num_frames(cfg: FeatureParams) -> int:
    """Frames per clip for a centered STFT (``n_fft // 2`` samples of padding on each side)."""
    return (cfg.clip_samples + 2 * (cfg.n_fft // 2) - cfg.n_fft) // cfg.hop_length + 1


@torch.no_grad()
def compute_features(
    audio: torch.Tensor, cfg: FeatureParams, batch_size: int = 512
) -> torch.Tensor:
    """Log-mel features for a (clips, samples) float tensor, in batches to bound memory."""
    frontend = LogMelFrontend(cfg).eval()
    out = torch.empty(audio.shape[0], cfg.n_mels, num_frames(cfg))
    for start in range(0, audio.shape[0], batch_size):
        out[start : start + batch_size] = frontend(audio[start : start + batch_size])
    return out
