"""Training-time augmentation on log-mel batches: circular time shift and SpecAugment masks."""

from __future__ import annotations

import torch

from components.config import SupernetParams


def augment(
    x: torch.Tensor, p: SupernetParams, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Return an augmented copy of a (batch, n_mels, frames) log-mel batch.

    A random circular time shift, then SpecAugment time and frequency masks (Park et al. 2019).
    The batch is raw log-mel (the network standardizes it itself), where 0 is a loud value, so
    masks fill with each clip's own mean instead of zero and carry no information.
    """
    b, n_mels, frames = x.shape
    out = x.clone()
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
