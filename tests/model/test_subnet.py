"""Sub-networks: extracted from the super-network they compute the same function, smaller."""

import json

import pytest
import torch
from torch import nn

from components.model.space import count_macs, layer_macs
from components.model.subnet import build_subnet, count_parameters, extract_subnet
from components.model.supernet import fixed_widths
from tests.helpers.spaces import SMALL_SPACE as SPACE
from tests.helpers.spaces import randomized_supernet


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
    sub = extract_subnet(randomized_supernet(), [8, 0, 16, 8])
    config = json.loads(json.dumps(sub.config))
    assert config == {"space": json.loads(json.dumps(SPACE.to_dict())), "widths": [8, 0, 16, 8]}
    rebuilt = build_subnet(config)
    rebuilt.load_state_dict(sub.state_dict())
    x = torch.randn(2, SPACE.n_mels, SPACE.frames)
    assert torch.equal(rebuilt.eval()(x), sub.eval()(x))
