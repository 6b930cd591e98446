"""NetAdapt (Yang et al., ECCV 2018), the search-time baseline for NetAdaptV2.

From a trained network, each iteration sets the target ``R_i = R_{i-1} - dR_i`` with ``dR_i =
0.025 * R_0 * 0.96 ** (i - 1)`` (the schedule of a public reimplementation); for each layer
separately it takes the largest width that meets the target by the lookup table (one layer per
proposal), short-term fine-tunes the proposal, scores it on the held-out split and keeps the best.

Simplification, stated: NetAdapt keeps the filters with the largest L2 norm; we keep the first w
channels (as the sub-networks of the super-network do) and let the short-term fine-tuning recover.
With channel-level bypass connections a block's output channel c replaces channel c of the residual
stream, so another subset would need an index set per block; an inverted residual's hidden
channels could be reordered by norm first (not done yet: issue 16, item 3).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from components.model.evaluate import accuracy
from components.model.subnet import SubNetwork, extract_subnet, implant_block
from components.model.supernet import SuperNet
from components.search.mcd import Candidate, LatencyPredictor, SearchError, SearchOutcome
from components.training.data import ServerData


@torch.no_grad()
def implant(container: SuperNet, sub: SubNetwork) -> None:
    """Write ``sub``'s weights back into the first channels of a super-network-shaped container
    (the inverse of ``extract_subnet``), so later proposals slice the fine-tuned weights."""
    container.norm.load_state_dict(sub.norm.state_dict())
    container.stem.load_state_dict(sub.stem.state_dict())
    container.head.load_state_dict(sub.head.state_dict())
    body = iter(sub.body)
    layer = 0
    for si, stage in enumerate(container.space.stages):
        if si > 0:
            container.transitions[si - 1].load_state_dict(next(body).state_dict())
        for _ in range(stage.blocks):
            if sub.widths[layer] > 0:
                implant_block(container.searchable(layer), next(body))
            layer += 1


def short_term_finetune(
    model: SubNetwork, data: ServerData, steps: int, generator: torch.Generator, lr: float = 1e-3
) -> SubNetwork:
    """``steps`` AdamW steps on random training batches of 64 (NetAdapt's short-term tuning)."""
    if steps == 0:
        return model.eval()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(data.train_y), (64,), generator=generator)
        loss = F.cross_entropy(model(data.train_x[idx]), data.train_y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


@dataclass(frozen=True)
class NetAdaptConfig:
    step_fraction: float = 0.025
    step_decay: float = 0.96
    finetune_steps: int = 40
    max_iterations: int = 200


def netadapt_v1(
    trained: SuperNet,
    choices: Sequence[Sequence[int]],
    predictor: LatencyPredictor,
    data: ServerData,
    budget_ms: float,
    seed: int,
    config: NetAdaptConfig = NetAdaptConfig(),
    on_iteration: Callable[[dict[str, Any]], None] | None = None,
) -> SearchOutcome:
    """Run NetAdapt from ``trained`` (a plainly trained full network held in super-network form).

    ``trained`` is modified in place: it ends holding the fine-tuned weights of the result.
    """
    t0 = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    current = [max(c) for c in choices]
    r0 = latency = predictor.predict(current)
    evaluated: list[Candidate] = []
    iterations: list[dict[str, Any]] = []
    best_acc = float("nan")
    i = 0
    while latency > budget_ms:
        i += 1
        if i > config.max_iterations:
            raise SearchError(f"NetAdapt did not reach {budget_ms:.4f} ms in {i - 1} iterations")
        target = max(budget_ms, latency - config.step_fraction * r0 * config.step_decay ** (i - 1))
        proposals: list[tuple[Candidate, SubNetwork]] = []
        for layer, layer_choices in enumerate(choices):
            for width in sorted((c for c in layer_choices if c < current[layer]), reverse=True):
                w = list(current)
                w[layer] = width
                if predictor.predict(w) <= target:
                    break
            else:
                continue  # shrinking this layer alone cannot meet the target
            sub = short_term_finetune(extract_subnet(trained, w), data, config.finetune_steps,
                                      generator)  # fmt: skip
            cand = Candidate(w, predictor.predict(w), accuracy(sub, data.val_x, data.val_y), i,
                             "netadapt_v1")  # fmt: skip
            evaluated.append(cand)
            proposals.append((cand, sub))
        if not proposals:
            raise SearchError(f"NetAdapt: no single-layer change meets {target:.4f} ms")
        best, sub = max(proposals, key=lambda p: (p[0].accuracy, -p[0].predicted_ms))
        implant(trained, sub)
        current, latency, best_acc = best.widths, best.predicted_ms, best.accuracy
        record = {"iteration": i, "target_ms": target, "kept": best.to_dict(),
                  "proposals": len(proposals), "seconds": time.perf_counter() - t0}  # fmt: skip
        iterations.append(record)
        if on_iteration is not None:
            on_iteration(record)
    return SearchOutcome("netadapt_v1", current, latency, best_acc, evaluated,
                         time.perf_counter() - t0, iterations)  # fmt: skip
