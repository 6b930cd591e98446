"""The run report: one self-contained HTML page (figures embedded) of a pipeline run.

``render`` is a pure function of what the run left behind (per-stage status and time, headline
metrics, curves, the latency table, the Pareto plot, links to the MLflow runs); the flow that
calls it gathers those. Every figure is an ``<img>`` with a PNG data URI, so the page opens
anywhere, offline, and can be attached to a run as one file.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch


@dataclass
class StageStatus:
    name: str
    ran: bool
    seconds: float
    run_url: str = ""  # the stage's MLflow run (the producing run when DVC skipped it)


@dataclass
class ReportData:
    title: str
    created: str
    stages: list[StageStatus]
    metrics: dict[str, dict[str, Any]]  # stage -> headline figures
    curves: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # name -> plot rows
    lut: dict[str, Any] | None = None  # search/lut.json
    pareto_png: bytes | None = None
    links: dict[str, str] = field(default_factory=dict)  # label -> URL


def png(fig: Figure) -> str:
    """A figure as a PNG data URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def pipeline_figure(stages: Sequence[StageStatus]) -> Figure:
    """The stage graph left to right: each box says whether the stage ran or DVC skipped it,
    and how long it took."""
    fig = Figure(figsize=(max(6.0, 1.9 * len(stages)), 1.6))
    ax = fig.subplots()
    ax.set_xlim(0, len(stages))
    ax.set_ylim(0, 1)
    ax.axis("off")
    for i, s in enumerate(stages):
        color = "#cfe8cf" if s.ran else "#e4e4e4"
        ax.add_patch(FancyBboxPatch((i + 0.08, 0.15), 0.76, 0.7, boxstyle="round,pad=0.02",
                                    facecolor=color, edgecolor="#555"))  # fmt: skip
        state = "ran" if s.ran else "skipped (DVC)"
        ax.text(i + 0.46, 0.6, s.name, ha="center", va="center", fontsize=11, weight="bold")
        ax.text(i + 0.46, 0.35, f"{state}\n{s.seconds:.0f} s", ha="center", va="center",
                fontsize=8)  # fmt: skip
        if i + 1 < len(stages):
            ax.annotate("", (i + 1.08, 0.5), (i + 0.86, 0.5),
                        arrowprops={"arrowstyle": "->", "color": "#555"})  # fmt: skip
    fig.tight_layout()
    return fig


def curve_figure(rows: list[dict[str, Any]], x: str, ys: Sequence[str], ylabel: str) -> Figure:
    fig = Figure(figsize=(6.5, 3.6))
    ax = fig.subplots()
    for y in ys:
        pts = [(r[x], r[y]) for r in rows if r.get(y) is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", markersize=3, label=y)
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# (plot rows, x, y keys, y label, title)
CURVES = (
    ("supernet_training", "epoch", ("train_loss",), "training loss",
     "super-network: training loss per epoch"),
    ("supernet_subnets", "epoch", ("val_acc_full", "val_acc_median_subnet", "val_acc_smallest"),
     "val accuracy (%)", "super-network: full and sub-networks, inherited weights"),
    ("finetune_rounds", "round", ("client_test_acc", "server_test_acc"), "accuracy (%)",
     "federated fine-tuning per round"),
    ("finetune_rounds", "round", ("cumulative_bytes_up", "cumulative_bytes_down"), "bytes",
     "federated payload, all clients"),
)  # fmt: skip


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def lut_rows(lut: Mapping[str, Any]) -> list[list[Any]]:
    """One row per searchable layer: its channels and the milliseconds each width adds."""
    rows = [["base (every layer removed)", "", f"{lut['base_ms']:.4f}"]]
    for layer in lut["layers"]:
        entries = ", ".join(f"{w}: {ms:.4f}" for w, ms in layer["ms"].items() if w != "0")
        rows.append([f"layer {layer['layer']}", layer["channels"], entries])
    return rows


def render(data: ReportData) -> str:
    """The whole page."""
    figures: list[tuple[str, str]] = [("pipeline", png(pipeline_figure(data.stages)))]
    for name, x, ys, ylabel, title in CURVES:
        if data.curves.get(name):
            figures.append((title, png(curve_figure(data.curves[name], x, ys, ylabel))))
    if data.pareto_png:
        uri = "data:image/png;base64," + base64.b64encode(data.pareto_png).decode()
        figures.append(("search: every evaluated candidate and the winners", uri))
    stage_rows = [[s.name, "ran" if s.ran else "skipped by DVC", f"{s.seconds:.1f} s"]
                  for s in data.stages]  # fmt: skip
    stage_table = _table(stage_rows, ["stage", "status", "time"])
    links = "".join(
        f'<li><a href="{html.escape(url)}">{html.escape(label)}</a></li>'
        for label, url in [*data.links.items()]
        + [(f"{s.name} stage run", s.run_url) for s in data.stages if s.run_url]
    )
    metric_sections = "".join(
        f"<h3>{html.escape(stage)}</h3>" + _table(sorted(m.items()), ["figure", "value"])
        for stage, m in data.metrics.items()
        if m
    )
    images = "".join(
        f'<figure><img alt="{html.escape(t)}" src="{uri}"><figcaption>{html.escape(t)}'
        "</figcaption></figure>"
        for t, uri in figures
    )
    lut = (
        "<h2>Latency table</h2>"
        + _table(lut_rows(data.lut), ["entry", "channels", "ms added per width"])
        if data.lut
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(data.title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; font-size: 0.9em; }}
figure {{ display: inline-block; width: 47%; margin: 0.5em; vertical-align: top; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>{html.escape(data.title)}</h1>
<p>{html.escape(data.created)}</p>
<h2>Pipeline</h2>
{stage_table}
<h2>Figures</h2>
{images}
<h2>Headline figures</h2>
{metric_sections}
{lut}
<h2>Links</h2>
<ul>{links}</ul>
</body></html>
"""
