"""Contract records of the output topics, for the API tests (and the end-to-end suite).

They follow DESIGN section 5 plus the stats contract; every field is filled so a test
only states what matters to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx

from api.app import create_app
from api.readmodel import ReadModel
from streams import topics
from streams.core.model import Flow
from streams.settings import Settings
from streams.stats import records as stats

NOW = 1_767_225_660_000
"""The frozen wall clock of the tests (2026-01-01T00:01:00Z)."""

FLOWS = (
    Flow(
        name="lead_to_posthog",
        start_topic="funnel.lead.captured",
        end_topic="funnel.posthog.ingested",
        start_key=("lead_id",),
        end_key=("source_id",),
        target_ms=5_000,
    ),
    Flow(
        name="dlq_first_retry",
        start_topic="funnel.dlq.entry_created",
        end_topic="funnel.dlq.retry_attempted",
        start_key=("entry_id",),
        end_key=("entry_id",),
        target_ms=60_000,
        objective=0.95,
    ),
)


class Records:
    """Builders of output-topic records (dicts, as the workers publish them)."""

    def breach(
        self,
        key: str,
        *,
        flow: str = "lead_to_posthog",
        kind: str = "overdue",
        status: str | None = None,
        started_at: int = NOW - 60_000,
        target_ms: int = 5_000,
        detected_at: int | None = None,
        completed_at: int | None = None,
        start_event_id: str | None = None,
    ) -> dict[str, Any]:
        deadline = started_at + target_ms
        return {
            "breach_id": f"{flow}:{key}",
            "flow": flow,
            "key": key,
            "kind": kind,
            "status": status or ("open" if kind == "overdue" else "closed"),
            "started_at": started_at,
            "deadline": deadline,
            "detected_at": detected_at if detected_at is not None else deadline + 100,
            "completed_at": completed_at,
            "lag_ms": None if completed_at is None else completed_at - started_at,
            "target_ms": target_ms,
            "start_event_id": start_event_id or f"s-{key}",
            "start_source": {"topic": "funnel.lead.captured", "partition": 1, "offset": 7},
        }

    def measurement(
        self,
        key: str,
        *,
        flow: str = "lead_to_posthog",
        started_at: int = NOW - 30_000,
        lag_ms: int = 1_000,
        target_ms: int = 5_000,
        out_of_order: bool = False,
        start_event_id: str | None = None,
    ) -> dict[str, Any]:
        return {
            "flow": flow,
            "key": key,
            "start_event_id": start_event_id or f"s-{key}",
            "end_event_id": f"e-{key}",
            "started_at": started_at,
            "completed_at": started_at + lag_ms,
            "lag_ms": lag_ms,
            "target_ms": target_ms,
            "on_time": lag_ms <= target_ms,
            "clock_skew": lag_ms < 0,
            "out_of_order": out_of_order,
            "start_source": {"topic": "funnel.lead.captured", "partition": 0, "offset": 3},
            "end_source": {"topic": "funnel.posthog.ingested", "partition": 2, "offset": 9},
        }

    def window(
        self,
        lags: Iterable[float],
        *,
        flow: str = "lead_to_posthog",
        partition: int = 0,
        minute: int = NOW // 60_000,
        target_ms: int = 5_000,
        lost: int = 0,
        updated_at: int = NOW,
    ) -> dict[str, Any]:
        win = stats.WindowStats(lost=lost)
        for v in lags:
            win.sketch.add(v)
            win.count += 1
            win.on_time += v <= target_ms
            win.clock_skew += v < 0
        win.late = win.count - win.on_time
        return stats.to_json(stats.WindowRecord(flow, partition, minute, win, updated_at))

    def gauge(
        self,
        *,
        flow: str = "lead_to_posthog",
        partition: int = 0,
        pending: int = 0,
        oldest_pending_started_at: int | None = None,
        open_breaches: int = 0,
        monitor_lag_ms: int = 0,
        watermark_ms: int | None = NOW,
        updated_at: int = NOW,
    ) -> dict[str, Any]:
        return stats.to_json(
            stats.GaugeRecord(
                flow,
                partition,
                pending,
                oldest_pending_started_at,
                open_breaches,
                monitor_lag_ms,
                watermark_ms,
                updated_at,
            )
        )

    def quarantine(self, offset: int, reason: str = "not_json") -> dict[str, Any]:
        return {
            "topic": "funnel.lead.captured",
            "partition": 0,
            "offset": offset,
            "reason": reason,
            "detail": "",
            "raw_b64": "",
            "raw_size": 3,
            "truncated": False,
            "observed_at": NOW,
        }

    @staticmethod
    def stats_key(record: dict[str, Any]) -> str:
        return stats.from_json(record).key

    @staticmethod
    def topic_of(record: dict[str, Any]) -> str:
        if "breach_id" in record:
            return topics.BREACHES
        if record.get("kind") in ("window", "gauge"):
            return topics.STATS
        if "reason" in record:
            return topics.QUARANTINE
        return topics.MEASUREMENTS


def make_model(clock_ms: int = NOW) -> ReadModel:
    """A read model of :data:`FLOWS` on a frozen clock, already marked caught up."""
    rm = ReadModel(FLOWS, entity_capacity=1000, stats_interval_ms=2_000, clock=lambda: clock_ms)
    rm.progress.mark_caught_up()
    return rm


def make_client(model: ReadModel, settings: Settings | None = None) -> httpx.AsyncClient:
    """An HTTP client talking to the app in-process (no lifespan, no Kafka)."""
    app = create_app(settings or Settings(), model)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
