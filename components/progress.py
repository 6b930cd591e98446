"""How a stage reports progress: ``progress(phase, done, total, figures)``, nothing more.

Components call it after each unit of work (an epoch, a round, a table entry) with the figures
that matter at that point; the CLI decides how to show it (bars on a terminal, one log line per
unit otherwise). ``total`` 0 means unknown. Components never print.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class Progress(Protocol):
    def __call__(
        self, phase: str, done: int, total: int, figures: Mapping[str, float] | None = None
    ) -> None: ...


def no_progress(
    phase: str, done: int, total: int, figures: Mapping[str, float] | None = None
) -> None:
    """The default: report nothing."""
