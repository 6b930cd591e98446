"""Training-time augmentation on log-mel batches: background noise, circular time shift and
SpecAugment masks."""

from __future__ import annotations

import torch

from components.config import SupernetParams


def mix_noise(
    x: torch.Tensor, noise: torch.Tensor, share: float, snr_db: tuple[float, float],
    generator: torch.Generator | None = None,
) -> torch.Tensor:  # fmt: skip
    """Mix a random ``share`` of the (batch, n_mels, frames) log-mel batch ``x`` with random rows
    of ``noise`` (log-mel clips of noise alone) at a signal-to-noise ratio uniform in ``snr_db``
    (dB, over the whole clip's mel energy), as a noisier room would: in the mel power domain,
    ``log(exp(x) + g * exp(n))``. Simplified: the cross term of speech and noise, zero in
    expectation, is left out (the features are not recomputed from audio); a clip that is noise
    already gets noisier, and keeps its label."""
    b = x.shape[0]
    if share <= 0 or len(noise) == 0:
        return x
    chosen = torch.rand(b, generator=generator) < share
    if not bool(chosen.any()):
        return x
    rows = torch.randint(0, len(noise), (int(chosen.sum()),), generator=generator)
    lo, hi = snr_db
    snr = lo + (hi - lo) * torch.rand(len(rows), generator=generator)
    signal, background = x[chosen].exp(), noise[rows].exp()
    gain = signal.mean(dim=(1, 2)) / background.mean(dim=(1, 2)) * 10 ** (-snr / 10)
    out = x.clone()
    out[chosen] = torch.log(signal + gain[:, None, None] * background)
    return out


def augment(
    x: torch.Tensor, p: SupernetParams, generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """Return an augmented copy of a (batch, n_mels, frames) log-mel batch.

    With ``noise`` (log-mel clips of noise alone) and ``p.noise_mix`` > 0, that share of the clips
    mixed with noise first (``mix_noise``); then a random circular time shift and SpecAugment time
    and frequency masks (Park et al. 2019). The batch is raw log-mel (the network standardizes it
    itself), where 0 is a loud value, so masks fill with each clip's own mean instead of zero and
    carry no information.
    """
    b, n_mels, frames = x.shape
    out = x.clone()
    if noise is not None and p.noise_mix > 0:
        out = mix_noise(out, noise, p.noise_mix, p.noise_snr_db, generator)
    if p.time_shift_max:
        shifts = torch.randint(-p.time_shift_max, p.time_shift_max + 1, (b,), generator=generator)
        idx = (torch.arange(frames)[None, :] - shifts[:, None]) % frames
        out = torch.gather(out, 2, idx[:, None, :].expand(b, n_mels, frames))
    fill = out.mean(dim=(1, 2), keepdim=True)
    for size, count, axis in ((frames, p.time_masks, 2), (n_mels, p.freq_masks, 1)):
        max_width = p.time_mask_max if axis == 2 else p.freq_mask_max
        for _ in range(count):
            width = torch.randint(0, max_width + 1, (b,), generator=generator)
            start = (torch.rand(b, generator=generator) * (size - width + 1)).long()
            pos = torch.arange(size)[None, :]
            mask = (pos >= start[:, None]) & (pos < (start + width)[:, None])  # (b, size)
            mask = mask[:, None, :] if axis == 2 else mask[:, :, None]
            out = torch.where(mask, fill, out)
    return out
