"""The super-network: ordered-dropout masks, bypass blocks and the per-sample width draws."""

import pytest
import torch

from components.model.supernet import BypassBlock, FeatureNorm, ordered_mask, sample_widths
from tests.helpers.spaces import SMALL_SPACE as SPACE


def test_ordered_mask_exact():
    m = ordered_mask(torch.tensor([0, 2, 4]), 4)[:, :, 0, 0]
    assert m.tolist() == [[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]]


def test_bypass_width_zero_is_identity_and_full_width_is_plain_block():
    torch.manual_seed(0)
    block = BypassBlock(8, 3).eval()
    x = torch.randn(3, 8, 5, 7)
    assert torch.equal(block.forward_masked(x, torch.zeros(3, dtype=torch.long)), x)
    plain = block(x)
    assert torch.equal(block.forward_masked(x, torch.full((3,), 8)), plain)
    mixed = block.forward_masked(x, torch.tensor([0, 3, 8]))
    assert torch.equal(mixed[0], x[0])
    assert torch.equal(mixed[1, :3], plain[1, :3]) and torch.equal(mixed[1, 3:], x[1, 3:])
    assert torch.equal(mixed[2], plain[2])


def test_feature_norm_standardizes_each_mel_bin():
    norm = FeatureNorm(2)
    x = torch.tensor([[[1.0, 3.0], [10.0, 10.0]], [[5.0, 7.0], [10.0, 10.0]]])  # (2, 2 mels, 2)
    norm.set_stats(x)
    assert norm.mean.tolist() == [4.0, 10.0]
    assert norm.std[0].item() == torch.tensor([1.0, 3.0, 5.0, 7.0]).std().item()
    assert norm.std[1].item() == pytest.approx(
        1e-3
    )  # a constant bin: the floor, not a division by zero
    assert torch.equal(norm(x)[:, 1], torch.zeros(2, 2))


def test_sample_widths_full_rows_smallest_rows_and_choices():
    g = torch.Generator().manual_seed(0)
    w = sample_widths(SPACE, 16, g, full_fraction=0.25, smallest_fraction=0.25)
    assert w.shape == (16, SPACE.num_layers)
    assert w[:4].tolist() == [SPACE.largest()] * 4
    assert w[4:8].tolist() == [SPACE.smallest()] * 4
    for layer in range(SPACE.num_layers):
        assert set(w[:, layer].tolist()) <= set(SPACE.width_choices(layer))
    assert len({tuple(r) for r in w[8:].tolist()}) > 1  # per-sample widths, not per batch


def test_depth_rows_draw_the_number_of_kept_layers_uniformly():
    g = torch.Generator().manual_seed(0)
    before = sample_widths(SPACE, 64, torch.Generator().manual_seed(1), 0.125, 0.0)
    same = sample_widths(SPACE, 64, torch.Generator().manual_seed(1), 0.125, 0.0, 0.0)
    assert torch.equal(before, same)  # depth_fraction 0 changes nothing
    w = sample_widths(SPACE, 8000, g, full_fraction=0.0, smallest_fraction=0.0, depth_fraction=0.5)
    depth = w[:4000]
    for layer in range(SPACE.num_layers):
        assert set(depth[:, layer].tolist()) <= set(SPACE.width_choices(layer))
    kept = (depth > 0).sum(dim=1)
    counts = torch.bincount(kept, minlength=SPACE.num_layers + 1).float() / 4000
    assert torch.allclose(counts, torch.full_like(counts, 1 / (SPACE.num_layers + 1)), atol=0.03)
    uniform_kept = (w[4000:] > 0).sum(dim=1)  # the rest still draw every width uniformly
    assert float((uniform_kept == 0).float().mean()) < 0.05
