"""Names and shapes of every topic the monitor reads or writes (DESIGN sections 3 and 5)."""

from __future__ import annotations

from dataclasses import dataclass

LEAD_CAPTURED = "funnel.lead.captured"
PAYMENT_WEBHOOK_RECEIVED = "funnel.payment.webhook_received"
DLQ_ENTRY_CREATED = "funnel.dlq.entry_created"
APPROVAL_REQUESTED = "funnel.approval.requested"
POSTHOG_INGESTED = "funnel.posthog.ingested"
DLQ_RETRY_ATTEMPTED = "funnel.dlq.retry_attempted"
NOTIFICATION_ACKNOWLEDGED = "funnel.notification.acknowledged"

INPUT_TOPICS: tuple[str, ...] = (
    LEAD_CAPTURED,
    PAYMENT_WEBHOOK_RECEIVED,
    DLQ_ENTRY_CREATED,
    APPROVAL_REQUESTED,
    POSTHOG_INGESTED,
    DLQ_RETRY_ATTEMPTED,
    NOTIFICATION_ACKNOWLEDGED,
)

MEASUREMENTS = "freshness.measurements"
BREACHES = "freshness.breaches"
QUARANTINE = "freshness.quarantine"
STATS = "freshness.stats"
"""Per-flow, per-partition, per-minute statistics (see docs/events.md); compacted."""
FLOW_EVENTS = "freshness.flow-events"
"""Internal: decoded flow events and watermark ticks, repartitioned by (flow, key)."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    compacted: bool = False
    internal: bool = False


OUTPUT_TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(MEASUREMENTS),
    TopicSpec(BREACHES, compacted=True),
    TopicSpec(QUARANTINE),
    TopicSpec(STATS, compacted=True),
    TopicSpec(FLOW_EVENTS, internal=True),
)

ALL_TOPICS: tuple[TopicSpec, ...] = tuple(TopicSpec(t) for t in INPUT_TOPICS) + OUTPUT_TOPICS
