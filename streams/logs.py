"""Logging that stays readable while Kafka is down, and quiet about what is normal.

aiokafka logs every failed reconnect and metadata refresh at ERROR, several times a second
per client: a 20 s broker outage wrote about 1,600 lines a second into a worker's log.
:class:`RepeatFilter` lets the first record of each kind through (same logger, level and
message template), holds back its repeats for ``interval_s``, and then lets the next one
through with how many were held back, so an outage costs a few lines per interval and
nothing about it is hidden.

aiokafka also logs ``GroupCoordinatorNotAvailableError`` at ERROR on nearly every start: the
broker answers it while it loads the group coordinator (``__consumer_offsets``), and the
client retries a moment later. :func:`demote_coordinator_loading` logs it at INFO; any other
failed coordinator request stays an error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiokafka.errors import GroupCoordinatorNotAvailableError

REPEAT_INTERVAL_S = 10.0
COORDINATOR_LOGGER = "aiokafka.consumer.group_coordinator"
COORDINATOR_FAILED = "Group Coordinator Request failed: %s"
"""aiokafka's template for a failed FindCoordinator request (its argument: the error)."""


class RepeatFilter(logging.Filter):
    """Pass one WARNING-or-worse record per (logger, level, template) per ``interval_s``,
    counting the rest. INFO and below always pass: Faust's partition assignment tables and
    the alerter's leadership lines share a template each, and holding them back hid which
    partitions a worker held (and made the tests that read them from the log fail)."""

    def __init__(
        self, interval_s: float = REPEAT_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True  # what a storm repeats is errors; INFO lines (assignments) all count
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.interval_s:
            self._seen[key] = (seen[0], seen[1] + 1)
            return False
        held = 0 if seen is None else seen[1]
        self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} [{held} more like this in the last {self.interval_s:g} s]"
        return True


def install_repeat_filter(interval_s: float = REPEAT_INTERVAL_S) -> None:
    """Put one :class:`RepeatFilter` on every handler of the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter(interval_s))


class DemoteFilter(logging.Filter):
    """Log records of ``template`` whose first argument is one of ``errors`` at ``level``.

    A logger filter (not a handler's): it runs before the handlers' level checks, so a
    demoted record is dropped wherever ``level`` is below what the logger lets through.
    """

    def __init__(
        self, template: str, errors: tuple[type[BaseException], ...], level: int = logging.INFO
    ) -> None:
        super().__init__()
        self.template = template
        self.errors = errors
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= self.level or record.msg != self.template:
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        if not args or not isinstance(args[0], self.errors):
            return True
        record.levelno = self.level
        record.levelname = logging.getLevelName(self.level)
        return logging.getLogger(record.name).isEnabledFor(self.level)


def demote_coordinator_loading() -> None:
    """Log aiokafka's ``GroupCoordinatorNotAvailableError`` at INFO (idempotent)."""
    logger = logging.getLogger(COORDINATOR_LOGGER)
    if not any(isinstance(f, DemoteFilter) for f in logger.filters):
        logger.addFilter(DemoteFilter(COORDINATOR_FAILED, (GroupCoordinatorNotAvailableError,)))
