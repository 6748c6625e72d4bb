"""Delivery progress written in the background, many records per transaction.

The delivery queues report every state a sink took (or refused for good); the
:class:`ProgressWriter` collects those records and writes them to
``freshness.alert-deliveries`` in one outbox transaction per batch (a group commit), so no
sink waits for Kafka between two requests and one sink's progress never holds up another's.

Guarantees: :meth:`ProgressWriter.add` never blocks; records are written in the order they
were added, keeping only the newest record of each key within a batch (the topic is
compacted: older ones of a key would be dropped anyway); a failed write stops
:meth:`ProgressWriter.run` with the error. A crash loses the records not yet committed:
their sinks are then owed those states again and are sent them again after a restart, with
the same identity (at-least-once; PagerDuty and Alertmanager de-duplicate them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence

from streams.alerting.records import ProgressRecord

Write = Callable[[Sequence[ProgressRecord]], Awaitable[None]]


class ProgressWriter:
    """A batching writer of progress records; run :meth:`run` as a task."""

    def __init__(self, write: Write, before_write: Callable[[], Awaitable[None]]) -> None:
        """``write`` commits one batch; ``before_write`` is awaited before each (the lease)."""
        self._write = write
        self._before_write = before_write
        self._pending: dict[str, ProgressRecord] = {}
        self._wakeup = asyncio.Event()
        self.batches = 0
        self.written = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, records: Iterable[ProgressRecord]) -> None:
        for record in records:
            self._pending.pop(record.key, None)
            self._pending[record.key] = record
        self._wakeup.set()

    async def run(self) -> None:
        """Write batches until cancelled."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._pending:
                continue
            await self._before_write()
            batch = list(self._pending.values())
            self._pending.clear()
            await self._write(batch)
            self.batches += 1
            self.written += len(batch)
