"""What the search stage produces: the trained networks and the stage's result."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.model.subnet import SubNetwork
from components.search.lut import LatencyTable
from components.search.mcd import SearchOutcome


def arch_key(widths: Sequence[int]) -> str:
    return "-".join(str(int(w)) for w in widths)


@dataclass
class TrainedNetwork:
    method: str
    widths: list[int]
    model: SubNetwork
    val_acc: float
    test_acc: float
    client_test_acc: float
    seconds: float
    history: list[dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {"widths": self.widths, "val_acc": self.val_acc, "test_acc": self.test_acc,
                "client_test_acc": self.client_test_acc, "seconds": self.seconds,
                "curve": self.history}  # fmt: skip


@dataclass
class SearchResult:
    metrics: dict[str, Any]
    arch: dict[str, Any]
    outcomes: dict[str, SearchOutcome]
    quick_aligned_ms: dict[str, float]  # quick timing per architecture key, aligned (the plot)
    trained: dict[str, TrainedNetwork]
    lut: LatencyTable
    out_dir: Path
    model_path: Path
    history: dict[str, Any] = field(default_factory=dict)
    devices: dict[str, SearchResult] = field(default_factory=dict)  # the fleet's other devices
