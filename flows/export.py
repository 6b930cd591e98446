"""Prefect flow of the export stage: ONNX graphs and bundle, logged and registered in MLflow."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import mlflow
import onnx
from mlflow.models import infer_signature
from prefect import flow

from components.config import Params
from components.export import stage as export
from components.export.figures import detection_tradeoff
from flows.runner import stage
from flows.tracking import git_commit, stage_input_hashes

VERSION_TAGS = ("fp32_test_acc", "int8_test_acc", "int8_shipped", "parity_max_abs_diff")
CHAMPION, CHALLENGER = "champion", "challenger"
HELD_OUT = "fp32_test_acc"  # what a new version must beat to become the champion
# What serving the logged model needs, pinned to what produced it; MLflow would otherwise infer
# this by importing the model in a subprocess (about 7 s per logged model).
SERVING_REQUIREMENTS = [
    f"{pkg}=={importlib.metadata.version(pkg)}" for pkg in ("mlflow", "onnx", "onnxruntime")
]


def log_and_register(result: export.ExportResult, params: Params) -> str:
    """Log the fp32 graph as an MLflow ONNX model (signature, input example, labels and metadata
    alongside) and register it as a new version of ``export.registered_model_name``; log the
    bundle and the latency figures to the active run. Returns the new version."""
    name = params.export.registered_model_name
    bundle = result.bundle_dir
    info = mlflow.onnx.log_model(
        onnx.load(str(result.fp32_path)),
        name="model",
        signature=infer_signature(result.example, result.example_outputs),
        input_example=result.example,
        onnx_execution_providers=["CPUExecutionProvider"],
        pip_requirements=SERVING_REQUIREMENTS,
        save_as_external_data=False,
        extra_files=[str(bundle / "labels.json"), str(bundle / "metadata.json")],
        metadata={"edgelearn.bundle": str(bundle), "opset": params.export.opset},
    )
    client = mlflow.MlflowClient()
    # Registered through the client: the fluent API prints its own lines to stderr.
    try:
        client.create_registered_model(name)
    except mlflow.exceptions.MlflowException as err:
        if err.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    run = mlflow.active_run()
    version = str(client.create_model_version(
        name, info.model_uri, run_id=run.info.run_id if run else None, model_id=info.model_id
    ).version)  # fmt: skip
    provenance: dict[str, Any] = result.metadata["provenance"]
    for key in ("git_commit", "mlflow_run_id"):
        client.set_model_version_tag(name, version, key, str(provenance.get(key, "")))
    for key in VERSION_TAGS:
        client.set_model_version_tag(name, version, key, str(result.metrics[key]))
    client.update_model_version(name, version, description=model_card(result))
    alias = promote(client, name, version, result.metrics)
    mlflow.log_artifacts(str(bundle), "export/bundle")
    mlflow.log_dict(result.latency, "export/latency.json")
    mlflow.set_tags({"export.registered_version": version, "export.alias": alias})
    return version


def promote(client: mlflow.MlflowClient, name: str, version: str, metrics: dict[str, Any]) -> str:
    """Move ``@champion`` to ``version`` when it beats the current champion's held-out test
    accuracy (or there is none); otherwise it becomes ``@challenger``. Returns the alias set.
    (It got here, so it passed the export gates.)"""
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        champion = None
    new = float(metrics[HELD_OUT])
    old = float(champion.tags.get(HELD_OUT, "nan")) if champion is not None else float("nan")
    alias = CHAMPION if champion is None or not new <= old else CHALLENGER
    client.set_registered_model_alias(name, alias, version)
    return alias


def model_card(result: export.ExportResult) -> str:
    """The registry version's description: what it is, where it came from, how it did."""
    meta, m = result.metadata, result.metrics
    prov = meta["provenance"]
    arch = meta["architecture"]
    inputs = "\n".join(f"- `{k}`: `{v}`" for k, v in sorted(prov.get("dvc_inputs", {}).items()))
    int8 = (
        "shipped" if m["int8_shipped"]
        else "not shipped: " + "; ".join(meta["quantization"]["refused_because"])
    )  # fmt: skip
    latency = (f"fp32 {m['fp32_latency_ms']} ms, int8 {m['int8_latency_ms']} ms"
               if meta["latency_ms"].get("measured_here", True) else
               "not measured here (its table was imported: time it on the device)")  # fmt: skip
    detection = (f"{m['false_accepts_per_hour']} false accepts per hour, "
                 f"{m['false_reject_rate']}% of keywords missed")  # fmt: skip
    real = (f"keywords {m['real_voice_keyword_acc']}% of {m['real_voice_keyword_clips']}, "
            f"non-keywords called unknown {m['real_voice_unknown_pct']}% of "
            f"{m['real_voice_unknown_clips']}")  # fmt: skip
    return f"""## edgelearn keyword spotter

Raw 16 kHz audio ({meta["clip_samples"]} samples) in, a score per class of `labels.json` out.

| | |
|---|---|
| architecture | widths {arch["widths"]}, {arch["parameters"]} parameters, {arch["macs"]} MACs |
| test accuracy (fp32, held-out server + client test clips) | {m["fp32_test_acc"]}% |
| int8 | {m["int8_test_acc"]}%, {int8} |
| latency on `{meta["latency_ms"]["profile"]}` (batch 1, median) | {latency} |
| parity with PyTorch | max abs diff {m["parity_max_abs_diff"]:.2g} |
| streaming detection (test streams, threshold {m["detection_threshold"]}) | {detection} |
| real human voices ({m["real_voice_clips"]} clips Debian ships) | {real} |
| git commit | `{prov.get("git_commit", "")}` (dirty: {prov.get("git_dirty", "")}) |
| MLflow run | `{prov.get("mlflow_run_id", "")}` |

Data (DVC hashes of the stage's inputs):
{inputs or "- (not recorded)"}

Champion/challenger compare the held-out test accuracy; versions built from different data hashes
were scored on different test clips.
"""


@flow(name="export")
def export_flow(params_path: str = "params.yaml", progress: bool | None = None) -> dict:
    with stage("export", params_path, progress) as s:
        git = git_commit()
        provenance = {
            "git_commit": git["git.commit"],
            "git_dirty": git["git.dirty"],
            "dvc_inputs": {
                k.removeprefix("dvc.in."): v for k, v in stage_input_hashes("export").items()
            },
            "mlflow_run_id": s.run_id,
        }
        result = export.run(s.params, s.workdir, provenance)
        version = log_and_register(result, s.params)
        for device, bundle in result.fleet_bundles.items():  # a fleet: the further devices'
            mlflow.log_artifacts(str(bundle), f"export/devices/{device}/bundle")
            figures = result.metrics["fleet"][device].items()
            numbers = {k: v for k, v in figures if isinstance(v, int | float)
                       and not isinstance(v, bool)}  # fmt: skip
            mlflow.log_metrics({f"{device}.{k}": float(v) for k, v in numbers.items()})
        s.log_figures({"detection_tradeoff": detection_tradeoff(
            result.metrics["detection_curve"], result.metrics["detection_threshold"],
            s.params.export.target_false_accepts_per_hour)})  # fmt: skip
        s.logger.info("registered %s version %s", s.params.export.registered_model_name,
                      version)  # fmt: skip
        return s.finish(result.metrics, headline=export.HEADLINE)
