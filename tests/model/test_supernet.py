import pytest
import torch
from torch import nn

from components.model.evaluate import recalibrate_batch_norm
from components.model.space import SearchSpace, StageSpec, count_macs, layer_macs
from components.model.subnet import build_subnet, count_parameters, extract_subnet
from components.model.supernet import (
    BypassBlock,
    SuperNet,
    fixed_widths,
    ordered_mask,
    sample_widths,
)

SPACE = SearchSpace(stem_stride=(2, 4), stages=(StageSpec(16, 2, 1), StageSpec(24, 2, 2)))


def randomized_supernet(seed: int = 0) -> SuperNet:
    """A super-network with non-trivial weights and batch-norm statistics."""
    torch.manual_seed(seed)
    net = SuperNet(SPACE)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    net.norm.set_stats(torch.randn(64, SPACE.n_mels, SPACE.frames) * 3 + 1)
    return net.eval()


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


@pytest.mark.parametrize(
    "widths", [[16, 16, 24, 24], [0, 0, 0, 0], [8, 0, 16, 8], [0, 16, 0, 24], [16, 8, 8, 0]]
)
def test_extracted_subnet_matches_masked_supernet(widths):
    net = randomized_supernet()
    sub = extract_subnet(net, widths).eval()
    x = torch.randn(5, SPACE.n_mels, SPACE.frames)
    with torch.no_grad():
        expected = net(x, fixed_widths(widths, 5))
        assert torch.allclose(sub(x), expected, atol=1e-5)
    assert count_parameters(sub) < count_parameters(net) or widths == SPACE.largest()


def test_subnet_is_physically_smaller_and_macs_match_hooks():
    widths = [8, 0, 16, 8]
    sub = extract_subnet(randomized_supernet(), widths)
    counted = 0

    def hook(module, inputs, output):
        nonlocal counted
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            counted += output.numel() * k * module.in_channels // module.groups
        elif isinstance(module, nn.Linear):
            counted += module.in_features * module.out_features

    for m in sub.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            m.register_forward_hook(hook)
    with torch.no_grad():
        sub.eval()(torch.zeros(1, SPACE.n_mels, SPACE.frames))
    assert counted == count_macs(SPACE, widths)
    assert layer_macs(SPACE, widths)["block1"] == 0
    # a removed block has no module at all, a narrow block only `width` pointwise filters
    assert sum(isinstance(m, nn.Conv2d) and m.out_channels == 8 for m in sub.modules()) == 2


def test_config_round_trips_through_json():
    import json

    sub = extract_subnet(randomized_supernet(), [8, 0, 16, 8])
    config = json.loads(json.dumps(sub.config))
    rebuilt = build_subnet(config)
    rebuilt.load_state_dict(sub.state_dict())
    x = torch.randn(2, SPACE.n_mels, SPACE.frames)
    assert torch.equal(rebuilt.eval()(x), sub.eval()(x))
    assert SearchSpace.from_dict(SPACE.to_dict()) == SPACE


def test_space_rejects_bad_widths():
    with pytest.raises(ValueError, match="expected 4 widths"):
        SPACE.validate([8, 8])
    with pytest.raises(ValueError, match=r"layer 1: width 12 not in \[0, 8, 16\]"):
        SPACE.validate([8, 12, 8, 8])


def test_recalibration_sets_batch_statistics():
    net = randomized_supernet()
    sub = extract_subnet(net, [16, 16, 24, 24])
    batches = [torch.randn(32, SPACE.n_mels, SPACE.frames) for _ in range(3)]
    recalibrate_batch_norm(sub, batches)
    assert not sub.training
    stem_bn = sub.stem[1]
    with torch.no_grad():
        pre = torch.cat([sub.stem[0](sub.norm(b).unsqueeze(1)) for b in batches])
    assert torch.allclose(stem_bn.running_mean, pre.mean(dim=(0, 2, 3)), atol=1e-5)
    assert stem_bn.momentum == 0.1  # restored
