"""The smoke pipeline run that the integration test modules read: built once per session."""

from __future__ import annotations

import subprocess

import pytest

from flows.workspace import SMOKE_PARAMS, create_workspace
from tests.helpers import BIN, ROOT


@pytest.fixture(scope="session")
def smoke(tmp_path_factory, stage_env):
    """``edgelearn run`` on the smoke configuration in a scratch workspace with its own MLflow
    store: (workspace, tracking URI, the finished process). A few minutes on 2 cores, so every
    module shares it; a test that changes the workspace works on a copy of it, or changes only
    what no other test reads."""
    tmp = tmp_path_factory.mktemp("smoke")
    store = tmp / "mlruns"
    ws = create_workspace(
        ROOT, tmp / "ws", ROOT / SMOKE_PARAMS, f"sqlite:///{store}/mlflow.db", str(store / "art")
    )
    proc = subprocess.run([str(BIN / "edgelearn"), "run"], cwd=ws, env=stage_env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return ws, f"sqlite:///{store}/mlflow.db", proc
