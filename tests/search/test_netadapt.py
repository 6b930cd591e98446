"""NetAdapt v1 baseline: weights written back into the container, one layer per proposal."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from components.model.subnet import extract_subnet
from components.model.supernet import SuperNet
from components.search.netadapt import NetAdaptConfig, implant, netadapt_v1
from components.training.data import ServerData
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
