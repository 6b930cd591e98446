"""Training-time augmentation: a circular time shift per clip, masks filled with the clip's mean."""

import pytest
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


def test_noise_is_mixed_in_the_mel_power_domain_at_the_drawn_snr():
    noise = torch.randn(3, 5, 20, generator=torch.Generator().manual_seed(2))
    p = SupernetParams(**{**OFF, "noise_mix": 1.0, "noise_snr_db": (6.0, 6.0)})
    out = augment(X, p, torch.Generator().manual_seed(3), noise)
    g = torch.Generator().manual_seed(3)  # the same draws, in mix_noise's order
    torch.rand(6, generator=g)
    rows = torch.randint(0, 3, (6,), generator=g)
    for b in range(6):
        added = out[b].exp() - X[b].exp()  # the noise power mixed in: a scaled noise clip
        ratio = added / noise[rows[b]].exp()
        assert torch.allclose(ratio, ratio.mean().expand_as(ratio), rtol=1e-4)
        snr = 10 * torch.log10(X[b].exp().mean() / added.mean())
        assert float(snr) == pytest.approx(6.0, abs=1e-3)
    # no noise clips, or none of the batch drawn: the batch unchanged
    assert torch.equal(augment(X, p, None, noise[:0]), X)
    assert torch.equal(augment(X, SupernetParams(**{**OFF, "noise_mix": 0.0}), None, noise), X)


def test_noise_goes_to_the_drawn_share_of_clips_only():
    noise = torch.randn(3, 5, 20, generator=torch.Generator().manual_seed(2))
    p = SupernetParams(**{**OFF, "noise_mix": 0.5})
    out = augment(X, p, torch.Generator().manual_seed(4), noise)
    chosen = torch.rand(6, generator=torch.Generator().manual_seed(4)) < 0.5
    assert 0 < int(chosen.sum()) < 6
    for b in range(6):
        assert torch.equal(out[b], X[b]) != bool(chosen[b])
        if chosen[b]:
            assert bool((out[b] > X[b]).all())  # noise only ever adds power


def test_a_reversed_snr_range_is_refused():
    with pytest.raises(ValueError, match=r"noise_snr_db: low end 10\.0 is above high end 5\.0"):
        SupernetParams(noise_snr_db=(10.0, 5.0))
