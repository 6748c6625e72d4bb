"""The worker's log says only what matters: the coordinator-loading error of every start is
INFO, and no terminal escape code lands in a log file (Faust's start-up spinner)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import faust
import pytest
from aiokafka.errors import GroupCoordinatorNotAvailableError, NotCoordinatorForGroupError

from streams.logs import COORDINATOR_FAILED, COORDINATOR_LOGGER, demote_coordinator_loading
from streams.settings import Settings
from streams.worker.runner import make_worker


@pytest.fixture
def coordinator_log() -> Iterator[list[logging.LogRecord]]:
    """What aiokafka's group coordinator logger hands its handlers, at INFO and above."""
    logger = logging.getLogger(COORDINATOR_LOGGER)
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler, level, filters = Keep(), logger.level, list(logger.filters)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    demote_coordinator_loading()
    demote_coordinator_loading()
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.filters[:] = filters


def test_coordinator_loading_is_info_and_other_coordinator_errors_stay_errors(
    coordinator_log: list[logging.LogRecord],
) -> None:
    log = logging.getLogger(COORDINATOR_LOGGER)
    log.error(COORDINATOR_FAILED, GroupCoordinatorNotAvailableError())
    log.error(COORDINATOR_FAILED, NotCoordinatorForGroupError())
    log.error("something else: %s", GroupCoordinatorNotAvailableError())
    levels = [(r.levelname, r.getMessage().split(":")[0]) for r in coordinator_log]
    assert levels == [
        ("INFO", "Group Coordinator Request failed"),
        ("ERROR", "Group Coordinator Request failed"),
        ("ERROR", "something else"),
    ]
    assert len(log.filters) == 1  # installed once


def test_a_demoted_record_is_dropped_where_info_is_not_logged(
    coordinator_log: list[logging.LogRecord],
) -> None:
    log = logging.getLogger(COORDINATOR_LOGGER)
    log.setLevel(logging.WARNING)
    log.error(COORDINATOR_FAILED, GroupCoordinatorNotAvailableError())
    assert coordinator_log == []


def test_the_worker_writes_no_escape_codes_when_stdout_is_not_a_terminal() -> None:
    out = io.StringIO()
    app = faust.App("log-noise", broker="kafka://127.0.0.1:1")
    worker = make_worker(app, Settings(log_level="warn"), stdout=out)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        # What Faust does when it sets up logging, then a start-up warning and the end.
        worker.on_setup_root_logger(root, logging.WARNING)
        logging.getLogger("faust").warning("a start-up warning")
        worker._on_startup_end_spinner()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert "\x1b" not in out.getvalue()
    assert "\b" not in out.getvalue()
    assert worker.spinner is None
