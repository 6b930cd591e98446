"""The Pareto plot of a search: every evaluated candidate and the baselines' winners."""

from __future__ import annotations

from typing import TYPE_CHECKING

from matplotlib.figure import Figure

from components.search.records import arch_key

if TYPE_CHECKING:
    from components.search.stage import SearchResult

STYLE = {"mcd": ("tab:blue", "o"), "random": ("tab:orange", "^"),
         "uniform": ("tab:green", "s"), "netadapt_v1": ("tab:red", "D")}  # fmt: skip


def pareto_figure(result: SearchResult) -> Figure:
    """Left: inherited-weight accuracy vs latency of every candidate (aligned: a measured figure
    mapped onto the table's conditions, where the budget line lives; or the table's prediction
    where candidates were not timed, ``search.pareto_repeats: 0``) and the winners (aligned);
    right: the winners after equal training."""
    fig = Figure(figsize=(12, 4.8))
    ax, ax2 = fig.subplots(1, 2)
    budget = result.metrics["latency_budget_ms"] * 1e3
    for name, outcome in result.outcomes.items():
        color, marker = STYLE.get(name, ("gray", "x"))
        pts = [(result.quick_aligned_ms.get(arch_key(c.widths), c.predicted_ms) * 1e3, c.accuracy)
               for c in outcome.evaluated]  # fmt: skip
        if pts:
            ax.scatter(*zip(*pts, strict=True), s=14, alpha=0.45, color=color, marker=marker,
                       label=f"{name} candidates ({len(outcome.evaluated)})")  # fmt: skip
        win = result.history["winners"][name]["aligned_latency_ms"] * 1e3
        ax.scatter([win], [outcome.accuracy], s=140, color=color, marker=marker,
                   edgecolor="black", linewidth=1.2, label=f"{name} winner")  # fmt: skip
        if name in result.trained:
            t = result.trained[name]
            ax2.scatter([win], [t.val_acc], s=120, color=color, marker=marker,
                        edgecolor="black", label=f"{name} {t.widths} val")  # fmt: skip
            ax2.scatter([win], [t.client_test_acc], s=60, color=color, marker="x",
                        label=f"{name} client test")  # fmt: skip
    timed = bool(result.quick_aligned_ms)
    for a in (ax, ax2):
        a.axvline(budget, color="black", linestyle="--", linewidth=1, label="budget")
        a.set_xlabel("aligned latency (measured, in the table's conditions), batch 1 (µs)"
                     if timed or a is ax2 else
                     "latency, batch 1 (µs): candidates predicted by the table, winners measured "
                     "and aligned")  # fmt: skip
        a.grid(alpha=0.3)
    ax.set_ylabel("val accuracy, inherited weights + BN recalibration (%)")
    ax.set_title(f"search on {result.arch['device']}: every evaluated candidate")
    ax2.set_ylabel("accuracy after equal training (%)")
    ax2.set_title("winners after equal training (start: search.train_from)")
    ax.legend(fontsize=7, loc="lower right")
    ax2.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
