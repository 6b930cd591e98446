"""Prefect flow of the finetune stage: federated PVT/OMC fine-tuning logged to the stage's run."""

from __future__ import annotations

import mlflow
from prefect import flow

from components.federated import figures
from components.federated import stage as finetune
from flows.runner import stage


@flow(name="finetune")
def finetune_flow(params_path: str = "params.yaml", progress: bool | None = None) -> dict:
    with stage("finetune", params_path, progress) as s:
        run_id = s.run_id

        def on_round(server_round: int, record: dict[str, float]) -> None:
            # called from Flower's ServerApp thread: name the run, MLflow's active run is per thread
            mlflow.log_metrics(record, step=server_round, run_id=run_id)

        result = finetune.run(s.params, s.workdir, on_round=on_round, progress=s.progress)
        s.log_figures(
            {
                "accuracy_vs_round": figures.accuracy_vs_round(result.history),
                "cumulative_bytes_vs_round": figures.bytes_vs_round(result.history),
            }
        )
        rows = [
            {
                "round": h["round"],
                "client_test_acc": h["client_test_acc"],
                "server_test_acc": h["server_test_acc"],
                "cumulative_bytes_up": h.get("cumulative_bytes_up", 0.0),
                "cumulative_bytes_down": h.get("cumulative_bytes_down", 0.0),
            }
            for h in result.history
        ]  # dvc plots: every row the same keys
        mlflow.log_dict(
            {"rounds": result.history, "client_issues": result.reasons}, "finetune/rounds.json"
        )
        return s.finish(
            result.metrics,
            step=s.params.finetune.rounds + 1,
            headline=finetune.HEADLINE,
            plots={"finetune_rounds": rows},
        )
