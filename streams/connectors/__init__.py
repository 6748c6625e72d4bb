"""Peers of the monitor, one module per peer, each knowing only that peer's API.

- :mod:`~streams.connectors.sink`: the neutral :class:`AlertEvent` every alert connector is
  given, the :class:`Attempt` it answers and the :class:`Sink` protocol.
- :mod:`~streams.connectors.pagerduty`: PagerDuty Events API v2.
- :mod:`~streams.connectors.alertmanager`: Prometheus Alertmanager API v2.
- :mod:`~streams.connectors.webhook`: a Standard Webhooks signed POST.
- :mod:`~streams.connectors.http`: the aiohttp plumbing they share.

No connector knows a policy (when to page, retry, throttle or give up): that is
:mod:`streams.alerting`.
"""

from streams.connectors.sink import AlertEvent, Attempt, Link, Outcome, RateLimit, Sink

__all__ = ["AlertEvent", "Attempt", "Link", "Outcome", "RateLimit", "Sink"]
