"""Training-time augmentation: a circular time shift per clip, masks filled with the clip's mean."""

import torch

from components.config import SupernetParams
from components.training.augment import augment

OFF = {"time_shift_max": 0, "time_masks": 0, "freq_masks": 0}
X = torch.randn(6, 5, 20, generator=torch.Generator().manual_seed(0))


def test_nothing_on_is_an_identical_copy():
    out = augment(X, SupernetParams(**OFF))
    assert torch.equal(out, X) and out.data_ptr() != X.data_ptr()


def test_time_shift_rolls_each_clip_by_its_own_draw():
    p = SupernetParams(**{**OFF, "time_shift_max": 4})
    before = X.clone()
    out = augment(X, p, torch.Generator().manual_seed(1))
    shifts = torch.randint(-4, 5, (6,), generator=torch.Generator().manual_seed(1))
    for b in range(6):
        assert torch.equal(out[b], X[b].roll(int(shifts[b]), dims=-1))
    assert len(set(shifts.tolist())) > 1  # per clip, not per batch
    assert torch.equal(X, before)  # the input is not modified


def test_masks_are_spans_filled_with_the_unmasked_clip_mean():
    p = SupernetParams(**{**OFF, "time_masks": 1, "time_mask_max": 8,
                          "freq_masks": 1, "freq_mask_max": 3})  # fmt: skip
    out = augment(X, p, torch.Generator().manual_seed(2))
    # the same draws, in augment's order: per clip a time span (frames), then a mel span
    g = torch.Generator().manual_seed(2)
    spans = []
    for size, max_width in ((20, 8), (5, 3)):
        width = torch.randint(0, max_width + 1, (6,), generator=g)
        start = (torch.rand(6, generator=g) * (size - width + 1)).long()
        spans.append(list(zip(start.tolist(), (start + width).tolist(), strict=True)))
    expected = X.clone()
    for b in range(6):
        mean = X[b].mean()  # of the clip before any mask: a mask carries no information
        (t0, t1), (m0, m1) = spans[0][b], spans[1][b]
        expected[b, :, t0:t1] = mean
        expected[b, m0:m1, :] = mean
    assert torch.equal(out, expected)
    assert any(t1 > t0 for t0, t1 in spans[0]) and any(m1 > m0 for m0, m1 in spans[1])
