"""Progress at the CLI edge: a tqdm bar per phase on a terminal, one log line per unit otherwise."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

from tqdm import tqdm

# Phases with many small units (table entries, timing samples) log a line at most this often.
MIN_LOG_INTERVAL_S = 10.0


def _fmt(figures: Mapping[str, float] | None) -> str:
    if not figures:
        return ""
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in figures.items())  # fmt: skip


class StageProgress:
    """Implements ``components.progress.Progress`` for one stage run."""

    def __init__(self, stage: str, logger: logging.Logger | logging.LoggerAdapter[Any],
                 terminal: bool | None = None) -> None:  # fmt: skip
        self.stage = stage
        self.logger = logger
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.bars: dict[str, tqdm] = {}
        self.last_line: dict[str, float] = {}

    def __call__(
        self, phase: str, done: int, total: int, figures: Mapping[str, float] | None = None
    ) -> None:
        if self.terminal:
            bar = self.bars.get(phase)
            if bar is None:
                bar = self.bars[phase] = tqdm(total=total or None, desc=f"{self.stage}: {phase}")
            bar.n = done
            if figures:
                bar.set_postfix({k: round(v, 4) for k, v in figures.items()}, refresh=False)
            bar.refresh()
            return
        # A unit that reports figures (an epoch, a round, an MCD iteration) gets its line; units
        # without (speakers, table entries) one every MIN_LOG_INTERVAL_S, and always the first
        # and the last.
        now = time.monotonic()
        first = phase not in self.last_line
        finished = bool(total) and done >= total
        recent = now - self.last_line.get(phase, 0.0) < MIN_LOG_INTERVAL_S
        if not (figures or first or finished or not recent):
            return
        self.last_line[phase] = now
        count = f"{done}/{total}" if total else f"{done}"
        self.logger.info("%s %s %s", phase, count, _fmt(figures))

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()
