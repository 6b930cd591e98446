"""Figures of the federated stage (pure functions returning matplotlib figures)."""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def accuracy_vs_round(history: list[dict[str, float]]) -> Figure:
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    rounds = [h["round"] for h in history]
    ax.plot(rounds, [h["client_test_acc"] for h in history], marker="o",
            label="clients' test clips")  # fmt: skip
    ax.plot(rounds, [h["server_test_acc"] for h in history], marker="s", label="server test split")
    ax.set_xlabel("federated round")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def bytes_vs_round(history: list[dict[str, float]]) -> Figure:
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    rows = [h for h in history if "cumulative_bytes_up" in h]
    rounds = [h["round"] for h in rows]
    ax.plot(rounds, [h["cumulative_bytes_down"] / 1e6 for h in rows], marker="o", label="download")
    ax.plot(rounds, [h["cumulative_bytes_up"] / 1e6 for h in rows], marker="s", label="upload")
    ax.set_xlabel("federated round")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("cumulative payload (MB, all clients)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
