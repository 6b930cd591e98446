"""Lightning training of the super-network (ordered dropout) or of one fixed network."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from components.config import SupernetParams
from components.model.evaluate import accuracy, recalibrate_batch_norm
from components.model.space import random_architectures
from components.model.subnet import extract_subnet
from components.model.supernet import SuperNet, sample_widths
from components.progress import Progress, no_progress
from components.training.augment import augment
from components.training.data import ServerData


def score_subnet(
    supernet: SuperNet, widths: list[int], data: ServerData, calibration: Sequence[torch.Tensor]
) -> float:
    """Validation accuracy of ``widths`` with inherited weights after BN recalibration."""
    sub = extract_subnet(supernet, widths)
    recalibrate_batch_norm(sub, calibration)
    return accuracy(sub, data.val_x, data.val_y)


class KwsModule(L.LightningModule):
    """Trains ``net`` on log-mel batches; a ``SuperNet`` gets per-sample ODO widths every step.

    Every ``monitor_every`` epochs and at the last one a super-network logs the validation
    accuracy of its full network, its smallest one and a fixed set of random sub-networks (each
    BN-recalibrated, no fine-tuning); any other network logs its own validation accuracy as
    ``val_acc_full`` after every epoch (one cheap pass). Scoring is monitoring, not training: its
    time is kept apart in ``monitor_seconds``.
    """

    def __init__(
        self,
        net: nn.Module,
        params: SupernetParams,
        data: ServerData,
        total_steps: int,
        seed: int,
        progress: Progress = no_progress,
        phase: str = "epoch",
    ) -> None:
        super().__init__()
        self.progress, self.phase = progress, phase
        self.net = net
        self.p = params
        self.data = data
        self.total_steps = total_steps
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.calibration = data.calibration_batches(params.recalibration_batches, 128, seed)
        self.noise = data.noise_clips() if params.noise_mix > 0 else None
        self.eval_archs = (
            random_architectures(self.supernet.space, params.eval_subnets, seed)
            if self.supernet is not None
            else []
        )
        self.history: list[dict[str, float]] = []
        self.monitor_seconds = 0.0
        self._losses: list[float] = []

    @property
    def supernet(self) -> SuperNet | None:
        return self.net if isinstance(self.net, SuperNet) else None

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        x = augment(x, self.p, self.generator, self.noise)
        p = self.p
        if self.supernet is not None:
            widths = sample_widths(
                self.supernet.space, len(y), self.generator,
                p.full_fraction, p.smallest_fraction, p.depth_fraction,
            )  # fmt: skip
            logits = self.supernet(x, widths)
            loss = F.cross_entropy(logits, y, label_smoothing=p.label_smoothing)
            if p.distill_weight > 0:
                loss = (1 - p.distill_weight) * loss + p.distill_weight * self._distill(x, logits)
        else:
            loss = F.cross_entropy(self.net(x), y, label_smoothing=p.label_smoothing)
        self._losses.append(float(loss.detach()))
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        return loss

    def _distill(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """In-place distillation: every sample's sub-network matches the full network's soft
        prediction for that sample (the teacher pass is gradient-free)."""
        assert self.supernet is not None
        with torch.no_grad():
            teacher = F.softmax(self.supernet(x), dim=1)
        return F.kl_div(F.log_softmax(logits, dim=1), teacher, reduction="batchmean")

    def on_train_epoch_end(self) -> None:
        epoch, last = self.current_epoch + 1, self.trainer.max_epochs or 0
        started = time.perf_counter()
        due = epoch % self.p.monitor_every == 0 or epoch >= last
        scores = self.evaluate() if due or self.supernet is None else {}
        self.monitor_seconds += time.perf_counter() - started
        train_loss = statistics.fmean(self._losses) if self._losses else float("nan")
        # under DDP each process saw its own shard: every process records the mean over all
        train_loss = float(self.trainer.strategy.reduce(
            torch.tensor(train_loss, dtype=torch.float64), reduce_op="mean"))  # fmt: skip
        self._losses.clear()
        self.history.append(
            {"epoch": float(self.current_epoch), "train_loss": train_loss, **scores}
        )
        self.log_dict(scores, prog_bar=True, sync_dist=True)
        shown = {"train_loss": train_loss}
        shown.update({k: scores[k] for k in ("val_acc_full", "val_acc_smallest",
                                             "val_acc_median_subnet") if k in scores})  # fmt: skip
        if self.trainer.is_global_zero:  # one report per epoch, not one per DDP process
            self.progress(self.phase, epoch, last, shown)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation scores (see the class docstring)."""
        was_training = self.net.training
        net = self.supernet
        if net is None:
            scores = {"val_acc_full": accuracy(self.net, self.data.val_x, self.data.val_y)}
        else:
            accs = [score_subnet(net, a, self.data, self.calibration) for a in self.eval_archs]
            scores = {
                "val_acc_full": score_subnet(net, net.space.largest(), self.data, self.calibration),
                "val_acc_smallest": score_subnet(
                    net, net.space.smallest(), self.data, self.calibration
                ),
                "val_acc_median_subnet": statistics.median(accs),
            }
            scores.update({f"val_acc_subnet{i}": a for i, a in enumerate(accs)})
        self.net.train(was_training)
        return scores

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(
            self.net.parameters(), lr=self.p.lr, weight_decay=self.p.weight_decay
        )
        # under DDP each process takes only its shard's steps: the schedule must end with them
        steps = (int(self.trainer.estimated_stepping_batches) if self.trainer.world_size > 1
                 else self.total_steps)  # fmt: skip
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=self.p.lr, total_steps=steps, pct_start=0.15
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@dataclass
class FitResult:
    module: KwsModule
    seconds: float  # training alone: wall time of fit() less the monitoring
    monitor_seconds: float  # scoring (sub-)networks at the epochs' ends
    steps: int


def fit(
    net: nn.Module,
    params: SupernetParams,
    data: ServerData,
    seed: int,
    *,
    loggers: Sequence[Any] = (),
    progress: Progress = no_progress,
    phase: str = "epoch",
) -> FitResult:
    """Train ``net`` for ``params.epochs`` (one-cycle schedule; the last epoch is kept: no
    selection on validation), in training mode whatever mode it comes in. After each epoch
    ``progress(phase, epoch, epochs, figures)`` gets the epoch's loss and whatever validation
    scores the epoch recorded."""
    L.seed_everything(seed, workers=True, verbose=False)
    if params.num_threads:
        torch.set_num_threads(params.num_threads)
    loader = DataLoader(
        TensorDataset(data.train_x, data.train_y),
        batch_size=params.batch_size,
        shuffle=True,
        drop_last=len(data.train_y) > params.batch_size,
        generator=torch.Generator().manual_seed(seed),
    )
    module = KwsModule(net, params, data, params.epochs * len(loader), seed, progress, phase)
    trainer = L.Trainer(
        max_epochs=params.epochs,
        accelerator=params.accelerator,
        devices=params.devices,
        strategy=params.strategy,
        logger=list(loggers) or False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=min(50, len(loader)),
        num_sanity_val_steps=0,
        deterministic=True,
    )
    # Lightning keeps each module's train/eval mode as handed in: a network extracted from an
    # evaluated super-network (or scored before) would train with its batch-norm frozen
    net.train()
    start = time.perf_counter()
    trainer.fit(module, loader)
    seconds = time.perf_counter() - start - module.monitor_seconds
    return FitResult(module, seconds, module.monitor_seconds, trainer.global_step)
