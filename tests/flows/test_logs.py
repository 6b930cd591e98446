"""Log filters: Prefect's multi-line hints cut to one line, user errors without a traceback."""

from __future__ import annotations

import logging

import pytest

from components.errors import ConfigError, EdgelearnError
from flows import logs
from flows.logs import FirstLineOnly, UserErrorsWithoutTraceback


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logged() -> tuple[logging.Logger, list[logging.LogRecord]]:
    """A logger of its own (no propagation, no filters) and the records it lets through."""
    log = logging.getLogger("test.flows.logs")
    handler = ListHandler()
    log.handlers[:], log.filters[:] = [handler], []
    log.setLevel(logging.INFO)
    log.propagate = False
    return log, handler.records


def test_first_line_only_keeps_the_first_line(logged):
    logger, records = logged
    logger.addFilter(FirstLineOnly())
    logger.info("Starting temporary server on %s\nSee https://docs.prefect.io/ for more", "url")
    logger.info("one line with %d argument", 1)
    first, second = records
    assert first.getMessage() == "Starting temporary server on url"
    assert (first.msg, first.args) == ("Starting temporary server on url", None)
    assert second.getMessage() == "one line with 1 argument"
    assert second.args == (1,)  # a one-line record is left as it is


def test_a_user_error_loses_its_traceback_and_its_echoes(logged):
    logger, records = logged
    logger.addFilter(UserErrorsWithoutTraceback())
    try:
        raise ConfigError("params.yaml: invalid parameters")
    except EdgelearnError:
        logger.exception("Encountered exception during execution:")
    logger.error("Finished in state Failed('Flow run encountered an exception. ConfigError: "
                 "params.yaml: invalid parameters')")  # fmt: skip
    logger.info("Created task run 'prepare-0'")
    assert [r.getMessage() for r in records] == ["Created task run 'prepare-0'"]


def test_other_exceptions_keep_their_tracebacks(logged):
    logger, records = logged
    filter_ = UserErrorsWithoutTraceback()
    logger.addFilter(filter_)
    try:
        raise KeyError("a bug")
    except KeyError:
        logger.exception("Encountered exception during execution:")
    logger.error("Finished in state Failed(\"KeyError: 'a bug'\")")
    crash, state = records
    assert crash.exc_info is not None and crash.exc_info[0] is KeyError
    assert state.getMessage().startswith("Finished in state Failed")
    assert filter_.messages == set()  # nothing remembered: nothing else is dropped


def test_quiet_third_party_installs_each_filter_once():
    prefect, flow_runs = logging.getLogger("prefect"), logging.getLogger("prefect.flow_runs")
    before = list(prefect.filters), list(flow_runs.filters)
    try:
        logs.quiet_third_party()
        logs.quiet_third_party()
        assert prefect.filters.count(logs._HINTS) == 1
        assert flow_runs.filters.count(logs._USER_ERRORS) == 1
        for name in logs.CHATTY:
            chatty = logging.getLogger(name)
            assert chatty.level == logging.WARNING and chatty.handlers == [] and chatty.propagate
    finally:
        prefect.filters[:], flow_runs.filters[:] = before
