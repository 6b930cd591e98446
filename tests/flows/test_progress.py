"""Progress at the CLI edge: without a terminal, log lines, throttled for phases of many units."""

from __future__ import annotations

import logging

import pytest

from flows import progress as progress_module
from flows.progress import MIN_LOG_INTERVAL_S, StageProgress


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class Clock:
    """``time.monotonic`` under the test's control."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logged(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    handler = ListHandler()
    logger = logging.getLogger("test.flows.progress")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return StageProgress("supernet", logger, terminal=False), clock, handler.lines


def test_a_coarse_phase_logs_every_unit_with_its_figures(logged):
    progress, clock, lines = logged
    for epoch in range(1, 4):
        clock.now += 30.0  # an epoch takes a while
        progress("epoch", epoch, 3, {"train_loss": 0.123456, "val_acc": 42.0, "round": 7})
    assert lines == [
        "epoch 1/3 train_loss=0.1235 val_acc=42 round=7",
        "epoch 2/3 train_loss=0.1235 val_acc=42 round=7",
        "epoch 3/3 train_loss=0.1235 val_acc=42 round=7",
    ]


def test_units_with_figures_log_however_fast(logged):
    progress, clock, lines = logged
    for done in range(1, 11):
        clock.now += 0.25  # rounds and MCD iterations can be quick: each still gets its line
        progress("round", done, 10, {"acc": float(done)})
    assert lines == [f"round {d}/10 acc={float(d):g}" for d in range(1, 11)]


def test_units_without_figures_are_throttled_even_when_few(logged):
    progress, clock, lines = logged
    for done in range(1, 40):  # 39 table entries exported in a few seconds
        clock.now += 0.1
        progress("latency table", done, 39)
    assert lines == ["latency table 1/39 ", "latency table 39/39 "]


def test_fine_phases_are_throttled(logged):
    progress, clock, lines = logged
    for done in range(1, 501):  # a table of 500 entries, one every 1/8 s (exact in binary)
        clock.now += 0.125
        progress("latency table", done, 500)
    step = int(MIN_LOG_INTERVAL_S / 0.125)  # 80 units
    assert lines == [f"latency table {d}/500 " for d in [1, *range(1 + step, 500, step), 500]]
    assert len(lines) == 8  # 1, 81, 161, ..., 481 and 500: not one a unit, and not none


def test_phases_are_throttled_apart(logged):
    progress, clock, lines = logged
    progress("MCD iteration", 1, 0, {"target_ms": 2.0})
    progress("speakers", 1, 240)
    clock.now += 0.5
    progress("MCD iteration", 2, 0, {"target_ms": 1.8})  # figures: its own line
    progress("speakers", 2, 240)  # too soon for a phase without figures
    clock.now += 0.5
    progress("MCD iteration", 3, 0, {"target_ms": 1.5})
    progress("speakers", 3, 240)  # waits MIN_LOG_INTERVAL_S
    progress("speakers", 240, 240)  # the last always logs
    assert lines == ["MCD iteration 1 target_ms=2", "speakers 1/240 ",
                     "MCD iteration 2 target_ms=1.8", "MCD iteration 3 target_ms=1.5",
                     "speakers 240/240 "]  # fmt: skip


def test_on_a_terminal_bars_replace_the_log_lines(logged, capsys):
    _, _, lines = logged
    logger = logging.getLogger("test.flows.progress")
    bars = StageProgress("search", logger, terminal=True)
    bars("MCD iteration", 1, 0, {"target_ms": 1.5})
    bars("training", 1, 3)
    assert set(bars.bars) == {"MCD iteration", "training"}
    assert bars.bars["training"].n == 1 and bars.bars["training"].total == 3
    assert bars.bars["MCD iteration"].total is None  # unknown total: a counter
    bars.close()
    assert bars.bars == {} and lines == []
    assert "search: training" in capsys.readouterr().err
