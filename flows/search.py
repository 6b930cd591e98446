"""Prefect flow of the search stage: measured latency table, MCD and baselines, training."""

from __future__ import annotations

import sys
from pathlib import Path

import mlflow
from prefect import flow, get_run_logger
from tqdm.auto import tqdm

from components.config import load_params
from components.search import stage
from components.search.plots import save_pareto
from flows.stage_common import record_metrics
from flows.tracking import stage_run


class Bars:
    """One tqdm bar per phase of the stage (a terminal only: no bars in CI logs)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bars: dict[str, tqdm] = {}

    def __call__(self, what: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        bar = self.bars.get(what)
        if bar is None:
            bar = self.bars[what] = tqdm(total=total or None, desc=what, leave=True)
        bar.n = done
        bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


@flow(name="search")
def search_flow(params_path: str = "params.yaml", progress: bool | None = None) -> dict[str, float]:
    params = load_params(params_path)
    logger = get_run_logger()
    sections = {"base": params.base.model_dump(), "search": params.search.model_dump()}
    if progress is None:
        progress = sys.stderr.isatty()
    with stage_run(params.base, "search", sections):
        bars = Bars(progress)
        try:
            result = stage.run(params, Path("."), progress=bars, plot=save_pareto)
        finally:
            bars.close()
        for t in result.trained.values():  # the training curves of the discovered network(s)
            for step, h in enumerate(t.history):
                curve = {f"train_{t.method}_val_acc": h["val_acc_full"],
                         f"train_{t.method}_loss": h["train_loss"]}  # fmt: skip
                mlflow.log_metrics(curve, step=step)
        for it in result.outcomes["mcd"].iterations:
            mlflow.log_metrics({"mcd_target_ms": it["target_ms"],
                                "mcd_kept_val_acc": it["kept"]["accuracy"],
                                "mcd_kept_predicted_ms": it["kept"]["predicted_ms"]},
                               step=it["iteration"])  # fmt: skip
        for name in ("arch.json", "lut.json", "history.json", "pareto.png"):
            mlflow.log_artifact(str(result.out_dir / name), artifact_path="search")
        mlflow.log_artifact(str(result.model_path), artifact_path="models")
        mlflow.set_tags({"search.widths": str(result.arch["widths"]),
                         "search.device": result.arch["device"]})  # fmt: skip
        record_metrics("search", result.metrics)
        logger.info("search: %s", result.metrics)
    return result.metrics
