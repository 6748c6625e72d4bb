"""What the two alerting topics say, rebuilt from their records: the newest state of every
alert, how far each sink got with it, and each sink's counts. Pure: no Kafka, no clock.

The alerter rebuilds one on taking over to know what every sink is still owed
(:meth:`Ledger.owed`); the API rebuilds one for ``GET /v1/alerts`` and the metrics.

Guarantees: applying a record twice changes nothing, and so does an older record after a
newer one of the same key (a state by its version, a delivery record by its version, counts
field by field, never decreasing). A record that cannot be decoded is counted in
:attr:`Ledger.bad_records` and skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from streams.alerting.records import (
    COUNTER_NAMES,
    AlertState,
    DeliveryRecord,
    SinkCounts,
    decode_alert,
    decode_progress,
)
from streams.connectors.sink import AlertEvent

SinkState = Literal["delivered", "dead_lettered", "pending"]
"""``pending``: the sink has not taken the alert's newest version yet."""


@dataclass(frozen=True, slots=True)
class SinkProgress:
    """Where one sink stands with one alert's newest state."""

    sink: str
    state: SinkState
    version: int | None
    """The newest version the sink is done with (None: none yet)."""
    at: int | None
    http_status: int | None = None
    response: str = ""


class Ledger:
    """The latest alert states and delivery progress. Not thread-safe (one event loop)."""

    def __init__(self) -> None:
        self.states: dict[str, AlertState] = {}
        self.done: dict[tuple[str, str], DeliveryRecord] = {}
        """Per (sink, alert id): the newest delivery record."""
        self.counts: dict[str, SinkCounts] = {}
        self.bad_records = 0

    # ---- apply -------------------------------------------------------------------------

    def apply_alert(self, key: bytes | None, value: bytes | None, offset: int) -> None:
        """One ``freshness.alerts`` record at ``offset`` (``value`` None: a tombstone)."""
        if value is None:
            if key is not None:
                self.states.pop(key.decode("utf-8", "replace"), None)
            return
        try:
            state = decode_alert(value, offset)
        except ValueError:
            self.bad_records += 1
            return
        held = self.states.get(state.alert_id)
        if held is None or held.event.version <= offset:
            self.states[state.alert_id] = state

    def apply_progress(self, key: bytes | None, value: bytes | None) -> None:
        """One ``freshness.alert-deliveries`` record (tombstones are ignored)."""
        if value is None:
            return
        try:
            record = decode_progress(value)
        except ValueError:
            self.bad_records += 1
            return
        if isinstance(record, SinkCounts):
            self._apply_counts(record)
            return
        slot = (record.sink, record.alert_id)
        held = self.done.get(slot)
        if held is None or held.version <= record.version:
            self.done[slot] = record

    def _apply_counts(self, record: SinkCounts) -> None:
        held = self.counts.get(record.sink)
        if held is None:
            self.counts[record.sink] = record
            return
        mine, theirs = held.by_result(), record.by_result()
        most = {n: max(mine[n], theirs[n]) for n in COUNTER_NAMES}
        at = max(held.updated_at, record.updated_at)
        self.counts[record.sink] = SinkCounts(record.sink, **most, updated_at=at)

    # ---- questions ---------------------------------------------------------------------

    def firing(self) -> list[AlertState]:
        return [s for s in self.states.values() if s.event.firing]

    def done_version(self, sink: str, alert_id: str) -> int | None:
        record = self.done.get((sink, alert_id))
        return None if record is None else record.version

    def owed(self, sink: str, app_id: str, *, resend_firing: bool = False) -> list[AlertEvent]:
        """The states of ``app_id``'s alerts ``sink`` is owed, oldest version first: each
        alert routed to ``sink`` whose newest state is newer than the newest version ``sink``
        is done with (that state alone: older undelivered states are coalesced into it, as
        the delivery queue does). With ``resend_firing`` (Alertmanager, which forgets alerts
        that are not re-sent), every firing alert routed to it, delivered or not. Alerts of
        another app id in the same topic are never owed (they are another deployment's)."""
        prefix = f"{app_id}/"
        out: list[AlertEvent] = []
        for state in self.states.values():
            if sink not in state.routes or not state.alert_id.startswith(prefix):
                continue
            done = self.done_version(sink, state.alert_id)
            behind = done is None or done < state.event.version
            if behind or (resend_firing and state.event.firing):
                out.append(state.event)
        return sorted(out, key=lambda e: e.version)

    def progress(self, state: AlertState) -> list[SinkProgress]:
        """Per sink of the state's routes, where it stands with this state."""
        return [self._sink_progress(sink, state) for sink in state.routes]

    def _sink_progress(self, sink: str, state: AlertState) -> SinkProgress:
        record = self.done.get((sink, state.alert_id))
        if record is None:
            return SinkProgress(sink, "pending", None, None)
        current = record.version >= state.event.version
        shown: SinkState = record.result if current else "pending"
        return SinkProgress(
            sink, shown, record.version, record.at, record.http_status, record.response
        )

    def total_counts(self) -> Iterable[SinkCounts]:
        return (self.counts[s] for s in sorted(self.counts))
