"""Seeking by time: where reading from a given Kafka record timestamp starts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka import TopicPartition


async def offsets_for_time(
    consumer: Any, partitions: Iterable[TopicPartition], at_ms: int
) -> dict[TopicPartition, int]:
    """Per partition, the offset of its first record whose Kafka timestamp is at or after
    ``at_ms`` (epoch ms; below 0 counts as 0), or its end offset when every record is older,
    so a reader that seeks there reads exactly the records from ``at_ms`` on.

    The end offsets are read before the look-up by time, so a record appended in between
    is never skipped (at worst one older than ``at_ms`` is read too). The consumer need not
    be assigned the partitions; each must exist (aiokafka waits for it otherwise).
    """
    tps = list(dict.fromkeys(partitions))
    if not tps:
        return {}
    ends = await consumer.end_offsets(tps)
    found = await consumer.offsets_for_times(dict.fromkeys(tps, max(0, at_ms)))
    out: dict[TopicPartition, int] = {}
    for tp in tps:
        hit = found.get(tp)
        out[tp] = int(ends[tp]) if hit is None else int(hit.offset)
    return out
