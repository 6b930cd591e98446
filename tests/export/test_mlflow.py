"""The export stage's MLflow side: model logged with signature and example, registered, readable."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest

from flows.export import log_and_register

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_model_is_registered_as_a_new_version_per_run(exported, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.create_experiment("t", artifact_location=(tmp_path / "art").as_uri())
        versions = []
        for _ in range(2):
            with mlflow.start_run(experiment_id=experiment) as run:
                versions.append(log_and_register(exported.result, exported.params))
        client = mlflow.MlflowClient(uri)
        name = exported.params.export.registered_model_name
        assert versions == ["1", "2"]
        latest = client.get_model_version(name, "2")
        assert latest.tags["fp32_test_acc"] == str(exported.result.metrics["fp32_test_acc"])
        assert "false accepts per hour" in latest.description  # the model card's detection row
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "export/bundle")}
        assert "export/bundle/SHA256SUMS" in artifacts
        assert latest.run_id == run.info.run_id
        assert client.get_run(run.info.run_id).data.tags["export.registered_version"] == "2"

        model = mlflow.pyfunc.load_model(f"models:/{name}/2")
        inputs = model.metadata.get_input_schema().inputs
        assert inputs[0].shape == (-1, 16000)
        assert [o.name for o in model.metadata.get_output_schema().inputs] == [
            "logits", "probabilities",
        ]  # fmt: skip
        out = model.predict(exported.result.example)
        assert np.allclose(out["logits"], exported.result.example_outputs["logits"], atol=1e-5)
    finally:
        mlflow.set_tracking_uri(None)
