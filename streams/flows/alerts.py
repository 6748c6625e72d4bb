"""The ``alerts:`` key of a flow in the flows YAML (format: ``docs/flows.md``, "Alerts").

:class:`AlertsParser` turns the key's value into the flow's
:class:`~streams.alerting.policy.AlertPolicy`: every alert starts from its default
(:func:`~streams.alerting.policy.default_policy`) and each field given replaces that field
only. Every failure goes through the flow builder's ``fail`` with the field's full path,
e.g. ``field 'alerts.page-fast.factor': 'fast' must be a number greater than 0``.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, TypeVar

from streams.alerting.policy import (
    ALERT_NAMES,
    BACKLOG,
    ROUTES,
    SEVERITIES,
    STUCK,
    AlertPolicy,
    BacklogRule,
    BurnTier,
    Route,
    StuckRule,
    check_window,
    default_policy,
)
from streams.connectors.sink import Severity
from streams.core.model import Flow

Fail = Callable[[str, str], NoReturn]
"""Raises the flows file's :class:`~streams.errors.ConfigError` for (field, problem)."""
Duration = Callable[[str, object], int]
"""Milliseconds of a duration field's value, or ``Fail`` naming the field."""

_T = TypeVar("_T")

_COMMON = ("enabled", "severity", "routes")
_TIER_FIELDS = ("factor", "long_window", "short_window", "min_bad", *_COMMON)
_STUCK_FIELDS = ("min_open", "after", *_COMMON)
_BACKLOG_FIELDS = ("max_pending", *_COMMON)


class AlertsParser:
    """Validates one flow's ``alerts:`` value against the flow's defaults."""

    def __init__(self, flow: Flow, fail: Fail, duration: Duration) -> None:
        self.flow = flow
        self.fail = fail
        self.duration = duration

    def parse(self, raw: object) -> AlertPolicy:
        """The flow's policy; ``raw`` ``None`` (no ``alerts:`` key) gives the defaults."""
        base = default_policy(self.flow)
        if raw is None:
            return base
        if not isinstance(raw, dict):
            self.fail("alerts", f"expected a mapping of alert names, got {_kind(raw)}")
        self._check_fields("alerts", raw, ALERT_NAMES)
        tiers = tuple(t for t in (self._tier(tier, raw.get(tier.name)) for tier in base.tiers) if t)
        return dataclasses.replace(
            base, tiers=tiers, stuck=self._stuck(raw.get(STUCK)), backlog=self._backlog(raw)
        )

    # ---- one alert each ---------------------------------------------------------------

    def _tier(self, tier: BurnTier, raw: object) -> BurnTier | None:
        where = f"alerts.{tier.name}"
        item = self._item(where, raw, _TIER_FIELDS)
        if item is None:
            return None
        long_ms = self._window(f"{where}.long_window", item, tier.long_window_ms)
        short_ms = self._window(f"{where}.short_window", item, tier.short_window_ms)
        if short_ms >= long_ms:
            self.fail(
                f"{where}.short_window",
                f"must be shorter than long_window ({short_ms} ms >= {long_ms} ms)",
            )
        return self._build(
            where,
            lambda: dataclasses.replace(
                tier,
                factor=self._number(f"{where}.factor", item, tier.factor),
                long_window_ms=long_ms,
                short_window_ms=short_ms,
                min_bad=self._count(f"{where}.min_bad", item, tier.min_bad, least=1),
                severity=self._severity(where, item, tier.severity),
                routes=self._routes(where, item, tier.routes),
            ),
        )

    def _stuck(self, raw: object) -> StuckRule | None:
        where = f"alerts.{STUCK}"
        item = self._item(where, raw, _STUCK_FIELDS)
        if item is None:
            return None
        base = StuckRule(after_ms=self.flow.target_ms)
        after = base.after_ms
        if item.get("after") is not None:
            after = self.duration(f"{where}.after", item["after"])
        return self._build(
            where,
            lambda: StuckRule(
                after_ms=after,
                min_open=self._count(f"{where}.min_open", item, base.min_open, least=1),
                severity=self._severity(where, item, base.severity),
                routes=self._routes(where, item, base.routes),
            ),
        )

    def _backlog(self, alerts: Mapping[Any, Any]) -> BacklogRule | None:
        where = f"alerts.{BACKLOG}"
        base = default_policy(self.flow).backlog
        raw = alerts.get(BACKLOG)
        item = self._item(where, raw, _BACKLOG_FIELDS)
        if item is None or (raw is None and base is None):
            return None
        if base is None and item.get("max_pending") is None:
            self.fail(
                f"{where}.max_pending",
                "missing; backlog is off by default for this flow, give max_pending "
                "(e.g. 100) to turn it on",
            )
        base = base or BacklogRule(max_pending=0)
        return self._build(
            where,
            lambda: BacklogRule(
                max_pending=self._count(f"{where}.max_pending", item, base.max_pending, least=0),
                severity=self._severity(where, item, base.severity),
                routes=self._routes(where, item, base.routes),
            ),
        )

    # ---- fields -----------------------------------------------------------------------

    def _item(self, where: str, raw: object, allowed: tuple[str, ...]) -> dict[Any, Any] | None:
        """The alert's mapping (``{}`` when not given); ``None`` when it is switched off
        (``false`` or ``enabled: false``)."""
        if raw is None:
            return {}
        if raw is False:
            return None
        if not isinstance(raw, dict):
            self.fail(where, f"expected a mapping of fields or false (off), got {_kind(raw)}")
        self._check_fields(where, raw, allowed)
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            self.fail(f"{where}.enabled", f"{enabled!r} must be true or false")
        return raw if enabled else None

    def _window(self, field: str, item: Mapping[Any, Any], default: int) -> int:
        name = field.rsplit(".", 1)[1]
        if item.get(name) is None:
            return default
        ms = self.duration(field, item[name])
        try:
            check_window(name, ms)
        except ValueError:
            self.fail(field, f"{item[name]!r} must be a whole number of minutes, at most 30d")
        return ms

    def _number(self, field: str, item: Mapping[Any, Any], default: float) -> float:
        value = item.get(field.rsplit(".", 1)[1], default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            self.fail(field, f"{value!r} must be a number greater than 0, e.g. 14.4")
        return float(value)

    def _count(self, field: str, item: Mapping[Any, Any], default: int, *, least: int) -> int:
        value = item.get(field.rsplit(".", 1)[1], default)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            self.fail(field, f"{value!r} must be a whole number of at least {least}")
        return value

    def _severity(self, where: str, item: Mapping[Any, Any], default: Severity) -> Severity:
        value = item.get("severity", default)
        if value not in SEVERITIES:
            self.fail(f"{where}.severity", f"{value!r} is not one of {', '.join(SEVERITIES)}")
        return value  # type: ignore[no-any-return]  # one of SEVERITIES, checked above

    def _routes(
        self, where: str, item: Mapping[Any, Any], default: frozenset[Route]
    ) -> frozenset[Route]:
        value = item.get("routes")
        if value is None:
            return default
        hint = f"give a list of sinks from {', '.join(ROUTES)}, e.g. [alertmanager, webhook]"
        if not isinstance(value, list):
            self.fail(f"{where}.routes", f"expected a list, got {_kind(value)} ({hint})")
        for name in value:
            if name not in ROUTES:
                self.fail(f"{where}.routes", f"unknown route {name!r} ({hint})")
        if len(set(value)) != len(value):
            self.fail(f"{where}.routes", f"{value!r} names a route twice")
        return frozenset(value)

    def _build(self, where: str, make: Callable[[], _T]) -> _T:
        try:
            return make()
        except ValueError as exc:  # a rule's own check: the parser should have caught it
            self.fail(where, str(exc))

    def _check_fields(
        self, where: str, mapping: Mapping[Any, Any], allowed: tuple[str, ...]
    ) -> None:
        for key in mapping:
            if key not in allowed:
                near = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean {near[0]!r}? " if near else ""
                self.fail(f"{where}.{key}", f"unknown field ({hint}allowed: {', '.join(allowed)})")


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__
