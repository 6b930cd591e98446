import math

import numpy as np
import torch

from components.config import FeatureParams
from components.features import LogMelFrontend, compute_features, hz_to_mel, mel_filterbank


def test_filterbank_triangles_peak_at_their_centers():
    fb = mel_filterbank(257, 10, 16000, 0.0, 8000.0)
    assert fb.shape == (257, 10)
    assert float(fb.max()) <= 1.0 + 1e-6
    assert torch.all(fb.sum(dim=0) > 0)  # no empty filter
    centers = fb.argmax(dim=0)
    assert torch.all(centers[1:] > centers[:-1])


def test_shape_and_frames():
    cfg = FeatureParams()
    out = compute_features(torch.zeros(3, cfg.clip_samples), cfg)
    assert out.shape == (3, 40, 101)
    assert torch.allclose(out, torch.full_like(out, math.log(1e-6)))  # silence -> the floor


def test_tone_lands_in_the_right_mel_band():
    cfg = FeatureParams()
    t = torch.arange(cfg.clip_samples) / cfg.sample_rate
    feats = compute_features(torch.sin(2 * math.pi * 1000.0 * t)[None], cfg)[0]
    band = int(feats[:, 50].argmax())
    mel_edges = np.linspace(hz_to_mel(cfg.f_min), hz_to_mel(cfg.f_max), cfg.n_mels + 2)
    expected = int(np.argmin(np.abs(mel_edges[1:-1] - hz_to_mel(1000.0))))
    assert abs(band - expected) <= 1


def test_batched_equals_single():
    cfg = FeatureParams()
    audio = torch.randn(5, cfg.clip_samples) * 0.1
    frontend = LogMelFrontend(cfg)
    single = torch.cat([frontend(audio[i : i + 1]) for i in range(5)])
    assert torch.allclose(compute_features(audio, cfg, batch_size=2), single, atol=1e-5)
