"""Prefect flow of the supernet stage: Lightning training logged to the stage's MLflow run."""

from __future__ import annotations

from pathlib import Path

import mlflow
from lightning.pytorch.loggers import MLFlowLogger
from prefect import flow

from components.config import load_params
from components.config_view import restrict
from components.supernet import figures
from components.supernet import stage as supernet
from flows.contract import declared_keys
from flows.runner import stage


@flow(name="supernet")
def supernet_flow(params_path: str = "params.yaml", progress: bool | None = None) -> dict:
    with stage("supernet", params_path, progress) as s:
        logger = MLFlowLogger(tracking_uri=mlflow.get_tracking_uri(), run_id=s.run_id,
                              log_model=False)  # fmt: skip
        result = supernet.run(s.params, s.workdir, loggers=[logger], progress=s.progress)
        s.log_figures({"accuracy_vs_macs": figures.accuracy_vs_macs(result.subnets),
                       "training_curves": figures.training_curves(result.history)})  # fmt: skip
        mlflow.log_dict({"subnets": result.subnets}, "supernet/subnets.json")
        # dvc plots needs every row of a file to carry the same keys
        curve = [{k: h[k] for k in ("epoch", "train_loss")} for h in result.history]
        keys = ("epoch", "val_acc_full", "val_acc_median_subnet", "val_acc_smallest")
        subnets = [{k: h[k] for k in keys} for h in result.history if "val_acc_full" in h]
        return s.finish(
            result.metrics,
            step=result.steps,
            headline=supernet.HEADLINE,
            plots={"supernet_training": curve, "supernet_subnets": subnets},
        )


def ddp_worker(params_path: str = "params.yaml") -> None:
    """A DDP process other than rank 0: Lightning starts it by running the stage's command again.
    It trains its shard and nothing else (no flow run, no MLflow run: rank 0 reports the stage)."""
    view = restrict(load_params(params_path), declared_keys("supernet", Path(".")), "supernet")
    supernet.run(view, Path("."))
