"""The current state of every breach, read from the compacted ``freshness.breaches`` topic.

Order and pagination guarantee: breaches are ordered by ``(deadline, breach_id)``. Both are
fixed for a breach (``deadline = started_at + target``; an ``overdue`` breach that turns
``late`` or ``lost`` keeps them), and both are in every record, so the order is the same in
every API process, before and after compaction, whatever records it read first. A cursor
(the key of the last item returned) marks a fixed point in that order: walking pages never
repeats or skips a breach that existed when the walk started, and a breach that arrives
during the walk appears in it exactly when its key sorts after the cursor (new overdue
breaches have the newest deadlines, so they come at the end). Records replayed with the
same content change nothing (idempotent). The one thing that moves a breach is a new start
of the same entity breaching again (a new deadline under the same ``breach_id``).
"""

from __future__ import annotations

import re
from bisect import bisect_left, insort
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

SortKey = tuple[int, str]


class InvalidCursorError(ValueError):
    """The cursor was not produced by this API."""


@dataclass(frozen=True, slots=True)
class BreachFilter:
    """All given conditions must hold; ``since <= deadline < until``."""

    flow: str | None = None
    kind: str | None = None
    status: str | None = None
    since: int | None = None
    until: int | None = None

    def matches(self, rec: dict[str, Any]) -> bool:
        return (
            (self.flow is None or rec["flow"] == self.flow)
            and (self.kind is None or rec["kind"] == self.kind)
            and (self.status is None or rec["status"] == self.status)
        )


@dataclass(slots=True)
class BreachEntry:
    key: SortKey
    record: dict[str, Any]
    """The latest record."""


CURSOR_PATTERN = r"^[0-9]{1,15}\.(?:[0-9a-f]{2}){0,256}$"
"""``<deadline>.<hex of the UTF-8 breach_id>``: every string of this shape is a
position in the order (so any well-formed cursor is accepted), and the one a page returns
continues right after that page's last item."""
_CURSOR = re.compile(CURSOR_PATTERN)


def encode_cursor(key: SortKey) -> str:
    return f"{key[0]}.{key[1].encode('utf-8', 'surrogateescape').hex()}"


def decode_cursor(cursor: str) -> SortKey:
    """Inverse of :func:`encode_cursor`; raises :class:`InvalidCursorError` when malformed."""
    if not _CURSOR.match(cursor):
        raise InvalidCursorError("cursor is not valid; use next_cursor from a page")
    ms, _, hexid = cursor.partition(".")
    return int(ms), bytes.fromhex(hexid).decode("utf-8", "surrogateescape")


class BreachIndex:
    """Latest record per ``breach_id``, kept in sort-key order for keyset pagination."""

    def __init__(self) -> None:
        self._by_id: dict[str, BreachEntry] = {}
        self._order: list[SortKey] = []
        self._open: dict[str, dict[str, BreachEntry]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def apply(self, breach_id: str, record: dict[str, Any] | None) -> None:
        """Make ``record`` the current state of ``breach_id``; ``None`` (tombstone) deletes."""
        entry = self._by_id.get(breach_id)
        if entry is not None and (record is None or entry.key[0] != int(record["deadline"])):
            del self._by_id[breach_id]
            self._order.pop(bisect_left(self._order, entry.key))
            self._set_open(breach_id, entry, False)
            entry = None
        if record is None:
            return
        if entry is None:
            key = (int(record["deadline"]), breach_id)
            entry = BreachEntry(key, {})
            self._by_id[breach_id] = entry
            insort(self._order, key)
        entry.record = {**record, "breach_id": breach_id}
        self._set_open(breach_id, entry, record["status"] == "open")

    def _set_open(self, breach_id: str, entry: BreachEntry, is_open: bool) -> None:
        flow = str(entry.record.get("flow", ""))
        if is_open:
            self._open.setdefault(flow, {})[breach_id] = entry
        else:
            self._open.get(flow, {}).pop(breach_id, None)

    def get(self, breach_id: str) -> dict[str, Any] | None:
        entry = self._by_id.get(breach_id)
        return None if entry is None else entry.record

    def open_for(self, flow: str) -> list[dict[str, Any]]:
        """Open breaches of ``flow`` (any order)."""
        return [e.record for e in self._open.get(flow, {}).values()]

    def page(
        self, flt: BreachFilter, *, after: SortKey | None, limit: int
    ) -> tuple[list[dict[str, Any]], SortKey | None]:
        """Up to ``limit`` matching records after ``after``, and the key to continue from.

        The continuation key is None when no matching record follows the page.
        """
        items: list[dict[str, Any]] = []
        last: SortKey | None = None
        for entry in self._scan(flt, after):
            if len(items) == limit:
                return items, last
            items.append(entry.record)
            last = entry.key
        return items, None

    def _scan(self, flt: BreachFilter, after: SortKey | None) -> Iterator[BreachEntry]:
        start = 0
        if flt.since is not None:
            start = bisect_left(self._order, (flt.since, ""))
        if after is not None:
            # Strictly after the cursor key: (t, id) < (t, id + "\0") <= next key.
            start = max(start, bisect_left(self._order, (after[0], after[1] + "\0")))
        order = self._order
        for i in range(start, len(order)):
            key = order[i]
            if flt.until is not None and key[0] >= flt.until:
                return
            entry = self._by_id[key[1]]
            if flt.matches(entry.record):
                yield entry
