"""Channels-last convolution weights (``CONV_LAYOUT``): every network is built in that order, it
computes what the default order computes, and the device graph is the default order's."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from components.model.subnet import SubNetwork, build_subnet, extract_subnet
from components.model.supernet import CONV_LAYOUT, SuperNet, fixed_widths
from components.search.lut import DeviceGraph
from tests.helpers.spaces import (
    INVERTED_SPACE,
    TINY_FEATURES,
    TINY_SPACE,
    randomized_supernet,
)


def _conv_weights(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p for p in net.parameters() if p.dim() == 4]


def _strides(w: torch.Tensor, order: torch.memory_format) -> tuple[int, ...]:
    """The strides of ``w``'s shape in ``order``. These networks' weights (depthwise, pointwise,
    one input channel) are contiguous in both orders, so only the strides, which PyTorch reads
    to pick its kernels, tell the order."""
    return torch.empty(w.shape, memory_format=order).stride()


def _in(w: torch.Tensor, order: torch.memory_format) -> bool:
    return w.stride() == _strides(w, order)


@pytest.mark.parametrize("build", ["supernet", "extracted", "built", "loaded"])
def test_every_network_holds_its_convolutions_channels_last(build):
    net = randomized_supernet(space=INVERTED_SPACE)
    widths = [24, 0, 16, 40]
    if build == "extracted":
        net = extract_subnet(net, widths)
    elif build == "built":
        net = build_subnet({"space": INVERTED_SPACE.to_dict(), "widths": widths})
    elif build == "loaded":  # a state dict saved in the default order loads into the layout
        other = SuperNet(INVERTED_SPACE)
        plain = {k: v.contiguous() for k, v in net.state_dict().items()}
        other.load_state_dict(plain)
        assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(),
                                                     plain.values(), strict=True))  # fmt: skip
        net = other
    weights = _conv_weights(net)
    assert weights and all(_in(w, CONV_LAYOUT) for w in weights)
    assert not any(_in(w, torch.contiguous_format) for w in weights)


def test_the_layout_computes_what_the_default_order_computes_forward_and_backward():
    torch.manual_seed(0)
    net = randomized_supernet(space=INVERTED_SPACE).train()
    plain = copy.deepcopy(net).to(memory_format=torch.contiguous_format)
    assert all(_in(w, torch.contiguous_format) for w in _conv_weights(plain))
    x = torch.randn(6, INVERTED_SPACE.n_mels, INVERTED_SPACE.frames)
    y = torch.arange(6) % INVERTED_SPACE.num_classes
    widths = fixed_widths([24, 0, 16, 40], 6)
    losses = []
    for model in (net, plain):
        loss = F.cross_entropy(model(x, widths), y)
        loss.backward()
        losses.append(loss)
    assert torch.allclose(losses[0], losses[1], atol=1e-5)
    for a, b in zip(net.parameters(), plain.parameters(), strict=True):
        assert a.grad is not None and b.grad is not None
        assert torch.allclose(a.grad, b.grad, atol=1e-4, rtol=1e-3)


def test_the_device_graph_is_the_default_orders():
    sub = SubNetwork(TINY_SPACE, TINY_SPACE.largest())
    assert all(_in(w, CONV_LAYOUT) for w in _conv_weights(sub))
    graph = DeviceGraph(TINY_FEATURES, 18)
    plain = copy.deepcopy(sub).to(memory_format=torch.contiguous_format)
    assert graph.onnx_module(sub) == graph.onnx_module(plain)
