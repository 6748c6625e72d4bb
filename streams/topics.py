"""Names and shapes of every topic the monitor reads or writes (DESIGN sections 3 and 5).

:func:`required_topics` is the one definition of the topic list: ``freshness topics
create``, ``freshness worker``, ``freshness up`` and the test harness all create exactly
what it returns, so with any ``FRESHNESS_FLOWS`` they agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from streams.core.model import Flow
from streams.flows.config import flow_topics

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
"""The input topics of the packaged default flows (a custom ``FRESHNESS_FLOWS`` names its own)."""

MESSAGE_MAX_BYTES = 4 * 1024 * 1024
"""The largest record batch the monitor's Kafka must take (broker ``message.max.bytes`` and
``replica.fetch.max.bytes``, topic ``max.message.bytes``): four times the decoder's 1 MiB
record limit (:data:`streams.pipeline.quarantine.MAX_RECORD_BYTES`), so a record just over
that limit reaches the worker and is quarantined as ``too_large`` rather than refused by
Kafka, leaving the producer with an error and the monitor with no trace of it. Kafka's own
default (1,048,588 bytes) is below 1 MiB plus a batch header. The embedded broker and
``docker-compose.yml`` use it; the worker's input fetch (8 MiB a partition) is above it."""

MEASUREMENTS = "freshness.measurements"
BREACHES = "freshness.breaches"
QUARANTINE = "freshness.quarantine"
STATS = "freshness.stats"
"""Per-flow, per-partition, per-minute statistics (see docs/events.md); compacted."""
ALERTS = "freshness.alerts"
"""The alerter's outbox: the latest state of every alert, key = alert id; compacted."""
ALERT_DELIVERIES = "freshness.alert-deliveries"
"""Delivery progress of the alerter's sinks (key ``delivery:<sink>:<alert id>`` and
``counts:<sink>``, see docs/events.md); compacted."""


def flow_events_topic(app_id: str) -> str:
    """Internal: decoded flow events and watermark ticks, repartitioned by (flow, key).

    Named after the app id (as Kafka Streams names its repartition topics), so deployments
    with different ``FRESHNESS_APP_ID`` on one cluster never read each other's events.
    """
    return f"{app_id}-flow-events"


def alerter_control_topic(app_id: str) -> str:
    """Internal: leadership among alerter replicas. Every replica of ``app_id`` joins one
    consumer group on it; the member assigned its partition 0 is the one that delivers.
    Nothing is written to it."""
    return f"{app_id}-alerter-control"


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
    TopicSpec(ALERTS, compacted=True),
    TopicSpec(ALERT_DELIVERIES, compacted=True),
)


def required_topics(flows: Iterable[Flow], app_id: str) -> tuple[TopicSpec, ...]:
    """Every topic a deployment of ``flows`` under ``app_id`` needs, each once.

    In this order: the flows' input topics (sorted), the output topics, and the internal
    :func:`flow_events_topic` and :func:`alerter_control_topic` of ``app_id``. Faust's own
    topics (the table's changelog) are not listed: the worker declares those itself.
    """
    inputs = tuple(TopicSpec(t) for t in flow_topics(flows))
    internal = (
        TopicSpec(flow_events_topic(app_id), internal=True),
        TopicSpec(alerter_control_topic(app_id), internal=True),
    )
    return (*inputs, *OUTPUT_TOPICS, *internal)
