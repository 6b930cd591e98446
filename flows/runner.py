"""What every stage flow does around its component, written once: read the params, hand the stage
only what its ``dvc.yaml`` entry declares, open its MLflow run, show progress, record metrics."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from matplotlib.figure import Figure
from prefect import get_run_logger

from components.config import Params, load_params
from components.config_view import declared_values, restrict
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

    def finish(
        self, metrics: Mapping[str, Any], step: int | None = None,
        headline: Sequence[str] | None = None,
        plots: Mapping[str, list[dict[str, Any]]] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Write ``<paths.metrics>/<stage>.json`` (the ``headline`` keys, all when None: what
        ``dvc metrics show`` lists) and ``<paths.metrics>/details/<stage>.json`` (every figure),
        atomically, and log every number to the stage's run (``step`` places them after the
        stage's own per-epoch curve of the same keys). ``plots`` are the rows ``dvc plots show``
        draws, written to ``<paths.metrics>/plots/<name>.json``."""
        metrics_dir = self.workdir / self.full_params.paths.metrics
        keys = list(metrics) if headline is None else [k for k in headline if k in metrics]
        write_json_atomic(metrics_dir / f"{self.name}.json", {k: metrics[k] for k in keys})
        write_json_atomic(metrics_dir / "details" / f"{self.name}.json", dict(metrics))
        for name, rows in (plots or {}).items():
            write_json_atomic(metrics_dir / "plots" / f"{name}.json", rows)
        numbers = {k: float(v) for k, v in metrics.items()
                   if isinstance(v, int | float) and not isinstance(v, bool)}  # fmt: skip
        mlflow.log_metrics(numbers, step=step)
        mlflow.log_artifact(str(metrics_dir / f"{self.name}.json"))
        mlflow.log_artifact(str(metrics_dir / "details" / f"{self.name}.json"), "details")
        self.logger.info("%s: %s", self.name, _short({k: metrics[k] for k in keys}))
        return dict(metrics)


def _short(figures: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in figures.items())  # fmt: skip


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
