"""Operating the pipeline as its users do, with the real tools: the nightly deployment on a real
Prefect server, two runs of one workspace at once, runs killed in the middle of a stage, and DVC
experiments. Each test works on its own copy of the smoke workspace (and its own MLflow store)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import mlflow
import psutil
import pytest
import yaml

from tests.helpers import BIN

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STAGES = ("corpus", "prepare", "supernet", "search", "finetune", "export")
# Changing this re-runs the export stage alone, the cheapest stage to re-run (int8 calibration).
EXPORT_KNOB = ("export", "calibration_clips")


def copy_workspace(smoke: tuple[Path, str, Any], dest: Path) -> tuple[Path, str]:
    """A copy of the smoke workspace (outputs, dvc.lock, DVC cache) with its own MLflow store."""
    ws = dest / "ws"
    shutil.copytree(smoke[0], ws, symlinks=True)
    shutil.rmtree(ws / ".edgelearn", ignore_errors=True)
    uri = f"sqlite:///{dest / 'mlruns' / 'mlflow.db'}"
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["base"]["tracking_uri"] = uri  # read by no stage: DVC sees no change
    params["base"]["artifact_root"] = str(dest / "mlruns" / "artifacts")
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return ws, uri


def set_param(ws: Path, section: str, key: str, value: Any) -> None:
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params[section][key] = value
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def snapshot(ws: Path) -> dict[str, str]:
    """sha256 of every file under the export stage's outputs and of the pipeline's records."""
    files = [p for p in (ws / "export").rglob("*") if p.is_file()]
    files += [ws / "metrics/export.json", ws / "metrics/details/export.json", ws / "dvc.lock"]
    return {str(p.relative_to(ws)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def start_run(ws: Path, env: dict[str, str], *args: str, log: str = "run.log") -> subprocess.Popen:
    """``edgelearn run`` in its own process group (as a shell job is), output to ``ws/log``."""
    out = open(ws / log, "w")  # noqa: SIM115 - the child owns it; closed when the test ends
    cmd = [str(BIN / "edgelearn"), "run", *args]
    return subprocess.Popen(cmd, cwd=ws, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=interruptible)  # fmt: skip


def interruptible() -> None:
    """Ctrl-C's default action in the child: a test suite started in the background by a
    non-interactive shell (as CI may be) ignores SIGINT, and children inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_stage(proc: subprocess.Popen, stage: str, timeout: float = 300) -> None:
    """Block until ``edgelearn stage STAGE`` runs under ``proc`` (started by its ``dvc repro``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before {stage}"
        try:
            children = psutil.Process(proc.pid).children(recursive=True)
            if any(_is_stage(c, stage) for c in children):
                return
        except psutil.Error:
            pass
        time.sleep(0.2)
    raise AssertionError(f"stage {stage} did not start within {timeout} s")


def wait_for_line(log: Path, text: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while text not in (log.read_text() if log.is_file() else ""):
        assert time.monotonic() < deadline, f"{log.name} never said {text!r}"
        time.sleep(0.2)


def _is_stage(proc: psutil.Process, stage: str) -> bool:
    try:
        cmd = proc.cmdline()
    except psutil.Error:
        return False
    return "stage" in cmd and stage in cmd


def parent_runs(uri: str) -> list[mlflow.entities.Run]:
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("edgelearn")
    return client.search_runs([experiment.experiment_id], "tags.`edgelearn.kind` = 'pipeline'",
                              order_by=["attributes.start_time ASC"])  # fmt: skip


def stage_states(run: mlflow.entities.Run) -> dict[str, str]:
    return {s: run.data.tags.get(f"stage.{s}", "missing") for s in STAGES}


def dvc_up_to_date(ws: Path, env: dict[str, str]) -> bool:
    proc = subprocess.run([str(BIN / "dvc"), "status", "--json"], cwd=ws, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout or "{}") == {}


# --- schedules ----------------------------------------------------------------------------------


def test_nightly_deployment_runs_on_a_real_prefect_server(smoke, stage_env, tmp_path, prefect_api):
    """`edgelearn serve` registers the deployment; runs triggered through Prefect's client skip
    every stage of an unchanged workspace and re-run exactly the stage a changed param affects."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    ws, uri = copy_workspace(smoke, tmp_path)
    env = {**stage_env, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    out = open(ws / "serve.log", "w")  # noqa: SIM115 - the child owns it
    serve = subprocess.Popen([str(BIN / "edgelearn"), "serve"], cwd=ws, env=env, stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        with temporary_settings({PREFECT_API_URL: prefect_api}):

            async def deployment() -> Any:
                async with get_client() as client:
                    return await client.read_deployment_by_name("edgelearn-pipeline/nightly")

            deadline = time.monotonic() + 180
            while True:
                try:
                    dep = asyncio.run(deployment())
                    break
                except Exception:  # noqa: BLE001 - not registered yet
                    assert serve.poll() is None, (ws / "serve.log").read_text()[-3000:]
                    assert time.monotonic() < deadline, (ws / "serve.log").read_text()[-3000:]
                    time.sleep(1)
            cron = yaml.safe_load((ws / "params.yaml").read_text())["schedule"]["cron"]
            assert [s.schedule.cron for s in dep.schedules] == [cron]

            first = run_deployment("edgelearn-pipeline/nightly", timeout=600)
            assert first.state.is_completed(), (ws / "serve.log").read_text()[-3000:]
            assert first.total_run_time.total_seconds() < 60  # nothing to do
            set_param(ws, *EXPORT_KNOB, 32)
            second = run_deployment("edgelearn-pipeline/nightly", timeout=600)
            assert second.state.is_completed(), (ws / "serve.log").read_text()[-3000:]
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=60)
    runs = {r.data.tags["prefect.flow_run_id"]: r for r in parent_runs(uri)}
    assert set(stage_states(runs[str(first.id)]).values()) == {"skipped"}
    changed = stage_states(runs[str(second.id)])
    assert changed == {**dict.fromkeys(STAGES, "skipped"), "export": "ran"}
    assert dvc_up_to_date(ws, stage_env)


# --- two runs, killed runs ----------------------------------------------------------------------


def test_second_run_stops_or_waits_and_a_killed_run_leaves_outputs(smoke, stage_env, tmp_path):
    """While a run holds the workspace a second stops at once (or waits, by choice); SIGKILL in
    the middle of a stage leaves the previous outputs and dvc.lock as they were, and the run that
    waited then completes with the outputs of an uninterrupted run of the same params."""
    ws, uri = copy_workspace(smoke, tmp_path / "killed")
    set_param(ws, *EXPORT_KNOB, 48)
    before = snapshot(ws)
    first = start_run(ws, stage_env, log="first.log")
    wait_for_line(ws / ".edgelearn/run.lock", f"pid {first.pid}, since")
    waiting = start_run(ws, stage_env, "--if-busy", "wait", log="waiting.log")
    second = subprocess.run([str(BIN / "edgelearn"), "run"], cwd=ws, env=stage_env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert second.returncode == 2
    last = second.stderr.strip().splitlines()[-1]
    assert "another edgelearn run" in last and "--if-busy wait" in last
    assert "Traceback" not in second.stderr
    wait_for_line(ws / "waiting.log", "waiting for the edgelearn run (pid ")
    wait_for_stage(first, "export")
    time.sleep(2)  # in the middle of it
    assert first.poll() is None, "the first run ended before it could be killed mid-stage"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    assert snapshot(ws) == before  # the killed stage changed nothing (the waiting run has not
    # finished its own export yet: outputs are swapped in only at a stage's end)
    assert waiting.wait(timeout=900) == 0, (ws / "waiting.log").read_text()[-3000:]
    assert dvc_up_to_date(ws, stage_env)
    killed, completed = parent_runs(uri)  # the run that stopped at once made none
    assert stage_states(completed)["export"] == "ran"
    assert (killed.info.status, completed.info.status) == ("KILLED", "FINISHED")

    # the same params, uninterrupted, in a fresh copy
    ref, _ = copy_workspace(smoke, tmp_path / "reference")
    set_param(ref, *EXPORT_KNOB, 48)
    proc = subprocess.run([str(BIN / "edgelearn"), "run"], cwd=ref, env=stage_env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("export/model.onnx", "export/model.int8.onnx"):
        if (ref / name).exists() or (ws / name).exists():
            assert (ws / name).read_bytes() == (ref / name).read_bytes(), name
    got, want = (json.loads((w / "metrics/export.json").read_text()) for w in (ws, ref))
    assert got.keys() == want.keys()
    for key in ("fp32_test_acc", "int8_test_acc", "parity_max_abs_diff", "onnx_bytes"):
        if key in want:
            assert got[key] == want[key], key


def test_interrupted_run_says_so_and_leaves_outputs(smoke, stage_env, tmp_path):
    """Ctrl-C (SIGINT to the run's process group) in the middle of a stage: the run ends with one
    line saying so, the stage's previous outputs and dvc.lock are untouched, the workspace is
    free again, and the next run completes."""
    ws, _ = copy_workspace(smoke, tmp_path)
    set_param(ws, *EXPORT_KNOB, 40)
    before = snapshot(ws)
    run = start_run(ws, stage_env)
    wait_for_stage(run, "export")
    time.sleep(3)
    os.killpg(run.pid, signal.SIGINT)
    code = run.wait(timeout=120)
    log = (ws / "run.log").read_text()
    assert code == 130, log[-3000:]
    assert log.strip().splitlines()[-1].startswith("edgelearn: interrupted"), log[-3000:]
    assert snapshot(ws) == before
    again = subprocess.run([str(BIN / "edgelearn"), "run"], cwd=ws, env=stage_env,
                           capture_output=True, text=True, timeout=900)  # fmt: skip
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert dvc_up_to_date(ws, stage_env)


# --- DVC experiments ----------------------------------------------------------------------------


def test_dvc_experiment_run_and_show(smoke, stage_env, tmp_path):
    """`dvc exp run -S` re-runs what the change affects and `dvc exp show` lists the experiment
    with its params and headline metrics (DVC experiments live in git: the copy becomes a repo)."""
    ws, _ = copy_workspace(smoke, tmp_path)
    config = ws / ".dvc" / "config"
    config.write_text(config.read_text().replace("no_scm = True", "").replace("[core]\n\n", ""))

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=ws, check=True, capture_output=True, timeout=120)

    git("init", "-q")
    git("config", "user.email", "ci@example.invalid")
    git("config", "user.name", "ci")
    # git keeps what DVC does not cache (the metrics, as DVC's own examples do); DVC the rest
    outs = [e["path"] for st in yaml.safe_load((ws / "dvc.lock").read_text())["stages"].values()
            for e in st.get("outs", []) if not e["path"].startswith("metrics/")]  # fmt: skip
    (ws / ".gitignore").write_text("".join(f"/{o}\n" for o in outs) + "*.log\n/.edgelearn/\n")
    git("add", "-A")
    git("commit", "-q", "-m", "smoke workspace")
    proc = subprocess.run([str(BIN / "dvc"), "exp", "run", "-n", "fewer-clips", "-S",
                           "export.calibration_clips=24"], cwd=ws, env=stage_env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Running stage 'export'" in proc.stdout
    assert "Running stage 'supernet'" not in proc.stdout
    shown = subprocess.run([str(BIN / "dvc"), "exp", "show", "--json"], cwd=ws, env=stage_env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)
    exps = [e for row in rows for e in (row.get("experiments") or [])]
    named = [e for e in exps if e.get("name") == "fewer-clips"]
    assert named, shown.stdout[:2000]
    data = named[0]["revs"][0]["data"]
    params = data["params"]["params.yaml"]["data"]
    assert params["export"]["calibration_clips"] == 24
    metrics = data["metrics"]["metrics/export.json"]["data"]
    assert "fp32_test_acc" in metrics
