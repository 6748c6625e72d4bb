"""After a rebalance the join resumes at the committed offset of each partition: a guard
around one step of Faust's recovery.

When a rebalance is done Faust resumes the stream partitions, seeks them to their committed
offsets, then resumes its flow control (``faust.tables.recovery.Recovery
.on_recovery_completed``: ``resume_partitions``, ``perform_seek``, ``flow_control.resume``).
Its fetcher keeps reading while the seek waits for the broker, so records reach the agent's
buffer, and its read offsets, during the seek; and resuming flow control *clears* every
agent's buffer. A record fetched before the seek and handed on after it looks like a jump
past the committed offset: Faust takes it for a gap in the topic (``Consumer._add_gap``,
meant for compacted and transactional topics), counts the offsets in between as acked and
commits past them, and drops the same records when the seek reads them again, below its
read offset. Those join steps were never processed: their completions never applied
(on-time starts declared overdue), their starts never recorded (measurements lost). Three
of seven runs of ``tests/faults/test_kill9.py`` lost 3 to 16 outcomes so, each time on a
partition the surviving worker kept across a rebalance (docs/reliability.md).

:func:`seek_with_flow_stopped` stops the consumer's flow for the seek: the fetcher abandons
the batch it was handing on and waits, and after the seek reads from the committed offset,
in order, once Faust resumes the flow (right after, in each of its callers). What reached a
buffer before the seek is read again after it.
"""

from __future__ import annotations

from typing import Any


def seek_with_flow_stopped(consumer: Any) -> None:
    """Wrap ``consumer.perform_seek`` (Faust's seek to the committed offsets after an
    assignment) so that no record is handed on while it runs."""
    perform_seek = consumer.perform_seek

    async def seek() -> None:
        was_active = consumer.flow_active
        consumer.stop_flow()
        try:
            await perform_seek()
        except BaseException:
            if was_active:
                consumer.resume_flow()
            raise

    consumer.perform_seek = seek
