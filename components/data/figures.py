"""Figures of a prepared dataset (pure functions returning matplotlib figures)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from matplotlib.figure import Figure


def class_balance(manifest: pd.DataFrame, classes: Sequence[str]) -> Figure:
    """Clips per class in each pool/split: the first thing to look at when accuracy is odd."""
    groups = manifest.assign(group=manifest["pool"] + "/" + manifest["split"])
    table = groups.pivot_table(index="label", columns="group", values="index", aggfunc="count")
    table = table.reindex(list(classes)).fillna(0)
    fig = Figure(figsize=(10, 4))
    ax = fig.subplots()
    table.plot.bar(ax=ax)
    ax.set_ylabel("clips")
    ax.set_title("clips per class and split")
    fig.tight_layout()
    return fig
