"""Prefect flow of the finetune stage: federated PVT/OMC fine-tuning logged to the stage's run."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from prefect import flow, get_run_logger  # noqa: E402

from components.config import load_params  # noqa: E402
from components.federated import stage  # noqa: E402
from flows.stage_common import record_metrics  # noqa: E402
from flows.tracking import stage_run  # noqa: E402


def accuracy_figure(history: list[dict[str, float]]) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 4))
    rounds = [h["round"] for h in history]
    ax.plot(
        rounds, [h["client_test_acc"] for h in history], marker="o", label="clients' test clips"
    )
    ax.plot(rounds, [h["server_test_acc"] for h in history], marker="s", label="server test split")
    ax.set_xlabel("federated round")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def bytes_figure(history: list[dict[str, float]]) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 4))
    rows = [h for h in history if "cumulative_bytes_up" in h]
    rounds = [h["round"] for h in rows]
    ax.plot(rounds, [h["cumulative_bytes_down"] / 1e6 for h in rows], marker="o", label="download")
    ax.plot(rounds, [h["cumulative_bytes_up"] / 1e6 for h in rows], marker="s", label="upload")
    ax.set_xlabel("federated round")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("cumulative payload (MB, all clients)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


@flow(name="finetune")
def finetune_flow(
    params_path: str = "params.yaml", progress: bool | None = None
) -> dict[str, float]:
    params = load_params(params_path)
    logger = get_run_logger()
    sections = {"base": params.base.model_dump(), "finetune": params.finetune.model_dump()}
    with stage_run(params.base, "finetune", sections) as run:
        run_id = run.info.run_id

        def on_round(server_round: int, record: dict[str, float]) -> None:
            # called from Flower's ServerApp thread: name the run, MLflow's active run is per thread
            mlflow.log_metrics(record, step=server_round, run_id=run_id)
            shown = {k: round(v, 3) for k, v in record.items() if "acc" in k or k == "failed"}
            logger.info("round %d: %s", server_round, shown)

        result = stage.run(params, Path("."), on_round=on_round)
        for name, fig in (
            ("finetune/accuracy_vs_round.png", accuracy_figure(result.history)),
            ("finetune/cumulative_bytes_vs_round.png", bytes_figure(result.history)),
        ):
            mlflow.log_figure(fig, name)
            plt.close(fig)
        mlflow.log_dict({"rounds": result.history, "client_issues": result.reasons},
                        "finetune/rounds.json")  # fmt: skip
        record_metrics("finetune", result.metrics, step=params.finetune.rounds + 1)
        logger.info("finetune: %s", result.metrics)
    return result.metrics
