"""Alert states from successive evaluations: a pure state machine, time passed in.

:class:`AlertTracker` holds the current state of every alert of an app and, given the
:class:`~streams.alerting.evaluate.AlertCondition` s of an evaluation, returns the state
changes to write to ``freshness.alerts`` (DESIGN section 9), as
:class:`~streams.connectors.sink.AlertEvent` s: the one record of an alert state.

Guarantees:

* **Changes only.** An alert not firing whose condition ``holds`` becomes ``firing``; a
  firing alert whose condition is ``cleared`` becomes ``resolved``; a condition that does
  neither leaves it as it is. A firing alert whose **severity** changes (a new policy after
  a restart) is emitted again as firing, same ``since``. Nothing else is emitted: a firing
  alert's summary and details move with every evaluation, and are carried by its next
  change, not re-sent on their own (sinks re-send what needs re-sending).
* **Times.** ``since`` is when the alert's current firing episode began: the firing time,
  kept by the resolved state that ends the episode (so Alertmanager's ``startsAt`` stays);
  ``updated_at`` is the time of the change (for a resolved state, when it resolved).
* **Identity and order.** ``alert_id`` is ``<app_id>/<flow>/<alert>``; ``version`` is the
  previous state's plus one (1 for an alert's first state), so it grows per alert; the
  outbox may replace it with the record's offset, which grows too. Changes come out sorted
  by alert id: the same states and conditions give the same changes.
* **Orphans.** A firing alert (restored from the outbox) that no policy has any more (a
  flow or an alert removed, a tier switched off) is resolved by the next :meth:`observe`.
* **Restart.** Built with the outbox's latest state of every alert (``restored``), the
  tracker continues where the previous alerter stopped: an alert already firing is not
  fired again. Restored states of another app id are ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from streams.alerting.evaluate import AlertCondition, cap_summary
from streams.alerting.policy import ALL_ROUTES, AlertPolicy, Route
from streams.connectors.sink import AlertEvent


def alert_id(app_id: str, flow: str, alert: str) -> str:
    """``<app_id>/<flow>/<alert>``: the alert's identity in the outbox and at every sink."""
    return f"{app_id}/{flow}/{alert}"


class AlertTracker:
    """The state of every alert of ``app_id``; not thread-safe (one evaluation loop)."""

    def __init__(
        self,
        app_id: str,
        policies: Iterable[AlertPolicy],
        restored: Iterable[AlertEvent] = (),
    ) -> None:
        self.app_id = app_id
        self._policies = {p.flow: p for p in policies}
        self._known = {
            alert_id(app_id, p.flow, a) for p in self._policies.values() for a in p.alerts
        }
        self._states: dict[str, AlertEvent] = {}
        prefix = f"{app_id}/"
        for event in restored:
            if not event.alert_id.startswith(prefix):
                continue
            held = self._states.get(event.alert_id)
            if held is None or event.version >= held.version:
                self._states[event.alert_id] = event

    @property
    def states(self) -> Mapping[str, AlertEvent]:
        """The latest state of every alert that ever changed, by alert id (read-only)."""
        return MappingProxyType(self._states)

    def routes(self, event: AlertEvent) -> frozenset[Route]:
        """The sinks a state of ``event``'s alert goes to: its policy's routes, or every
        route for an alert no policy has (its owed resolve goes wherever it may have gone)."""
        policy = self._policies.get(event.flow)
        return ALL_ROUTES if policy is None else policy.routes_for(event.alert)

    def firing(self) -> list[AlertEvent]:
        """The firing alerts, sorted by alert id."""
        return [e for _, e in sorted(self._states.items()) if e.firing]

    def observe(self, conditions: Iterable[AlertCondition], now_ms: int) -> list[AlertEvent]:
        """Apply one evaluation (any subset of the alerts); return the changes it makes,
        sorted by alert id, and remember them as the current states."""
        changes: dict[str, AlertEvent] = {}
        for cond in conditions:
            ident = alert_id(self.app_id, cond.flow, cond.alert)
            change = self._change(ident, cond, now_ms)
            if change is not None:
                changes[ident] = change
        for ident, held in self._states.items():
            if held.firing and ident not in self._known and ident not in changes:
                gone = f"{held.flow}: {held.alert} is no longer in the policy; was: {held.summary}"
                changes[ident] = _resolved(held, now_ms, cap_summary(gone))
        out = [changes[i] for i in sorted(changes)]
        self._states.update((e.alert_id, e) for e in out)
        return out

    def _change(self, ident: str, cond: AlertCondition, now_ms: int) -> AlertEvent | None:
        held = self._states.get(ident)
        if held is not None and held.firing:
            if cond.cleared:
                return dataclasses.replace(
                    _resolved(held, now_ms, cond.summary), details=dict(cond.details)
                )
            if cond.severity != held.severity:
                return _next(held, cond, held.since, now_ms)
            return None
        if not cond.holds:
            return None
        if held is None:
            return _first(ident, cond, now_ms)
        return _next(held, cond, now_ms, now_ms)


def _first(ident: str, cond: AlertCondition, now_ms: int) -> AlertEvent:
    return AlertEvent(
        alert_id=ident,
        version=1,
        flow=cond.flow,
        alert=cond.alert,
        severity=cond.severity,
        status="firing",
        since=now_ms,
        updated_at=now_ms,
        summary=cond.summary,
        details=dict(cond.details),
    )


def _next(held: AlertEvent, cond: AlertCondition, since: int, now_ms: int) -> AlertEvent:
    return dataclasses.replace(
        held,
        version=held.version + 1,
        severity=cond.severity,
        status="firing",
        since=since,
        updated_at=now_ms,
        summary=cond.summary,
        details=dict(cond.details),
    )


def _resolved(held: AlertEvent, now_ms: int, summary: str) -> AlertEvent:
    return dataclasses.replace(
        held, version=held.version + 1, status="resolved", updated_at=now_ms, summary=summary
    )
