"""What every alert connector is given and what it answers: the neutral alert record, the
outcome of one delivery attempt, and the :class:`Sink` protocol the delivery queue drives.

Nothing here knows a peer or a policy. A connector (``pagerduty``, ``alertmanager``,
``webhook``) maps an :class:`AlertEvent` to its peer's request and classifies the peer's
answer into an :class:`Attempt`; :mod:`streams.alerting.delivery` decides what to do next.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal, Protocol

Severity = Literal["critical", "error", "warning", "info"]
Status = Literal["firing", "resolved"]


@dataclass(frozen=True, slots=True)
class Link:
    """A link shown with the alert (a dashboard, the flow's API page, a runbook)."""

    href: str
    text: str = ""


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One state of one alert, as the ``freshness.alerts`` outbox holds it (DESIGN section 9).

    ``alert_id`` is ``<app_id>/<flow>/<alert>`` and is the identity every sink keeps
    (PagerDuty ``dedup_key``, the Alertmanager ``alert_id`` label, the webhook id stem).
    ``version`` grows with every state change of the same alert (the alerter passes the
    ``freshness.alerts`` offset of the record): a higher version is a newer state. Times are
    epoch milliseconds. ``details`` must be JSON-serialisable (orjson).
    """

    alert_id: str
    version: int
    flow: str
    alert: str
    severity: Severity
    status: Status
    since: int
    updated_at: int
    summary: str
    details: dict[str, object] = field(default_factory=dict)
    links: tuple[Link, ...] = ()

    @property
    def firing(self) -> bool:
        return self.status == "firing"


class Outcome(enum.Enum):
    """How a peer took one request."""

    DELIVERED = "delivered"
    """The peer accepted it; nothing more to do for this state."""
    RETRY = "retry"
    """The peer is throttling or failing (429, 5xx, no answer): send it again later."""
    REJECTED = "rejected"
    """The peer refused this request for good (another 4xx): dead-letter it."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """The result of one request to a peer.

    ``status`` is ``None`` when no HTTP answer came: RETRY after a connection error or a
    timeout, REJECTED when the request could not even be encoded; ``body`` is then the
    reason, otherwise the response body (cut at 64 KiB). ``request`` is
    the body that was sent with credentials redacted, fit to log and to dead-letter.
    ``retry_after_ms`` is the peer's ``Retry-After`` as a delay from the time of the
    attempt, when it sent one.
    """

    outcome: Outcome
    status: int | None
    url: str
    request: str
    body: str = ""
    retry_after_ms: int | None = None


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``events`` requests in any window of ``window_ms`` per rate key."""

    events: int
    window_ms: int = 60_000


class Sink(Protocol):
    """A peer that alert states are delivered to, as the delivery queue sees it.

    ``send`` never raises for what the peer or the network does: every answer, and no
    answer, comes back as an :class:`Attempt`. ``rate_limit`` and ``resend_ms`` are facts of
    the peer's API (PagerDuty throttles per routing key; Alertmanager forgets an alert that
    is not re-sent), which the queue honours without knowing the peer.
    """

    @property
    def name(self) -> str:
        """Short sink name for logs and the ``sink`` metric label, e.g. ``pagerduty``."""
        ...

    @property
    def rate_limit(self) -> RateLimit | None:
        """The peer's request budget per :meth:`rate_key`, or ``None`` for none."""
        ...

    @property
    def resend_ms(self) -> int | None:
        """How often a firing alert must be sent again to stay active, or ``None``."""
        ...

    def rate_key(self, event: AlertEvent) -> str:
        """Which budget a request for ``event`` spends (PagerDuty: its routing key)."""
        ...

    async def send(self, event: AlertEvent, now_ms: int) -> Attempt:
        """Send ``event`` once; ``now_ms`` is the time of the attempt."""
        ...

    async def aclose(self) -> None:
        """Release the HTTP session; ``send`` must not be called afterwards."""
        ...
