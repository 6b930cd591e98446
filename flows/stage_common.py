"""What every stage flow does around its component: load params, track, write metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow

from components.io import write_json_atomic

METRICS_DIR = Path("metrics")


def record_metrics(stage: str, metrics: dict[str, Any], workdir: Path = Path(".")) -> Path:
    """Write ``metrics/<stage>.json`` atomically (DVC reads it) and log the numbers to MLflow."""
    path = workdir / METRICS_DIR / f"{stage}.json"
    write_json_atomic(path, metrics)
    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, int | float)})
    mlflow.log_artifact(str(path))
    return path
