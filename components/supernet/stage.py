"""The supernet stage: train the NetAdaptV2 super-network once, score its sub-networks, save it."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from components.config import Params
from components.model.checkpoint import save_supernet
from components.model.evaluate import accuracy, recalibrate_batch_norm
from components.model.space import count_macs, random_architectures, space_from_params
from components.model.subnet import count_parameters, extract_subnet
from components.model.supernet import SuperNet
from components.progress import Progress, no_progress
from components.training.data import ServerData, load_server_data
from components.training.trainer import fit

log = logging.getLogger(__name__)


HEADLINE = (  # metrics/supernet.json (the rest goes to the details file)
    "val_acc_full", "val_acc_smallest", "val_acc_median_subnet", "epochs", "train_seconds",
    "monitor_seconds",
)  # fmt: skip


@dataclass(frozen=True)
class SupernetResult:
    checkpoint: Path
    metrics: dict[str, float]
    history: list[dict[str, float]]  # per epoch
    subnets: list[dict[str, Any]]  # widths, macs, params, val_acc of the sampled sub-networks
    steps: int  # optimizer steps taken (the x axis of the per-epoch curves in MLflow)


def sample_subnets(
    net: SuperNet, data: ServerData, calibration: Sequence[torch.Tensor], n: int, seed: int
) -> list[dict[str, Any]]:
    """Score the smallest, the largest, uniform widths and ``n`` random sub-networks."""
    space = net.space
    steps = max(len(space.width_choices(i)) for i in range(space.num_layers)) - 1
    uniform = [
        [round(c * k / steps / space.width_step) * space.width_step for c in space.layer_channels]
        for k in range(steps + 1)
    ]
    archs = uniform + random_architectures(space, n, seed + 1)
    seen: set[tuple[int, ...]] = set()
    out = []
    for widths in archs:
        if tuple(widths) in seen:
            continue
        seen.add(tuple(widths))
        sub = recalibrate_batch_norm(extract_subnet(net, widths), calibration)
        out.append(
            {
                "widths": widths,
                "macs": count_macs(space, widths),
                "params": count_parameters(sub),
                "val_acc": accuracy(sub, data.val_x, data.val_y),
                "kind": "uniform" if widths in uniform else "random",
            }
        )
    return out


def run(
    params: Params,
    workdir: Path = Path("."),
    loggers: Sequence[Any] = (),
    progress: Progress = no_progress,
) -> SupernetResult:
    """Train the super-network for ``supernet.epochs`` (best full-network validation epoch kept),
    score its sub-networks with inherited weights, and write ``paths.supernet``."""
    p = params.supernet
    data = load_server_data(workdir / params.paths.prepared)
    space = space_from_params(p, data.train_x.shape[1], data.train_x.shape[2], len(data.classes))
    torch.manual_seed(params.base.seed)  # weight init is part of the reproducible run
    net = SuperNet(space)
    net.norm.set_stats(data.train_x)
    log.info("super-network: %d layers, widths %s", space.num_layers, space.layer_channels)
    result = fit(net, p, data, params.base.seed, loggers=loggers, progress=progress)
    module = result.module
    final = module.history[-1]  # the last epoch is always scored
    started = time.perf_counter()  # the report's sub-networks: monitoring, timed apart
    subnets = sample_subnets(net, data, module.calibration, p.report_subnets, params.base.seed)
    monitor_seconds = result.monitor_seconds + time.perf_counter() - started
    metrics = {
        "val_acc_full": round(final["val_acc_full"], 3),
        "val_acc_smallest": round(final["val_acc_smallest"], 3),
        "val_acc_median_subnet": round(final["val_acc_median_subnet"], 3),
        "epochs": p.epochs,
        "train_seconds": round(result.seconds, 2),
        "monitor_seconds": round(monitor_seconds, 2),
        "supernet_params": count_parameters(net),
        "full_macs": count_macs(space, space.largest()),
        "smallest_macs": count_macs(space, space.smallest()),
    }
    checkpoint = workdir / params.paths.supernet
    if module.global_rank == 0:  # DDP: every process holds the same weights; one writes them
        save_supernet(checkpoint, net, {"metrics": metrics, "history": module.history})
    return SupernetResult(checkpoint, metrics, module.history, subnets, result.steps)
