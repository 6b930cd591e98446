"""``edgelearn report``: the HTML page of the latest pipeline run, from what it left behind."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import mlflow

from components.config import Params
from components.io import write_text_atomic
from components.report import ReportData, StageStatus, render
from flows.contract import dvc_stages
from flows.tracking import configure


def _json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


# MLflow 3.17's UI opens an experiment in the view its GenAI / model-training switch last showed
# in this browser (GenAI on a first visit, whatever the experiment's kind tag says), and its runs
# table shows no metric columns until the user picks them. So every link names the model-training
# view, and the experiment's link opens a view kept in the experiment (a tag, as the UI's "share
# view" writes it) whose columns are the pipeline runs' headline figures.
ML_VIEW = "workflowType=machine_learning"
SHARED_VIEW_TAG, RUNS_VIEW = "mlflow.sharedViewState.", "edgelearn-headline-figures"


def run_url(tracking_ui: str, experiment_id: str, run_id: str) -> str:
    return f"{tracking_ui}/#/experiments/{experiment_id}/runs/{run_id}?{ML_VIEW}"


def experiment_url(tracking_ui: str, experiment_id: str) -> str:
    """The experiment's runs table with the columns of ``save_runs_view``."""
    return (f"{tracking_ui}/#/experiments/{experiment_id}/runs?{ML_VIEW}"
            f"&viewStateShareKey={RUNS_VIEW}")  # fmt: skip


def save_runs_view(experiment_id: str, metric_keys: list[str]) -> None:
    """Keep in the experiment the runs-table view that ``experiment_url`` opens: the run's
    duration and ``metric_keys`` as columns, in that order."""
    columns = ["attributes.`Duration`", *(f"metrics.`{key}`" for key in metric_keys)]
    mlflow.MlflowClient().set_experiment_tag(experiment_id, SHARED_VIEW_TAG + RUNS_VIEW,
                                             json.dumps({"selectedColumns": columns}))  # fmt: skip


def gather(params: Params, results: list[dict[str, Any]] | None = None,
           tracking_ui: str = "http://127.0.0.1:5000") -> ReportData:  # fmt: skip
    """The latest pipeline run in the MLflow store (or ``results`` of the run just finished),
    the metrics and plots files, the latency table and the Pareto plot."""
    metrics_dir = Path(params.paths.metrics)
    experiment_id = configure(params.base)
    parents = mlflow.search_runs([experiment_id], "tags.`edgelearn.kind` = 'pipeline'",
                                 order_by=["attributes.start_time DESC"], max_results=1,
                                 output_format="list")  # fmt: skip
    parent = parents[0] if parents else None
    children = {}
    if parent is not None:
        for run in mlflow.search_runs([experiment_id],
                                      f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                                      output_format="list"):  # fmt: skip
            stage = run.data.tags.get("edgelearn.stage")
            if stage:
                linked = run.data.tags.get("edgelearn.produced_by", run.info.run_id)
                children[stage] = (run, linked)
    timing = {r["stage"]: r for r in results or []}
    stages = []
    for name in dvc_stages():
        run, linked = children.get(name, (None, ""))
        if name in timing:
            ran, seconds = bool(timing[name]["ran"]), float(timing[name]["seconds"])
        elif run is not None:
            ran = run.data.tags.get("edgelearn.skipped") != "true"
            seconds = ((run.info.end_time or run.info.start_time) - run.info.start_time) / 1e3
        else:
            ran, seconds = False, 0.0
        url = run_url(tracking_ui, experiment_id, linked) if linked else ""
        stages.append(StageStatus(name, ran, seconds, url))
    names = [s.name for s in stages]
    links = {"MLflow experiment": experiment_url(tracking_ui, experiment_id)}
    if parent is not None:
        # the parent carries every stage's headline figures as <stage>.<key>: in pipeline order
        rank = {name: i for i, name in enumerate(names)}
        keys = sorted(parent.data.metrics, key=lambda k: (rank.get(k.split(".")[0], 99), k))
        save_runs_view(experiment_id, keys)
        links["this pipeline run"] = run_url(tracking_ui, experiment_id, parent.info.run_id)
    pareto = Path(params.paths.search) / "pareto.png"
    return ReportData(
        title="edgelearn pipeline run",
        created=time.strftime("%Y-%m-%d %H:%M:%S %Z")
        + (f", MLflow run {parent.info.run_id}" if parent else ""),
        stages=stages,
        metrics={n: _json(metrics_dir / f"{n}.json") or {} for n in names},
        curves={p.stem: _json(p) for p in sorted((metrics_dir / "plots").glob("*.json"))},
        lut=_json(Path(params.paths.search) / "lut.json"),
        pareto_png=pareto.read_bytes() if pareto.is_file() else None,
        links=links,
    )


def write_report(params: Params, results: list[dict[str, Any]] | None = None) -> Path:
    """Render the report to ``paths.report`` and return its path."""
    path = Path(params.paths.report)
    write_text_atomic(path, render(gather(params, results)))
    return path
