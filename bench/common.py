"""Helpers shared by the benchmarks: argument parsing, quiet logs, table printing, JSON results."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import warnings
from pathlib import Path
from typing import Any

import torch

from components.io import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "results"


def arguments(module: str, doc: str | None) -> argparse.ArgumentParser:
    """The parser of ``python -m <module>``: its docstring, usage lines included, is the help."""
    return argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def quiet() -> None:
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's processor string elsewhere): timings
    and even trained weights differ between hosts, so every result says which one made it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
    }


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-markdown table, so the output pastes into the README as is."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([line(cells[0]), sep, *map(line, cells[1:])])


def save(name: str, payload: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` whole (a temporary file renamed: a bench stopped while
    writing leaves the previous file as it was)."""
    path = RESULTS / f"{name}.json"
    write_text_atomic(path, json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    return path


def compare(xs: list[float], ys: list[float]) -> str:
    """Figures ``xs`` against ``ys`` over the same seeds: the mean difference, and a tie when it
    is within the larger of the two spreads (standard deviations over seeds)."""
    diff = statistics.mean(xs) - statistics.mean(ys)
    if len(xs) < 2:
        return f"{diff:+.1f} (one seed: no verdict)"
    noise = max(statistics.stdev(xs), statistics.stdev(ys))
    return f"{diff:+.1f} ({'tie' if abs(diff) <= noise else 'ahead' if diff > 0 else 'behind'})"


def mean_spread(values: list[float], fmt: str = ".1f") -> str:
    """``mean ± stdev`` of figures over seeds (one figure alone as it is); the spread unsigned."""
    if len(values) == 1:
        return format(values[0], fmt)
    spread = format(statistics.stdev(values), fmt.replace("+", ""))
    return f"{format(statistics.mean(values), fmt)} ± {spread}"


def frr_at(curve: list[tuple[float, float]], false_accepts_per_hour: float) -> float:
    """The lowest false-reject rate on a detection curve (``(false accepts per hour, false-reject
    rate)`` per threshold of the grid, measured on test streams) among the thresholds that make at
    most ``false_accepts_per_hour``: the detector's trade-off whatever threshold validation chose
    (an oracle threshold; compare models with it, never quote it as a deployment figure). NaN when
    no threshold is that quiet."""
    ok = [frr for fa, frr in curve if fa <= false_accepts_per_hour]
    return min(ok) if ok else float("nan")
