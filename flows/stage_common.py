"""What every stage flow does around its component: load params, track, write metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow

from components.io import write_json_atomic

METRICS_DIR = Path("metrics")


def record_metrics(
    stage: str, metrics: dict[str, Any], workdir: Path = Path("."), step: int | None = None
) -> Path:
    """Write ``metrics/<stage>.json`` atomically (DVC reads it) and log the numbers to MLflow.

    ``step`` places the final numbers after a stage's own per-epoch curve of the same keys.
    """
    path = workdir / METRICS_DIR / f"{stage}.json"
    write_json_atomic(path, metrics)
    numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
    mlflow.log_metrics(numbers, step=step)
    mlflow.log_artifact(str(path))
    return path
