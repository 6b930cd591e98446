"""NetAdapt (Yang et al., ECCV 2018), the search-time baseline for NetAdaptV2.

From a trained network, each iteration sets the target ``R_i = R_{i-1} - dR_i`` with ``dR_i =
0.025 * R_0 * 0.96 ** (i - 1)`` (the schedule of a public reimplementation); for each layer
separately it takes the largest width that meets the target by the lookup table (one layer per
proposal), short-term fine-tunes the proposal, scores it on the held-out split and keeps the best.
Where no single layer can still meet an iteration's target (late in the schedule, or a step larger
than any layer), the target is the lowest latency a one-layer change reaches.

Which filters a proposal keeps: NetAdapt's, the largest L2 norm. In an inverted residual the
filters a width removes are its hidden channels (the expansion conv's output filters), so before
every iteration each block's kept hidden channels are put in order of their expansion filter's L2
norm (``order_hidden_by_norm``, a permutation that leaves the network's function unchanged) and
a proposal of width w then keeps the first w. Simplification, stated: in the ``bypass`` space a
block's output channel c replaces channel c of the residual stream, so another subset would need
an index set per block; there the first w channels are kept and the short-term fine-tuning
recovers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from components.model.evaluate import accuracy
from components.model.subnet import SubNetwork, extract_subnet, implant_block
from components.model.supernet import InvertedBlock, SuperNet
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


@torch.no_grad()
def order_hidden_by_norm(block: nn.Module, width: int) -> None:
    """Put an inverted residual's first ``width`` hidden channels in decreasing order of their
    expansion filter's L2 norm: the expansion's output rows, both batch norms, the depthwise
    rows and the projection's input columns are permuted alike, so the block at widths
    ``>= width`` computes what it did, and width w < ``width`` keeps the w largest filters."""
    if not isinstance(block, InvertedBlock) or width < 2:
        return
    expand, dw, project = (cast(nn.Conv2d, part[0]) for part in
                           (block.expand, block.dw, block.project))  # fmt: skip
    norms = expand.weight[:width].flatten(1).norm(dim=1)
    order = torch.argsort(norms, descending=True, stable=True)
    index = torch.cat([order, torch.arange(width, block.hidden)])
    rows = [expand.weight, dw.weight]
    for part in (block.expand, block.dw):
        bn = cast(nn.BatchNorm2d, part[1])
        rows += [bn.weight, bn.bias, cast(torch.Tensor, bn.running_mean),
                 cast(torch.Tensor, bn.running_var)]  # fmt: skip
    for t in rows:
        t.copy_(t[index])
    project.weight.copy_(project.weight[:, index])


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
    start: Sequence[int] | None = None,
) -> SearchOutcome:
    """Run NetAdapt from ``trained`` (a plainly trained full network held in super-network form)
    at ``start`` (default: the full widths; the step size is always a fraction of the full
    network's latency).

    ``trained`` is modified in place: it ends holding the fine-tuned weights of the result.
    """
    t0 = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    current = list(start) if start is not None else [max(c) for c in choices]
    r0 = predictor.predict([max(c) for c in choices])
    latency = predictor.predict(current)
    evaluated: list[Candidate] = []
    iterations: list[dict[str, Any]] = []
    best_acc = float("nan")
    i = 0
    while latency > budget_ms:
        i += 1
        if i > config.max_iterations:
            raise SearchError(f"NetAdapt did not reach {budget_ms:.4f} ms in {i - 1} iterations")
        target = max(budget_ms, latency - config.step_fraction * r0 * config.step_decay ** (i - 1))
        # late in the schedule no single layer may still hold the step's latency: the target
        # is then the lowest a one-layer change reaches (one layer per proposal is kept)
        floor = min((predictor.predict([*current[:k], min(c), *current[k + 1 :]])
                     for k, c in enumerate(choices) if current[k] > min(c)),
                    default=latency)  # fmt: skip
        if floor >= latency:
            raise SearchError(f"NetAdapt: every layer is at its smallest at {latency:.4f} ms, "
                              f"above {budget_ms:.4f} ms")  # fmt: skip
        target = max(target, floor)
        for layer, width in enumerate(current):
            order_hidden_by_norm(trained.searchable(layer), width)
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
