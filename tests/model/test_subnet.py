"""Sub-networks: extracted from the super-network they compute the same function, smaller."""

import json

import pytest
import torch
from torch import nn

from components.model.space import SearchSpace, count_macs, layer_macs
from components.model.subnet import build_subnet, count_parameters, extract_subnet, implant_block
from components.model.supernet import SuperNet, fixed_widths
from tests.helpers.spaces import INVERTED_SPACE, randomized_supernet
from tests.helpers.spaces import SMALL_SPACE as SPACE


@pytest.mark.parametrize(
    ("space", "widths"),
    [(SPACE, w) for w in ([16, 16, 24, 24], [0, 0, 0, 0], [8, 0, 16, 8], [0, 16, 0, 24],
                          [16, 8, 8, 0])]
    + [(INVERTED_SPACE, w) for w in ([32, 32, 48, 48], [0, 0, 0, 0], [8, 0, 16, 40],
                                     [0, 32, 0, 8], [24, 16, 48, 0])],
)  # fmt: skip
def test_extracted_subnet_matches_masked_supernet(space: SearchSpace, widths):
    net = randomized_supernet(space=space)
    sub = extract_subnet(net, widths).eval()
    x = torch.randn(5, space.n_mels, space.frames)
    with torch.no_grad():
        expected = net(x, fixed_widths(widths, 5))
        assert torch.allclose(sub(x), expected, atol=1e-5)
        # per-sample widths: each row of a mixed batch is its own sub-network
        mixed = torch.tensor([widths, space.largest(), space.smallest()])
        rows = net(x[:3], mixed)
        assert torch.allclose(rows[0], expected[0], atol=1e-5)
        assert torch.allclose(rows[1], net(x[1:2])[0], atol=1e-5)
    assert count_parameters(sub) < count_parameters(net) or widths == space.largest()


def test_an_inverted_block_of_width_zero_is_the_identity_and_scales_with_width():
    net = randomized_supernet(space=INVERTED_SPACE)
    block = net.searchable(1)
    x = torch.randn(3, 16, 5, 7)
    with torch.no_grad():
        assert torch.equal(block.forward_masked(x, torch.zeros(3, dtype=torch.long)), x)
    sub = extract_subnet(net, [8, 0, 16, 40])
    convs = [(m.in_channels, m.out_channels, m.groups) for m in sub.body[0].modules()
             if isinstance(m, nn.Conv2d)]  # fmt: skip
    assert convs == [(16, 8, 1), (8, 8, 8), (8, 16, 1)]  # expand, depthwise, project: all at 8
    assert len(sub.body) == 4  # block 1 (width 0) has no module; one transition


def test_implant_writes_a_compact_block_back_where_extract_took_it():
    net = randomized_supernet(space=INVERTED_SPACE)
    sub = extract_subnet(net, [8, 0, 16, 40])
    with torch.no_grad():
        for p in sub.parameters():
            p.add_(1.0)
    blank = SuperNet(INVERTED_SPACE).eval()
    blank.load_state_dict(net.state_dict())
    implant_block(blank.searchable(3), sub.body[3])
    again = extract_subnet(blank, [8, 0, 16, 40])
    assert torch.equal(again.body[3].project[0].weight, sub.body[3].project[0].weight)
    assert torch.equal(blank.searchable(3).project[0].weight[:, 40:],
                       net.searchable(3).project[0].weight[:, 40:])  # fmt: skip


@pytest.mark.parametrize(("space", "widths"), [(SPACE, [8, 0, 16, 8]),
                                               (INVERTED_SPACE, [8, 0, 16, 40])])  # fmt: skip
def test_subnet_is_physically_smaller_and_macs_match_hooks(space: SearchSpace, widths):
    sub = extract_subnet(randomized_supernet(space=space), widths)
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
        sub.eval()(torch.zeros(1, space.n_mels, space.frames))
    assert counted == count_macs(space, widths)
    assert layer_macs(space, widths)["block1"] == 0
    if space is SPACE:  # a removed block has no module, a narrow block `width` pointwise filters
        assert sum(isinstance(m, nn.Conv2d) and m.out_channels == 8 for m in sub.modules()) == 2


def test_config_round_trips_through_json():
    sub = extract_subnet(randomized_supernet(), [8, 0, 16, 8])
    config = json.loads(json.dumps(sub.config))
    assert config == {"space": json.loads(json.dumps(SPACE.to_dict())), "widths": [8, 0, 16, 8]}
    rebuilt = build_subnet(config)
    rebuilt.load_state_dict(sub.state_dict())
    x = torch.randn(2, SPACE.n_mels, SPACE.frames)
    assert torch.equal(rebuilt.eval()(x), sub.eval()(x))
