"""Prefect flow of the supernet stage: Lightning training logged to the stage's MLflow run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
from lightning.pytorch.loggers import MLFlowLogger  # noqa: E402
from prefect import flow, get_run_logger  # noqa: E402

from components.config import load_params  # noqa: E402
from components.supernet import stage  # noqa: E402
from flows.stage_common import record_metrics  # noqa: E402
from flows.tracking import stage_run  # noqa: E402


def accuracy_vs_macs_figure(subnets: list[dict[str, Any]]) -> plt.Figure:
    """Inherited-weight accuracy of sampled sub-networks against their MACs."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for kind, marker in (("random", "o"), ("uniform", "s")):
        pts = [s for s in subnets if s["kind"] == kind]
        ax.scatter([s["macs"] / 1e6 for s in pts], [s["val_acc"] for s in pts], marker=marker,
                   label=f"{kind} widths", alpha=0.8)  # fmt: skip
    ax.set_xlabel("MMACs (batch 1)")
    ax.set_ylabel("val accuracy, inherited weights + BN recalibration (%)")
    ax.set_title("super-network: sub-networks without fine-tuning")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def training_curves_figure(history: list[dict[str, float]]) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 4))
    epochs = [h["epoch"] for h in history]
    for key in ("val_acc_full", "val_acc_median_subnet", "val_acc_smallest"):
        ax.plot(epochs, [h[key] for h in history], label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("val accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


@flow(name="supernet")
def supernet_flow(
    params_path: str = "params.yaml", progress: bool | None = None
) -> dict[str, float]:
    params = load_params(params_path)
    logger = get_run_logger()
    sections = {"base": params.base.model_dump(), "supernet": params.supernet.model_dump()}
    with stage_run(params.base, "supernet", sections) as run:
        lightning_logger = MLFlowLogger(
            tracking_uri=mlflow.get_tracking_uri(), run_id=run.info.run_id, log_model=False
        )
        if progress is None:  # a live bar on a terminal, not thousands of lines in a CI log
            progress = sys.stderr.isatty()
        result = stage.run(params, Path("."), loggers=[lightning_logger], progress=progress)
        for name, fig in (
            ("supernet/accuracy_vs_macs.png", accuracy_vs_macs_figure(result.subnets)),
            ("supernet/training_curves.png", training_curves_figure(result.history)),
        ):
            mlflow.log_figure(fig, name)
            plt.close(fig)
        mlflow.log_dict({"subnets": result.subnets}, "supernet/subnets.json")
        record_metrics("supernet", result.metrics, step=result.steps)
        logger.info("supernet: %s", result.metrics)
    return result.metrics
