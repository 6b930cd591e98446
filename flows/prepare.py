"""Prefect flow of the prepare stage."""

from __future__ import annotations

import mlflow
from prefect import flow

from components import prepare
from components.data.figures import class_balance
from components.data.prepared import REJECTED, SUMMARY, load_prepared
from flows.runner import stage

SHOWN_REJECTIONS = 20


@flow(name="prepare")
def prepare_flow(params_path: str = "params.yaml", progress: bool | None = None) -> dict:
    with stage("prepare", params_path, progress) as s:
        result = prepare.run(s.params, s.workdir)
        for name in (REJECTED, SUMMARY):
            mlflow.log_artifact(str(result.out_dir / name), "prepare")
        data = load_prepared(result.out_dir)
        s.log_figures({"class_balance": class_balance(data.manifest, data.classes)})
        for rejection in result.rejected[:SHOWN_REJECTIONS]:
            s.logger.warning("rejected %s: %s", rejection.path, rejection.reason)
        if len(result.rejected) > SHOWN_REJECTIONS:
            s.logger.warning("... %d more in %s", len(result.rejected) - SHOWN_REJECTIONS,
                             result.out_dir / REJECTED)  # fmt: skip
        return s.finish(result.metrics, headline=prepare.HEADLINE)
