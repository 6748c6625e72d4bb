"""What the alerter judges and what it has written, rebuilt from records. Pure: no Kafka.

:class:`AlerterInputs` takes every record of ``freshness.breaches``, ``freshness.stats``,
``freshness.alerts`` and ``freshness.alert-deliveries`` (:meth:`AlerterInputs.apply`) and
keeps, per flow, the :class:`~streams.stats.windows.FlowStats` (windows and the workers'
gauges) and the open overdue breaches, plus the :class:`~streams.alerting.ledger.Ledger`
of the alerting topics. It is idempotent like the read model: the latest record of a key
is what counts, a tombstone deletes it, a bad record is counted and skipped.
"""

from __future__ import annotations

from typing import Any

import orjson

from streams import topics
from streams.alerting.evaluate import OpenOverdue
from streams.alerting.ledger import Ledger
from streams.stats import records as stats
from streams.stats.windows import FlowStats


class AlerterInputs:
    """Breaches, stats and the alerting topics, as of the records applied."""

    def __init__(self) -> None:
        self.stats: dict[str, FlowStats] = {}
        self.overdue: dict[str, dict[str, OpenOverdue]] = {}
        self.ledger = Ledger()
        self.bad_records = 0
        self.records = 0

    def apply(self, topic: str, key: bytes | None, value: bytes | None, offset: int) -> None:
        """Apply one record of ``topic`` at ``offset``; records of other topics are ignored."""
        self.records += 1
        try:
            if topic == topics.BREACHES:
                self._apply_breach(key, value)
            elif topic == topics.STATS:
                self._apply_stats(key, value)
            elif topic == topics.ALERTS:
                self.ledger.apply_alert(key, value, offset)
            elif topic == topics.ALERT_DELIVERIES:
                self.ledger.apply_progress(key, value)
        except (KeyError, TypeError, ValueError, orjson.JSONDecodeError):
            self.bad_records += 1

    def open_overdue(self, flow: str) -> list[OpenOverdue]:
        """The flow's open overdue breaches (in no particular order)."""
        return list(self.overdue.get(flow, {}).values())

    def flow_stats(self, flow: str) -> FlowStats | None:
        return self.stats.get(flow)

    def _apply_breach(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            if key is not None:
                flow, _, entity = key.decode("utf-8", "replace").partition(":")
                self.overdue.get(flow, {}).pop(entity, None)
            return
        record: Any = orjson.loads(value)
        flow, entity = str(record["flow"]), str(record["key"])
        is_open = record["kind"] == "overdue" and record["status"] == "open"
        index = self.overdue.setdefault(flow, {})
        if is_open:
            index[entity] = OpenOverdue(entity, int(record["deadline"]), int(record["detected_at"]))
        else:
            index.pop(entity, None)

    def _apply_stats(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            if key is None:
                return
            sk = stats.parse_key(key.decode("utf-8", "replace"))
            target = self.stats.get(sk.flow)
            if target is None:
                return
            if sk.minute is None:
                target.delete_gauge(sk.partition)
            else:
                target.delete_window(sk.partition, sk.minute)
            return
        rec = stats.decode(value)
        flow_stats = self.stats.setdefault(rec.flow, FlowStats())
        if isinstance(rec, stats.WindowRecord):
            flow_stats.apply_window(rec)
        else:
            flow_stats.apply_gauge(rec)
