"""NetAdapt v1 baseline: weights written back into the container, one layer per proposal."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

from components.model.subnet import extract_subnet
from components.model.supernet import SuperNet
from components.search.netadapt import NetAdaptConfig, implant, netadapt_v1, order_hidden_by_norm
from components.training.data import ServerData
from tests.helpers.spaces import INVERTED_SPACE, randomized_supernet
from tests.helpers.spaces import TINY_SPACE as SPACE


class Channels:
    def predict(self, widths: Sequence[int]) -> float:
        return 1.0 + sum(widths)


def test_implant_is_the_inverse_of_extract() -> None:
    torch.manual_seed(0)
    source, container = SuperNet(SPACE).eval(), SuperNet(SPACE).eval()
    sub = extract_subnet(source, [8, 0, 16])
    with torch.no_grad():
        for p in sub.parameters():
            p.add_(0.5)  # a "fine-tuned" sub-network
    implant(container, sub)
    again = extract_subnet(container, [8, 0, 16]).eval()
    x = torch.randn(3, 8, 12)
    assert torch.allclose(again(x), sub.eval()(x), atol=1e-6)


def test_netadapt_shrinks_one_layer_per_proposal_to_the_budget() -> None:
    torch.manual_seed(0)
    data = ServerData(torch.randn(64, 8, 12), torch.randint(0, 3, (64,)),
                      torch.randn(16, 8, 12), torch.randint(0, 3, (16,)))  # fmt: skip
    choices = [SPACE.width_choices(i) for i in range(SPACE.num_layers)]
    iterations = []
    result = netadapt_v1(SuperNet(SPACE), choices, Channels(), data, 25.0, seed=0,
                         config=NetAdaptConfig(step_fraction=0.2, finetune_steps=2),
                         on_iteration=iterations.append)  # fmt: skip
    assert result.predicted_ms <= 25.0
    assert result.iterations == iterations
    previous = [16, 16, 16]
    for it in iterations:
        kept = it["kept"]["widths"]
        changed = [i for i in range(3) if kept[i] != previous[i]]
        assert len(changed) == 1  # NetAdapt v1: one layer per proposal
        assert it["kept"]["predicted_ms"] <= it["target_ms"]
        previous = kept
    assert result.candidates_evaluated == sum(it["proposals"] for it in iterations)


def inverted_net(seed: int = 0) -> SuperNet:
    net = randomized_supernet(seed, INVERTED_SPACE)
    with torch.no_grad():  # filters of clearly different norms
        for layer in range(INVERTED_SPACE.num_layers):
            w = net.searchable(layer).expand[0].weight
            w.mul_(torch.rand(w.shape[0], 1, 1, 1) * 3)
    return net


def test_hidden_channels_ordered_by_l2_norm_keep_the_function_and_the_largest_filters() -> None:
    net = inverted_net()
    x = torch.randn(4, INVERTED_SPACE.n_mels, INVERTED_SPACE.frames)
    widths = [32, 16, 48, 32]
    before = extract_subnet(net, widths).eval()(x)
    block = net.searchable(0)
    norms = block.expand[0].weight.flatten(1).norm(dim=1)
    kept_set = set(norms[:32].tolist())
    order_hidden_by_norm(block, 32)
    after = block.expand[0].weight.flatten(1).norm(dim=1)
    assert set(after[:32].tolist()) == kept_set  # only the kept channels move
    assert torch.equal(after[32:], norms[32:])
    assert all(a >= b for a, b in zip(after[:31].tolist(), after[1:32].tolist(), strict=True))
    assert torch.allclose(extract_subnet(net, widths).eval()(x), before, atol=1e-5)
    # width 16 of that layer now keeps its 16 largest filters among the 32
    top16 = sorted(kept_set, reverse=True)[:16]
    kept = extract_subnet(net, [16, 16, 48, 32]).body[0].expand[0].weight.flatten(1).norm(dim=1)
    assert sorted(kept.tolist(), reverse=True) == pytest.approx(top16)


def test_a_bypass_block_is_left_as_it_is() -> None:
    net = SuperNet(SPACE)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    order_hidden_by_norm(net.searchable(0), 16)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())


def test_netadapt_keeps_the_largest_norm_channels_and_goes_on_from_a_start() -> None:
    torch.manual_seed(0)
    net = inverted_net()
    space = INVERTED_SPACE
    data = ServerData(torch.randn(64, space.n_mels, space.frames), torch.randint(0, 12, (64,)),
                      torch.randn(16, space.n_mels, space.frames),
                      torch.randint(0, 12, (16,)))  # fmt: skip
    choices = [space.width_choices(i) for i in range(space.num_layers)]
    top = {layer: sorted(net.searchable(layer).expand[0].weight.flatten(1).norm(dim=1).tolist(),
                         reverse=True) for layer in range(space.num_layers)}  # fmt: skip
    # no fine-tuning: the kept filters are the pre-trained ones, so their norms can be checked
    result = netadapt_v1(net, choices, Channels(), data, 1.0 + sum(space.largest()) - 16, seed=0,
                         config=NetAdaptConfig(step_fraction=0.1, finetune_steps=0))  # fmt: skip
    (layer,) = [i for i, (w, c) in enumerate(zip(result.widths, space.largest(), strict=True))
                if w < c]  # fmt: skip
    width = result.widths[layer]
    assert width > 0  # one step of 16 below the full network: no layer is removed
    kept = net.searchable(layer).expand[0].weight[:width].flatten(1).norm(dim=1).tolist()
    assert sorted(kept, reverse=True) == pytest.approx(top[layer][:width])
    again = netadapt_v1(net, choices, Channels(), data, 1.0 + sum(space.largest()) - 48, seed=0,
                        config=NetAdaptConfig(step_fraction=0.1, finetune_steps=0),
                        start=result.widths)  # fmt: skip
    assert sum(again.widths) < sum(result.widths)
    assert all(a <= b for a, b in zip(again.widths, result.widths, strict=True))


def test_a_step_larger_than_any_layer_still_shrinks_one_layer_at_a_time() -> None:
    """Each layer is at most 16 ms of the 49 ms network; a step of half of it (24.5 ms) cannot
    be met by one layer, so each iteration goes as low as one layer can."""
    torch.manual_seed(0)
    data = ServerData(torch.randn(32, 8, 12), torch.randint(0, 3, (32,)),
                      torch.randn(8, 8, 12), torch.randint(0, 3, (8,)))  # fmt: skip
    choices = [SPACE.width_choices(i) for i in range(SPACE.num_layers)]
    result = netadapt_v1(SuperNet(SPACE), choices, Channels(), data, 20.0, seed=0,
                         config=NetAdaptConfig(step_fraction=0.5, finetune_steps=0))  # fmt: skip
    assert result.predicted_ms <= 20.0
    assert [it["target_ms"] for it in result.iterations] == [33.0, 20.0]
    assert sum(result.widths) == 16
