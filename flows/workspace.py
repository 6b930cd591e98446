"""Scratch copies of the project (smoke runs, tests) with their own params and DVC state."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from components.config import params_from_dict
from components.errors import ConfigError
from components.io import write_text_atomic

SMOKE_PARAMS = "configs/smoke.yaml"
# What a stage needs besides the installed package: the stage graph and the code it lists as deps.
PROJECT_FILES = ("dvc.yaml", ".dvcignore")
PROJECT_DIRS = ("components", "configs/devices", "data/external")


def create_workspace(
    project: Path,
    dest: Path,
    params_file: Path,
    tracking_uri: str | None = None,
    artifact_root: str | None = None,
) -> Path:
    """Copy the stage graph and code into ``dest`` with ``params_file`` as its params.yaml.

    Re-running reuses the workspace's DVC cache, so unchanged stages are skipped as usual. The
    tracking store defaults to the project's own (absolute), so smoke runs show up in its MLflow UI.
    """
    project, dest = project.resolve(), dest.resolve()
    params_file = params_file if params_file.is_absolute() else project / params_file
    for needed in (project / "dvc.yaml", params_file):
        if not needed.is_file():
            raise ConfigError(
                f"{needed}: not found: a workspace is a copy of an edgelearn project (its "
                "dvc.yaml, components/ and configs/); run this in the project's directory"
            )
    data = yaml.safe_load(params_file.read_text()) or {}
    base = data.setdefault("base", {})
    store = project / "mlruns"
    base["tracking_uri"] = tracking_uri or f"sqlite:///{store / 'mlflow.db'}"
    base["artifact_root"] = artifact_root or str(store / "artifacts")
    # DVC needs every key a stage lists to be present, so write the full resolved params.
    resolved = params_from_dict(data, params_file).model_dump(mode="json")
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        if (project / name).is_file():
            shutil.copy2(project / name, dest / name)
    for name in PROJECT_DIRS:
        shutil.rmtree(dest / name, ignore_errors=True)
        shutil.copytree(project / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    write_text_atomic(dest / "params.yaml", yaml.safe_dump(resolved, sort_keys=False))
    if not (dest / ".dvc").is_dir():
        subprocess.run(
            [sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=dest, check=True
        )
    return dest
