"""The pipeline flow: each DVC stage a Prefect task in dvc.yaml order; DVC skips what is current."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import mlflow
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client

from components.config import Params, load_params
from components.errors import ConfigError, EdgelearnError
from flows.cli import ERROR_FILE_ENV
from flows.contract import dvc_stages
from flows.lock import workspace_lock
from flows.report import write_report
from flows.tracking import PARENT_RUN_ENV, pipeline_run, prefect_flow_run_id, stage_output_hashes

USER_ERROR_EXIT = 2  # the CLI's exit code for bad input: retrying cannot help


class StageFailed(EdgelearnError):
    """A stage's ``dvc repro`` failed; the message is the stage's own last line (why, and the
    fix), so the pipeline ends its output with it."""

    def __init__(self, stage: str, returncode: int, why: str) -> None:
        super().__init__(f"stage {stage!r} failed: {why}")
        self.returncode = returncode


def _retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except StageFailed as failed:
        return failed.returncode != USER_ERROR_EXIT
    except Exception:  # noqa: BLE001 - anything else may be transient
        return True
    return False


# What `dvc repro` itself prints on stdout around a stage: its git/push hints and narration of
# what edgelearn already logs. Everything else (the stage's own output, DVC's warnings and errors
# on stderr) passes through.
DVC_CHATTER = re.compile(
    r"^(Running stage '.*':|> .*|Updating lock file '.*'|Stage '.*' didn't change, skipping|"
    r"Data and pipelines are up to date\.|To track the changes with git, run:|\tgit add .*|"
    r"To enable auto staging, run:|\tdvc config core\.autostage true|"
    r"Use `dvc push` to send your updates to remote storage\.|)$"
)


def _dvc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], env=env, text=True, capture_output=True
    )


def _dvc_streaming(*args: str, env: dict[str, str]) -> int:
    """Run dvc with its stdout filtered line by line (``DVC_CHATTER`` dropped) and its stderr
    untouched, so progress bars on a terminal still reach it."""
    with subprocess.Popen([sys.executable, "-m", "dvc", *args], env=env, text=True,
                          stdout=subprocess.PIPE, bufsize=1) as proc:  # fmt: skip
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                _echo(line)
        except KeyboardInterrupt:
            # Ctrl-C reached dvc and its stage as well (one process group): let them end and say
            # so, so that the pipeline's own line about it comes last
            try:
                rest, _ = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                rest = ""
            for line in (rest or "").splitlines(keepends=True):
                _echo(line)
            raise
    return proc.returncode


def _echo(line: str) -> None:
    if not DVC_CHATTER.match(line.rstrip("\n")):
        sys.stdout.write(line)
        sys.stdout.flush()


@task(retries=1, retry_delay_seconds=5, retry_condition_fn=_retry_unless_user_error)
def repro_stage(stage: str, env: dict[str, str]) -> dict[str, Any]:
    """``dvc repro --single-item STAGE``; its output streams to the terminal as it runs."""
    logger = get_run_logger()
    status = _dvc("status", "--json", stage, env=env)
    up_to_date = status.returncode == 0 and not json.loads(status.stdout or "{}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgelearn-stage-") as tmp:
        error_file = Path(tmp) / "error"
        code = _dvc_streaming("repro", "--single-item", stage,
                              env={**env, ERROR_FILE_ENV: str(error_file)})  # fmt: skip
        why = error_file.read_text().strip() if error_file.is_file() else ""
    seconds = round(time.perf_counter() - start, 2)
    if code != 0:
        raise StageFailed(stage, code, why or f"dvc repro exit code {code}; see the log above")
    outcome = "up to date (skipped by DVC)" if up_to_date else "ran"
    logger.info("stage %s: %s in %.1f s", stage, outcome, seconds)
    return {"stage": stage, "ran": not up_to_date, "seconds": seconds}


def _stage_env() -> dict[str, str]:
    """Environment for the stage processes: this venv's tools first, this Prefect API server."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    with get_client(sync_client=True) as client:
        env["PREFECT_API_URL"] = str(client.api_url).rstrip("/")
    return env


@flow(name="edgelearn-pipeline")
def pipeline_flow(params_path: str = "params.yaml", if_busy: str = "stop") -> list[dict[str, Any]]:
    """Run every DVC stage in order inside one MLflow parent run, holding the workspace lock
    (``if_busy``: ``stop`` at once or ``wait`` when another run holds it)."""
    params = load_params(params_path)  # fail before anything runs
    if if_busy not in ("stop", "wait"):
        raise ConfigError(f"if_busy: expected 'stop' or 'wait', got {if_busy!r}")
    stages = list(dvc_stages())
    logger = get_run_logger()
    results: list[dict[str, Any]] = []
    tags = {"prefect.flow_run_id": prefect_flow_run_id(), "edgelearn.stages": ",".join(stages)}
    busy: Literal["stop", "wait"] = "wait" if if_busy == "wait" else "stop"
    with workspace_lock(Path("."), busy), pipeline_run(params.base, tags) as parent:
        env = _stage_env()
        env[PARENT_RUN_ENV] = parent.info.run_id
        results.extend(repro_stage(stage, env) for stage in stages)
        parent_id, experiment_id = parent.info.run_id, parent.info.experiment_id
        _tag_stage_outputs(parent_id, experiment_id, stages)
        skipped = [r["stage"] for r in results if not r["ran"]]
        _record_skipped(parent_id, experiment_id, skipped)
        if Path("dvc.lock").is_file():
            mlflow.log_artifact("dvc.lock")
        mlflow.log_metrics(headline_metrics(Path(params.paths.metrics), stages))
        mlflow.set_tags({f"stage.{r['stage']}": "ran" if r["ran"] else "skipped"
                         for r in results})  # fmt: skip
        report = write_report(params, results)
        mlflow.log_artifact(str(report))
        publish_report(report, results, params)
    logger.info("pipeline done: MLflow parent run %s", parent.info.run_id)
    for r in results:
        r["mlflow_parent_run_id"] = parent.info.run_id
    return results


def publish_report(report: Path, results: list[dict[str, Any]], params: Params) -> None:
    """The run's summary as a Prefect artifact (the flow run's Artifacts tab), pointing at the
    report page."""
    rows = "\n".join(f"| {r['stage']} | {'ran' if r['ran'] else 'skipped by DVC'} | "
                     f"{r['seconds']:.1f} s |" for r in results)  # fmt: skip
    create_markdown_artifact(
        key="edgelearn-report",
        markdown="## edgelearn pipeline run\n\n| stage | status | time |\n|---|---|---|\n"
        f"{rows}\n\nReport: `{report.resolve()}` (also an artifact of the MLflow run); "
        f"MLflow: `mlflow ui --backend-store-uri {params.base.tracking_uri}`, then the report's "
        "MLflow links (they open the model-training view)",
        description="edgelearn pipeline run: stages, times and where the report is",
    )


def headline_metrics(metrics_dir: Path, stages: list[str]) -> dict[str, float]:
    """Every stage's numbers from ``metrics/<stage>.json``, as ``<stage>.<key>``."""
    out: dict[str, float] = {}
    for name in stages:
        path = metrics_dir / f"{name}.json"
        if path.is_file():
            numbers = json.loads(path.read_text())
            out.update({f"{name}.{k}": float(v) for k, v in numbers.items()
                        if isinstance(v, int | float) and not isinstance(v, bool)})  # fmt: skip
    return out


def _tag_stage_outputs(parent_id: str, experiment_id: str, stages: list[str]) -> None:
    """Tag each stage's nested run with the DVC hashes of what it wrote (known only after repro)."""
    runs = mlflow.search_runs(
        [experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
        output_format="list",
    )
    client = mlflow.MlflowClient()
    for run in runs:
        stage = run.data.tags.get("edgelearn.stage")
        if stage in stages:
            for key, value in stage_output_hashes(stage).items():
                client.set_tag(run.info.run_id, key, value)


def _producer(experiment_id: str, stage: str, hashes: dict[str, str]) -> str | None:
    """The latest run of ``stage`` that wrote exactly the outputs now recorded in dvc.lock."""
    if not hashes:
        return None
    wanted = " and ".join(f"tags.`{k}` = '{v}'" for k, v in hashes.items())
    runs = mlflow.search_runs(
        [experiment_id],
        filter_string=f"tags.`edgelearn.stage` = '{stage}' and {wanted}",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    return runs[0].info.run_id if runs else None


def _record_skipped(parent_id: str, experiment_id: str, skipped: list[str]) -> None:
    """A nested run for each stage DVC skipped, saying so and linking the run whose outputs are
    still current (its metrics copied, so the parent's story is complete)."""
    client = mlflow.MlflowClient()
    for stage in skipped:
        hashes = stage_output_hashes(stage)
        producer = _producer(experiment_id, stage, hashes)
        tags = {"edgelearn.kind": "stage", "edgelearn.stage": stage, "edgelearn.skipped": "true",
                "mlflow.parentRunId": parent_id, **hashes}  # fmt: skip
        note = f"Skipped by DVC: `{stage}`'s inputs did not change since its outputs were made"
        if producer:
            tags["edgelearn.produced_by"] = producer
            note += f" by run [{producer}](#/experiments/{experiment_id}/runs/{producer})."
        tags["mlflow.note.content"] = note
        run = client.create_run(experiment_id, run_name=f"{stage} (skipped)", tags=tags)
        if producer:
            for key, value in client.get_run(producer).data.metrics.items():
                client.log_metric(run.info.run_id, key, value)
        client.set_terminated(run.info.run_id, "FINISHED")
