"""The one builder of valid input records, for the scripted scenario, the simulator, the
benchmarks and the tests.

:func:`valid_record` makes a record the monitor must accept for one side of a flow: the
contract's fields (DESIGN section 3: ``event_id``, the flow's key and time paths, the extra
fields its topic requires) and, for a completion, a value its filter accepts.
"""

from __future__ import annotations

from streams import topics
from streams.core.model import Flow
from streams.core.paths import set_path

TOPIC_FIELDS: dict[str, dict[str, object]] = {
    topics.LEAD_CAPTURED: {"campaign": "spring-webinar"},
    topics.PAYMENT_WEBHOOK_RECEIVED: {"provider": "stripe"},
    topics.DLQ_ENTRY_CREATED: {"queue": "billing-sync"},
    topics.DLQ_RETRY_ATTEMPTED: {"attempt": 1},
    topics.NOTIFICATION_ACKNOWLEDGED: {"channel": "email"},
}
"""Fields a record of each default input topic carries besides the flow's key and time:
the required ones (``queue``, ``attempt``, ``channel``; PostHog's ``source`` comes from the
flow's filter) and, on the two start topics, one that a real producer sends and the monitor
ignores. Values as in docs/events.md."""


def valid_record(
    flow: Flow,
    side: str,
    key: str,
    event_id: str,
    occurred_at: int | str,
    **extra: object,
) -> dict[str, object]:
    """A record of ``flow``'s start (``side="start"``) or completion (``"end"``) topic that
    the monitor accepts and maps to this flow, for entity ``key`` at ``occurred_at`` (epoch
    ms or RFC 3339 text).

    A completion carries a value the flow's filter accepts, for each of its comparisons
    (``==``: that value; ``in``: the first listed; ``!=``: one that differs). ``extra``
    fields come last and win, so a caller may override any field (``attempt=2``) or add its
    own (``payload={...}``).
    """
    start = side == "start"
    rec: dict[str, object] = {"event_id": event_id}
    rec.update(TOPIC_FIELDS.get(flow.start_topic if start else flow.end_topic, {}))
    set_path(rec, flow.start_key if start else flow.end_key, key)
    set_path(rec, flow.start_time if start else flow.end_time, occurred_at)
    flt = flow.end_filter
    if not start and flt is not None:
        for clause in (flt, *flt.also):
            set_path(rec, clause.path, _accepted(clause.op, clause.value))
    rec.update(extra)
    return rec


def _accepted(op: str, value: object) -> object:
    """A value that ``<path> op value`` accepts."""
    if op == "==":
        return value
    if op == "in" and isinstance(value, list | tuple) and value:
        return value[0]
    return f"not-{value}"
