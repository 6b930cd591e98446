"""What every stage flow does around its component, written once: read the params, hand the stage
only what its ``dvc.yaml`` entry declares, open its MLflow run, show progress, record metrics."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from matplotlib.figure import Figure
from prefect import get_run_logger

from components.config import Params, declared_values, load_params, restrict
from components.io import write_json_atomic
from flows.contract import declared_keys
from flows.logs import quiet_third_party
from flows.progress import StageProgress
from flows.tracking import stage_run


@dataclass
class StageRun:
    name: str
    params: Params  # a view: only the keys dvc.yaml declares for this stage
    full_params: Params  # for the flow's own plumbing (tracking store), never for the stage
    run: mlflow.ActiveRun
    logger: logging.Logger | logging.LoggerAdapter[Any]
    progress: StageProgress
    workdir: Path

    @property
    def run_id(self) -> str:
        return str(self.run.info.run_id)

    def log_figures(self, figures: Mapping[str, Figure]) -> None:
        """Log each figure as ``<stage>/<name>.png`` in the stage's run."""
        for name, fig in figures.items():
            mlflow.log_figure(fig, f"{self.name}/{name}.png")

    def finish(self, metrics: Mapping[str, Any], step: int | None = None) -> dict[str, Any]:
        """Write ``<paths.metrics>/<stage>.json`` atomically (DVC reads it), log the numbers
        (``step`` places them after the stage's own per-epoch curve of the same keys)."""
        path = self.workdir / self.full_params.paths.metrics / f"{self.name}.json"
        write_json_atomic(path, dict(metrics))
        numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
        mlflow.log_metrics(numbers, step=step)
        mlflow.log_artifact(str(path))
        self.logger.info("%s: %s", self.name, dict(metrics))
        return dict(metrics)


@contextmanager
def stage(name: str, params_path: str, progress: bool | None = None) -> Iterator[StageRun]:
    """The stage's MLflow run (nested under the pipeline's run when there is one), its params as
    ``dvc.yaml`` declares them, and a progress reporter (bars on a terminal when ``progress`` is
    None, always with True, log lines with False)."""
    quiet_third_party()
    full = load_params(params_path)
    workdir = Path(".")
    keys = declared_keys(name, workdir)
    view = restrict(full, keys, name)
    logger = get_run_logger()
    reporter = StageProgress(name, logger, progress)
    with stage_run(full.base, name, declared_values(full, keys)) as run:
        try:
            yield StageRun(name, view, full, run, logger, reporter, workdir)
        finally:
            reporter.close()
