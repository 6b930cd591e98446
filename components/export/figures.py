"""Figures of the export stage (pure functions returning matplotlib figures)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure


def detection_tradeoff(curve: Sequence[dict[str, Any]], threshold: float, target: float) -> Figure:
    """False-reject rate against false accepts per hour over the threshold grid (a DET curve),
    on the validation streams the threshold was chosen on and on the test streams, with the
    chosen threshold marked and the target drawn. The x axis is linear up to 1 per hour (zero
    false accepts is a point on it) and logarithmic beyond."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for name, style in (("val", "--"), ("test", "-")):
        points = [(row[f"{name}_false_accepts_per_hour"], row[f"{name}_false_reject_rate"])
                  for row in curve]  # fmt: skip
        if all(math.isnan(x) or math.isnan(y) for x, y in points):
            continue
        ax.plot(*zip(*points, strict=True), style, marker=".", label=f"{name} streams")
        chosen = [p for row, p in zip(curve, points, strict=True) if row["threshold"] == threshold]
        if chosen:
            ax.plot(*chosen[0], "o", color="black", markersize=8, fillstyle="none")
            ax.annotate(f"{threshold:g}", chosen[0], textcoords="offset points", xytext=(6, 6))
    ax.axvline(target, color="grey", linestyle=":", label=f"target {target:g} per hour")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("false accepts per hour")
    ax.set_ylabel("false-reject rate (%)")
    ax.set_title(f"streaming detection over thresholds (circled: {threshold:g}, the bundle's)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
