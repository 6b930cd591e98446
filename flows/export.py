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
from flows.runner import stage
from flows.tracking import git_commit, stage_input_hashes

VERSION_TAGS = ("fp32_test_acc", "int8_test_acc", "parity_max_abs_diff")
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
        registered_model_name=name,
        onnx_execution_providers=["CPUExecutionProvider"],
        pip_requirements=SERVING_REQUIREMENTS,
        save_as_external_data=False,
        extra_files=[str(bundle / "labels.json"), str(bundle / "metadata.json")],
        metadata={"edgelearn.bundle": str(bundle), "opset": params.export.opset},
    )
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    provenance: dict[str, Any] = result.metadata["provenance"]
    for key in ("git_commit", "mlflow_run_id"):
        client.set_model_version_tag(name, version, key, str(provenance.get(key, "")))
    for key in VERSION_TAGS:
        client.set_model_version_tag(name, version, key, str(result.metrics[key]))
    mlflow.log_artifacts(str(bundle), "export/bundle")
    mlflow.log_dict(result.latency, "export/latency.json")
    mlflow.set_tag("export.registered_version", version)
    return version


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
        s.logger.info("registered %s version %s", s.params.export.registered_model_name,
                      version)  # fmt: skip
        return s.finish(result.metrics)
