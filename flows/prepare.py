"""Prefect flow of the prepare stage: splits, features and manifest, tracked in MLflow."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import pandas as pd  # noqa: E402
from prefect import flow, get_run_logger  # noqa: E402

from components import prepare  # noqa: E402
from components.config import load_params  # noqa: E402
from components.data.labels import CLASSES  # noqa: E402
from flows.stage_common import record_metrics  # noqa: E402
from flows.tracking import stage_run  # noqa: E402


def class_balance_figure(manifest: pd.DataFrame) -> plt.Figure:
    """Clips per class in each pool/split: the first thing to look at when accuracy is odd."""
    groups = manifest.assign(group=manifest["pool"] + "/" + manifest["split"])
    table = groups.pivot_table(index="label", columns="group", values="index", aggfunc="count")
    table = table.reindex(list(CLASSES)).fillna(0)
    fig, ax = plt.subplots(figsize=(10, 4))
    table.plot.bar(ax=ax)
    ax.set_ylabel("clips")
    ax.set_title("clips per class and split")
    fig.tight_layout()
    return fig


@flow(name="prepare")
def prepare_flow(params_path: str = "params.yaml") -> dict[str, int]:
    params = load_params(params_path)
    logger = get_run_logger()
    sections = {
        "base": params.base.model_dump(),
        "prepare": params.prepare.model_dump(),
        "features": params.features.model_dump(),
    }
    with stage_run(params.base, "prepare", sections):
        result = prepare.run(params, Path("."))
        out = result.out_dir
        mlflow.log_artifact(str(out / "rejected.csv"), "prepare")
        mlflow.log_artifact(str(out / "summary.json"), "prepare")
        manifest = pd.read_csv(out / "manifest.csv")
        fig = class_balance_figure(manifest)
        mlflow.log_figure(fig, "prepare/class_balance.png")
        plt.close(fig)
        for rejection in result.rejected[:20]:
            logger.warning("rejected %s: %s", rejection.path, rejection.reason)
        if len(result.rejected) > 20:
            logger.warning("... %d more in %s", len(result.rejected) - 20, out / "rejected.csv")
        record_metrics("prepare", result.metrics)
        logger.info("prepare: %s", result.metrics)
    return result.metrics
