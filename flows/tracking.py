"""MLflow: one parent run per pipeline run, a nested run per stage, tagged with their provenance."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import yaml

from components.config import BaseParams
from flows.contract import resolved_paths

PARENT_RUN_ENV = "EDGELEARN_PARENT_RUN_ID"
# The experiment's kind, as MLflow 3's "experiment type" switch writes it (model training, not
# GenAI). The 3.17 UI still opens a browser's first visit in its GenAI view, so the links that
# edgelearn prints and puts in report.html name the model-training view (flows/report.py).
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
EXPERIMENT_TAGS = {EXPERIMENT_KIND: MODEL_TRAINING}


def configure(base: BaseParams, workdir: Path = Path(".")) -> str:
    """Point MLflow at the project's store and return the experiment id (created on first use)."""
    uri = base.tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        (workdir / uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(base.experiment)
    if experiment is None:
        artifacts = (workdir / base.artifact_root).resolve()
        artifacts.mkdir(parents=True, exist_ok=True)
        experiment_id = mlflow.create_experiment(
            base.experiment, artifact_location=artifacts.as_uri(), tags=EXPERIMENT_TAGS
        )
        return str(experiment_id)
    if experiment.tags.get(EXPERIMENT_KIND) != MODEL_TRAINING:  # a store made by an older version
        mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND,
                                                 MODEL_TRAINING)  # fmt: skip
    return str(experiment.experiment_id)


def process_tags() -> dict[str, str]:
    """Which process owns a run: a run still RUNNING whose process is gone was killed."""
    return {"edgelearn.host": socket.gethostname(), "edgelearn.pid": str(os.getpid())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def close_killed_runs(experiment_id: str) -> list[str]:
    """Mark KILLED the runs of this machine left RUNNING by a process that no longer exists (a run
    killed with SIGKILL, or a machine that went down, never ends its MLflow run itself), so the
    UI tells that story instead of showing them running forever."""
    client = mlflow.MlflowClient()
    host = socket.gethostname()
    stale = [
        run.info.run_id
        for run in client.search_runs(
            [experiment_id], "attributes.status = 'RUNNING'", max_results=1000
        )
        if run.data.tags.get("edgelearn.host") == host
        and run.data.tags.get("edgelearn.pid", "").isdigit()
        and not _alive(int(run.data.tags["edgelearn.pid"]))
    ]
    for run_id in stale:
        client.set_tag(run_id, "edgelearn.ended", "its process was killed before it finished")
        client.set_terminated(run_id, "KILLED")
    return stale


def git_commit(workdir: Path = Path(".")) -> dict[str, str]:
    """The commit and whether the tree had uncommitted changes ('unknown' outside a git repo)."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=workdir, capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else ""

    commit = git("rev-parse", "HEAD") or "unknown"
    dirty = "unknown" if commit == "unknown" else str(bool(git("status", "--porcelain")))
    return {"git.commit": commit, "git.dirty": dirty}


def _yaml(path: Path) -> dict[str, Any]:
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def stage_output_hashes(stage: str, workdir: Path = Path(".")) -> dict[str, str]:
    """md5 of a stage's outs as dvc.lock records them (after ``dvc repro`` has run it)."""
    entries = _yaml(workdir / "dvc.lock").get("stages", {}).get(stage, {}).get("outs", [])
    return {f"dvc.out.{e['path']}": e["md5"] for e in entries if "md5" in e}


def stage_input_hashes(stage: str, workdir: Path = Path(".")) -> dict[str, str]:
    """md5 of the data a stage reads: its deps that an upstream stage wrote, from dvc.lock.

    Upstream stages have already run when this stage starts, so these hashes are current.
    """
    deps = resolved_paths(stage, "deps", workdir)
    outs: dict[str, str] = {}
    for entry in _yaml(workdir / "dvc.lock").get("stages", {}).values():
        outs.update({e["path"]: e["md5"] for e in entry.get("outs", []) if "md5" in e})
    return {f"dvc.in.{d}": outs[d] for d in deps if d in outs}


def prefect_flow_run_id() -> str:
    from prefect.runtime import flow_run

    return str(flow_run.id or "")


@contextmanager
def pipeline_run(base: BaseParams, tags: dict[str, str]) -> Iterator[mlflow.ActiveRun]:
    """The parent run; stage processes started inside it attach their runs as its children."""
    experiment_id = configure(base)
    close_killed_runs(experiment_id)
    all_tags = {**git_commit(), **process_tags(), "edgelearn.kind": "pipeline", **tags}
    with mlflow.start_run(experiment_id=experiment_id, run_name="pipeline", tags=all_tags) as run:
        previous = os.environ.get(PARENT_RUN_ENV)
        os.environ[PARENT_RUN_ENV] = run.info.run_id
        try:
            yield run
        finally:
            if previous is None:
                os.environ.pop(PARENT_RUN_ENV, None)
            else:
                os.environ[PARENT_RUN_ENV] = previous


@contextmanager
def stage_run(base: BaseParams, stage: str, params: dict[str, Any]) -> Iterator[mlflow.ActiveRun]:
    """A stage's run: nested under the pipeline's parent run when there is one (``dvc repro``
    started from ``edgelearn run``), top-level otherwise. Logs params (flattened) and tags."""
    experiment_id = configure(base)
    parent = os.environ.get(PARENT_RUN_ENV) or None
    tags = {
        **git_commit(),
        **process_tags(),
        **stage_input_hashes(stage),
        "edgelearn.kind": "stage",
        "edgelearn.stage": stage,
        "prefect.flow_run_id": prefect_flow_run_id(),
    }
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=stage,
        parent_run_id=parent,
        nested=parent is not None,
        tags=tags,
    ) as run:
        mlflow.log_params(flatten(params))
        yield run


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = json.dumps(value) if isinstance(value, list | tuple) else value
    return out
