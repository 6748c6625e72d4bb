"""The internal ``freshness.flow-events`` message: a batch of flow events or a tick.

A batch carries every flow event one ingest batch routed to one join partition, as compact
arrays; a tick carries the ingest side's partition watermarks. Both are JSON (orjson).
Batches and ticks are sent through the same producer queue, so a tick never overtakes the
events it accounts for.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from streams.core.model import FlowEvent, Side
from streams.core.watermark import PartitionReport

_SIDES: tuple[Side, Side] = ("start", "end")


def route(flow: str, key: str, partitions: int) -> int:
    """The join partition of an entity: stable across processes and restarts."""
    return zlib.crc32(f"{flow}\x1f{key}".encode()) % partitions


def encode_events(events: Sequence[FlowEvent]) -> bytes:
    return orjson.dumps(
        {
            "e": [
                [
                    e.flow,
                    e.key,
                    0 if e.side == "start" else 1,
                    e.event_id,
                    e.occurred_at,
                    e.topic,
                    e.partition,
                    e.offset,
                ]
                for e in events
            ]
        }
    )


@dataclass(frozen=True, slots=True)
class Tick:
    """Partition watermarks of the inputs one ingest worker reads, at ``now``."""

    now: int
    reports: tuple[PartitionReport, ...]
    partition_counts: dict[str, int]


def encode_tick(now: int, reports: Iterable[PartitionReport], counts: dict[str, int]) -> bytes:
    return orjson.dumps(
        {
            "tick": now,
            "wm": [[r.topic, r.partition, r.watermark, r.lag_ms, r.behind] for r in reports],
            "n": counts,
        }
    )


def decode(raw: bytes) -> list[FlowEvent] | Tick:
    """Decode a flow-events message; raises ValueError for anything this code did not write."""
    try:
        obj: Any = orjson.loads(raw)
        if "e" in obj:
            return [
                FlowEvent(f, k, _SIDES[s], eid, at, t, p, o)
                for f, k, s, eid, at, t, p, o in obj["e"]
            ]
        return Tick(
            now=int(obj["tick"]),
            reports=tuple(
                PartitionReport(t, p, wm, lag, behind) for t, p, wm, lag, behind in obj["wm"]
            ),
            partition_counts={str(k): int(v) for k, v in obj["n"].items()},
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"not a flow-events message: {exc}") from None
