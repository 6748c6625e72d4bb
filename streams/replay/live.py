"""What the live monitor wrote: its output records from a point in time, for ``--diff``.

Reads ``freshness.measurements``, ``freshness.breaches`` and ``freshness.alerts`` (every
partition, group-less) from the first record written at or after ``since_ms`` to the end
offsets taken when reading starts. The live verdict about a start is written after the
monitor read the start or its completion, so for the starts of a range it lies after the
range's start; :data:`SLACK_MS` more is read to allow for clocks of producers and workers
that disagree. A value that is not a JSON object is skipped and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from streams import topics
from streams.kafka import offsets_for_time, partition_list, topic_partitions
from streams.replay.diff import LiveRecord
from streams.replay.source import RangeReader

SLACK_MS = 300_000
LIVE_TOPICS = (topics.MEASUREMENTS, topics.BREACHES, topics.ALERTS)


async def output_ranges(
    consumer: Any, names: Sequence[str], since_ms: int, until_ms: int | None = None
) -> dict[tuple[str, int], tuple[int, int]]:
    """``[first record at or after since_ms, end)`` of every partition of ``names``; the end
    is the first record at or after ``until_ms``, or the end offset when None."""
    parts = await topic_partitions(consumer, names)
    tps = partition_list({t: ps for t, ps in parts.items() if ps})
    starts = await offsets_for_time(consumer, tps, since_ms)
    if until_ms is None:
        ends: dict[Any, int] = dict(await consumer.end_offsets(tps))
    else:
        ends = await offsets_for_time(consumer, tps, until_ms)
    return {(tp.topic, tp.partition): (starts[tp], int(ends[tp])) for tp in tps}


async def read_outputs(
    consumer: Any,
    ranges: dict[tuple[str, int], tuple[int, int]],
    keep: Callable[[str], bool],
    progress: Callable[[int], None] = lambda n: None,
) -> tuple[list[LiveRecord], int]:
    """The records of ``ranges`` whose key ``keep`` accepts, and how many were unreadable."""
    out: list[LiveRecord] = []
    bad = 0

    def batch(tp: tuple[str, int], msgs: Sequence[Any]) -> None:
        nonlocal bad
        topic, partition = tp
        for m in msgs:
            key = (m.key or b"").decode("utf-8", "replace")
            if not keep(key):
                continue
            value = None
            if m.value is not None:
                try:
                    value = orjson.loads(m.value)
                except orjson.JSONDecodeError:
                    value = None
                if not isinstance(value, dict):
                    bad += 1
                    continue
            out.append(LiveRecord(topic, key, value, partition, m.offset, m.timestamp))
        progress(len(msgs))

    await RangeReader(consumer, ranges, what="the live output reader").run(batch)
    return out, bad


def ours(key: str, flows: set[str], app_id: str) -> bool:
    """Whether an output record's key belongs to ``flows``: ``flow:key`` for measurements and
    breaches, ``<app_id>/<flow>/<alert>`` for this app's alerts."""
    if key.split(":", 1)[0] in flows:
        return True
    parts = key.rsplit("/", 2)
    return len(parts) == 3 and parts[0] == app_id and parts[1] in flows


def total(ranges: dict[tuple[str, int], tuple[int, int]]) -> int:
    return sum(max(0, e - s) for s, e in ranges.values())
