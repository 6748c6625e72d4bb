"""Measurements of recently seen entities, for timelines (``/v1/entities/{flow}/{key}``).

Memory is bounded: at most ``capacity`` entities (least recently *written* evicted first)
and at most ``CYCLES_PER_ENTITY`` measurements each. Breaches are not stored here; they
live, unbounded but compacted, in :class:`~api.breaches.BreachIndex`. So an evicted
entity that breached still has a timeline, built from its breach record alone.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

CYCLES_PER_ENTITY = 8


class EntityIndex:
    """LRU of ``(flow, key) -> measurements``, newest last. Replays are idempotent."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, str], list[dict[str, Any]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, record: dict[str, Any]) -> None:
        """Remember a measurement; the same (start, end) event pair is stored once."""
        if self.capacity <= 0:
            return
        slot = (str(record["flow"]), str(record["key"]))
        cycles = self._items.get(slot)
        if cycles is None:
            cycles = []
            self._items[slot] = cycles
            if len(self._items) > self.capacity:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(slot)
        ident = (record.get("start_event_id"), record.get("end_event_id"))
        for i, old in enumerate(cycles):
            if (old.get("start_event_id"), old.get("end_event_id")) == ident:
                cycles[i] = record
                return
        cycles.append(record)
        cycles.sort(key=lambda r: (int(r["started_at"]), str(r.get("start_event_id", ""))))
        del cycles[:-CYCLES_PER_ENTITY]

    def get(self, flow: str, key: str) -> list[dict[str, Any]]:
        """Measurements of the entity, oldest first (empty when unknown or evicted)."""
        return list(self._items.get((flow, key), ()))
