"""A local PagerDuty Events API v2 (``POST /v2/enqueue``) for tests.

It validates every event as PagerDuty documents it (required fields, enums, the summary's
1024 characters, a dedup key of at most 255 characters, RFC 3339 timestamps, link objects),
answers 202 ``{"status": "success", "message": "Event processed", "dedup_key": ...}`` for a
valid event and 400 ``{"status": "invalid event", "message": "Event object is invalid",
"errors": [...]}`` otherwise (``"Unrecognized object"`` for a body that is not JSON), and
keeps PagerDuty's incident view: a trigger opens an incident for its dedup key unless one
is open (then it is de-duplicated into it), a resolve closes it. Scripted answers (429 with
``Retry-After``, 500, slow) come from :meth:`LocalPeer.cue`; scripted answers change no
incident.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from streams.core.clock import Clock, now_ms
from streams.testing.peers.server import Answer, LocalPeer

ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
SUMMARY_MAX = 1024
DEDUP_KEY_MAX = 255


@dataclass(slots=True)
class Incident:
    """PagerDuty's view of one dedup key."""

    dedup_key: str
    status: str = "triggered"
    """``triggered``, ``acknowledged`` or ``resolved``."""
    opened: int = 0
    """Triggers that opened an incident (``1`` is "exactly one incident")."""
    triggers: int = 0
    resolves: int = 0
    last_trigger: dict[str, Any] | None = None


def _text(value: object, name: str, errors: list[str], limit: int | None = None) -> None:
    if not isinstance(value, str) or not value.strip():
        errors.append(f"'{name}' is missing or blank")
    elif limit is not None and len(value) > limit:
        errors.append(f"'{name}' is too long (maximum {limit} characters, got {len(value)})")


def _timestamp(value: object, errors: list[str]) -> None:
    try:
        if not isinstance(value, str):
            raise ValueError
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        errors.append("'payload.timestamp' is not a valid RFC 3339 date-time")


def _payload_errors(payload: object) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is missing or not an object"]
    errors: list[str] = []
    _text(payload.get("summary"), "payload.summary", errors, SUMMARY_MAX)
    _text(payload.get("source"), "payload.source", errors)
    if payload.get("severity") not in SEVERITIES:
        errors.append("'payload.severity' must be one of: " + ", ".join(SEVERITIES))
    if "timestamp" in payload:
        _timestamp(payload["timestamp"], errors)
    errors.extend(
        f"'payload.{name}' must be a string"
        for name in ("component", "group", "class")
        if name in payload and not isinstance(payload[name], str)
    )
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        errors.append("'payload.custom_details' must be an object")
    return errors


def _links_errors(links: object) -> list[str]:
    if not isinstance(links, list):
        return ["'links' must be an array"]
    bad = [link for link in links if not isinstance(link, dict) or "href" not in link]
    return ["each of 'links' must be an object with 'href'"] if bad else []


def event_errors(event: object) -> list[str]:
    """What PagerDuty would reject in this event; empty when it is valid."""
    if not isinstance(event, dict):
        return ["Event object is not a JSON object"]
    errors: list[str] = []
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if action not in ACTIONS:
        errors.append("'event_action' must be one of: " + ", ".join(ACTIONS))
    if "dedup_key" in event or action in ("acknowledge", "resolve"):
        _text(event.get("dedup_key"), "dedup_key", errors, DEDUP_KEY_MAX)
    if action == "trigger":
        errors.extend(_payload_errors(event.get("payload")))
    if "links" in event:
        errors.extend(_links_errors(event["links"]))
    return errors


class PagerDutyPeer(LocalPeer):
    """Serves ``POST /v2/enqueue``; :attr:`enqueue_url` is what the connector is given."""

    def __init__(self, clock: Clock = now_ms) -> None:
        super().__init__(clock)
        self.incidents: dict[str, Incident] = {}

    @property
    def enqueue_url(self) -> str:
        return f"{self.url}/v2/enqueue"

    def events(self, status: int | None = 202) -> list[dict[str, Any]]:
        """The bodies of the requests answered with ``status`` (all when ``None``)."""
        return [r.json() for r in self.requests if status is None or r.status == status]

    async def answer(self, request: web.Request, body: bytes) -> Answer:
        if request.method != "POST" or request.path != "/v2/enqueue":
            return Answer.of_json(404, {"status": "not found", "message": request.path})
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError:
            unrecognized = {
                "status": "Unrecognized object",
                "message": "Event object format is unrecognized",
                "errors": ["JSON parse error"],
            }
            return Answer.of_json(400, unrecognized)
        errors = event_errors(event)
        if errors:
            invalid = {"status": "invalid event", "message": "Event object is invalid"}
            return Answer.of_json(400, {**invalid, "errors": errors})
        key = str(event.get("dedup_key") or uuid.uuid4().hex)
        self._apply(event, key)
        accepted = {"status": "success", "message": "Event processed", "dedup_key": key}
        return Answer.of_json(202, accepted)

    def _apply(self, event: dict[str, Any], key: str) -> None:
        action = event["event_action"]
        incident = self.incidents.get(key)
        if action == "trigger":
            if incident is None:
                incident = self.incidents[key] = Incident(key, status="resolved")
            if incident.status == "resolved":
                incident.opened += 1
                incident.status = "triggered"
            incident.triggers += 1
            incident.last_trigger = event
        elif incident is not None and incident.status != "resolved":
            incident.status = "resolved" if action == "resolve" else "acknowledged"
            incident.resolves += action == "resolve"
