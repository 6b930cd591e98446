"""Prefect flow of the search stage: measured latency table, MCD and baselines, training."""

from __future__ import annotations

import mlflow
from prefect import flow

from components.search import report
from components.search import stage as search
from flows.runner import stage

ARTIFACTS = ("arch.json", "lut.json", "history.json", "pareto.png")


@flow(name="search")
def search_flow(params_path: str = "params.yaml", progress: bool | None = None) -> dict:
    with stage("search", params_path, progress) as s:
        result = search.run(s.params, s.workdir, progress=s.progress)
        for t in result.trained.values():  # the training curves of the discovered network(s)
            for step, h in enumerate(t.history):
                mlflow.log_metrics(
                    {
                        f"train_{t.method}_val_acc": h["val_acc_full"],
                        f"train_{t.method}_loss": h["train_loss"],
                    },
                    step=step,
                )
        for it in result.outcomes["mcd"].iterations:
            mlflow.log_metrics(
                {
                    "mcd_target_ms": it["target_ms"],
                    "mcd_kept_val_acc": it["kept"]["accuracy"],
                    "mcd_kept_predicted_ms": it["kept"]["predicted_ms"],
                },
                step=it["iteration"],
            )
        for name in ARTIFACTS:
            mlflow.log_artifact(str(result.out_dir / name), artifact_path="search")
        mlflow.log_artifact(str(result.model_path), artifact_path="models")
        for device, r in result.devices.items():  # a fleet: every further device's search
            for name in (*ARTIFACTS, r.model_path.name):
                mlflow.log_artifact(str(r.out_dir / name), artifact_path=f"search/devices/{device}")
            mlflow.log_metrics(
                {
                    f"{device}.{k}": float(v)
                    for k, v in r.metrics.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)
                }
            )
        mlflow.set_tags(
            {
                "search.widths": str(result.arch["widths"]),
                "search.device": result.arch["device"],
                **{f"search.{d}.widths": str(r.arch["widths"]) for d, r in result.devices.items()},
            }
        )
        return s.finish(
            result.metrics,
            headline=report.HEADLINE,
            plots={"search_candidates": report.candidate_rows(result)},
        )
