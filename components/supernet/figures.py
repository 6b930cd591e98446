"""Figures of the super-network stage (pure functions returning matplotlib figures)."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure


def accuracy_vs_macs(subnets: list[dict[str, Any]]) -> Figure:
    """Inherited-weight accuracy of sampled sub-networks against their MACs."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for kind, marker in (("random", "o"), ("uniform", "s")):
        pts = [s for s in subnets if s["kind"] == kind]
        ax.scatter([s["macs"] / 1e6 for s in pts], [s["val_acc"] for s in pts], marker=marker,
                   label=f"{kind} widths", alpha=0.8)  # fmt: skip
    ax.set_xlabel("MMACs (batch 1)")
    ax.set_ylabel("val accuracy, inherited weights + BN recalibration (%)")
    ax.set_title("super-network: sub-networks without fine-tuning")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def training_curves(history: list[dict[str, float]]) -> Figure:
    """Per-epoch validation accuracy of the full, the median sampled and the smallest network."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for key, marker in (
        ("val_acc_full", ""),
        ("val_acc_median_subnet", "o"),
        ("val_acc_smallest", "s"),
    ):  # sub-networks: every monitor_every epochs
        pts = [(h["epoch"] + 1, h[key]) for h in history if key in h]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker=marker, label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("val accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
