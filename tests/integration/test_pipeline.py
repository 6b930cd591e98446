"""End to end on the smoke configuration through the real tools: Prefect, DVC, MLflow (the
session's smoke run: tests/integration/conftest.py)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import mlflow
import pytest
import yaml

from tests.helpers import BIN, ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREPARE_KEYS = {
    "num_train", "num_val", "num_test", "num_classes", "num_speakers", "num_clients",
    "num_rejected_files",
}  # fmt: skip


STAGES = set(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])


def run(cmd: list[str], ws: Path, env: dict[str, str], timeout: int = 900):
    return subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True, timeout=timeout)


def test_pipeline_writes_outputs_and_metrics(smoke):
    ws, _, proc = smoke
    metrics = json.loads((ws / "metrics/prepare.json").read_text())
    assert set(metrics) >= PREPARE_KEYS
    assert metrics["num_clients"] == 6 and metrics["num_classes"] == 12
    assert metrics["num_speakers"] == 18 and metrics["num_rejected_files"] == 0
    lock = yaml.safe_load((ws / "dvc.lock").read_text())
    assert set(lock["stages"]) == STAGES
    assert (ws / "data/prepared/features.npy").is_file()
    assert "edgelearn pipeline finished" in proc.stdout


def test_mlflow_has_parent_and_nested_stage_runs(smoke):
    ws, uri, _ = smoke
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("edgelearn")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("edgelearn.kind") == "pipeline"]
    assert len(parents) == 1
    parent = parents[0]
    children = {
        r.data.tags["edgelearn.stage"]: r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    assert set(children) == STAGES
    lock = yaml.safe_load((ws / "dvc.lock").read_text())["stages"]
    corpus_md5 = lock["corpus"]["outs"][0]["md5"]
    prepare = children["prepare"]
    assert prepare.info.status == "FINISHED"
    assert prepare.data.params["prepare.client_test_fraction"] == "0.3"
    assert prepare.data.metrics["num_clients"] == 6
    assert prepare.data.tags["dvc.in.data/corpus"] == corpus_md5
    assert prepare.data.tags["dvc.out.data/prepared"] == lock["prepare"]["outs"][0]["md5"]
    assert prepare.data.tags["prefect.flow_run_id"]
    assert prepare.data.tags["git.commit"]
    artifacts = {a.path for a in client.list_artifacts(prepare.info.run_id, "prepare")}
    assert {"prepare/rejected.csv", "prepare/class_balance.png"} <= artifacts
    assert parent.data.metrics["prepare.num_clients"] == 6
    assert parent.data.tags["stage.prepare"] == "ran"


def test_prefect_recorded_completed_flow_runs(smoke, prefect_api):
    """The smoke run's flow runs (the pipeline's and one per stage, as its MLflow runs name them)
    completed in Prefect. Other tests share the server and leave killed runs of their own."""
    _, uri, _ = smoke
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("edgelearn").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("edgelearn.kind") == "pipeline"]
    pid = parent.info.run_id
    ours = {r.data.tags["prefect.flow_run_id"] for r in runs
            if r.info.run_id == pid or r.data.tags.get("mlflow.parentRunId") == pid}  # fmt: skip

    async def flow_runs():
        async with get_client() as prefect:
            found = await prefect.read_flow_runs()
            names = {f.id: f.name for f in await prefect.read_flows()}
            return {str(r.id): (names[r.flow_id], r.state_type.value) for r in found}

    with temporary_settings({PREFECT_API_URL: prefect_api}):
        seen = asyncio.run(flow_runs())
    assert ours <= set(seen), "flow runs MLflow names that Prefect does not know"
    states: dict[str, set[str]] = {}
    for i in ours:  # a stage may have a failed attempt that its task retried
        states.setdefault(seen[i][0], set()).add(seen[i][1])
    assert set(states) == {"edgelearn-pipeline", *STAGES}
    assert all("COMPLETED" in s for s in states.values()), states
    assert states["edgelearn-pipeline"] == {"COMPLETED"}


SUPERNET_KEYS = {
    "val_acc_full", "val_acc_smallest", "val_acc_median_subnet", "epochs", "train_seconds",
}  # fmt: skip


def test_supernet_stage_outputs_and_curves(smoke):
    ws, uri, _ = smoke
    from components.model.checkpoint import load_supernet

    metrics = json.loads((ws / "metrics/supernet.json").read_text())
    assert set(metrics) >= SUPERNET_KEYS and metrics["epochs"] == 2
    net = load_supernet(ws / "models/supernet.ckpt")
    assert net.space.num_layers == 12 and net.space.block == "inverted"  # params.yaml's space
    client = mlflow.MlflowClient(uri)
    run = client.search_runs(
        [client.get_experiment_by_name("edgelearn").experiment_id],
        filter_string="tags.`edgelearn.stage` = 'supernet'",
    )[0]
    # the super-network is scored at the last epoch only (monitor_every 5 > epochs 2), then the
    # stage logs its final figures
    for key in ("val_acc_full", "val_acc_median_subnet"):
        curve = client.get_metric_history(run.info.run_id, key)
        assert len({m.step for m in curve}) == 2, key
    final = max(curve, key=lambda m: m.step)
    assert final.value == metrics["val_acc_median_subnet"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "supernet")}
    assert {"supernet/accuracy_vs_macs.png", "supernet/training_curves.png"} <= artifacts
    assert run.data.tags["dvc.in.data/prepared"]


SEARCH_KEYS = {
    "latency_budget_ms", "predicted_latency_ms", "measured_latency_ms", "lut_error_pct", "val_acc",
    "uniform_baseline_val_acc", "candidates_evaluated", "search_seconds",
}  # fmt: skip


def test_search_stage_outputs(smoke):
    ws, uri, _ = smoke
    from components.model.checkpoint import load_subnet_file
    from components.search.lut import LatencyTable

    metrics = json.loads((ws / "metrics/search.json").read_text())
    assert set(metrics) >= SEARCH_KEYS
    arch = json.loads((ws / "search/arch.json").read_text())
    model, payload = load_subnet_file(ws / "models/searched.pt")
    assert model.widths == arch["widths"] and payload["arch"]["widths"] == arch["widths"]
    assert metrics["predicted_latency_ms"] <= metrics["latency_budget_ms"] + 1e-9
    lut = LatencyTable.load(ws / "search/lut.json", model.space)
    assert lut.predict(arch["widths"]) == pytest.approx(metrics["predicted_latency_ms"], abs=1e-5)
    history = json.loads((ws / "search/history.json").read_text())
    assert {"mcd", "random", "missing_baselines"} <= set(history)
    # the uniform multiplier is a plain scaled network, or says why none meets the budget (the
    # frontend and the fixed layers can keep the narrowest above it: docs/benchmarks.md)
    if "uniform" in history:
        details = json.loads((ws / "metrics/details/search.json").read_text())
        assert history["uniform"]["stage_channels"] and details["uniform_baseline_multiplier"] < 1
    else:
        assert "no uniform width multiplier meets" in history["missing_baselines"]["uniform"]
    # per draw, as many random draws as MCD evaluated (fewer where fewer architectures fit); a
    # measured miss with no earlier draw under the smaller budget draws again (one per round)
    rounds = len(history["random"]["iterations"])
    assert 0 < history["random"]["candidates_evaluated"] <= metrics["candidates_evaluated"] * rounds
    assert (ws / "search/pareto.png").stat().st_size > 10_000
    client = mlflow.MlflowClient(uri)
    run = client.search_runs(
        [client.get_experiment_by_name("edgelearn").experiment_id],
        filter_string="tags.`edgelearn.stage` = 'search'",
    )[0]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "search")}
    assert {"search/pareto.png", "search/lut.json", "search/arch.json"} <= artifacts
    assert run.data.params["search.profiles"] == '["cpu-1thread-quick"]'


def test_second_repro_is_up_to_date(smoke, stage_env):
    ws, _, _ = smoke
    proc = run([str(BIN / "dvc"), "repro"], ws, stage_env)
    assert proc.returncode == 0, proc.stderr
    assert "didn't change, skipping" in proc.stdout
    assert "Running stage" not in proc.stdout


def test_bad_params_stop_the_stage_with_one_message(smoke, stage_env):
    ws, _, _ = smoke
    before = (ws / "data/prepared/manifest.csv").read_bytes()
    bad = yaml.safe_load((ws / "params.yaml").read_text())
    bad["prepare"]["sorce"] = bad["prepare"].pop("source")
    (ws / "bad.yaml").write_text(yaml.safe_dump(bad))
    proc = run([str(BIN / "edgelearn"), "stage", "prepare", "--params", "bad.yaml"], ws, stage_env)
    assert proc.returncode == 2
    assert "bad.yaml: invalid parameters" in proc.stderr
    assert "prepare.sorce: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (ws / "data/prepared/manifest.csv").read_bytes() == before


def test_changed_prepare_param_reruns_only_prepare(smoke, stage_env):
    ws, _, _ = smoke
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["prepare"]["client_test_fraction"] = 0.5
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = run([str(BIN / "dvc"), "repro", "prepare"], ws, stage_env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Stage 'corpus' didn't change, skipping" in proc.stdout
    assert "Running stage 'prepare'" in proc.stdout
    details = json.loads((ws / "metrics/details/prepare.json").read_text())  # beyond the headline
    assert details["num_client_test"] > 0
