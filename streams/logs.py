"""Logging that stays readable while Kafka is down.

aiokafka logs every failed reconnect and metadata refresh at ERROR, several times a second
per client: a 20 s broker outage wrote about 1,600 lines a second into a worker's log.
:class:`RepeatFilter` lets the first record of each kind through (same logger, level and
message template), holds back its repeats for ``interval_s``, and then lets the next one
through with how many were held back, so an outage costs a few lines per interval and
nothing about it is hidden.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

REPEAT_INTERVAL_S = 10.0


class RepeatFilter(logging.Filter):
    """Pass one record per (logger, level, template) per ``interval_s``, counting the rest."""

    def __init__(
        self, interval_s: float = REPEAT_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
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
