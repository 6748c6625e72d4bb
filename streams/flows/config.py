"""Flow definitions: read and validate the YAML file of flows (format: ``docs/flows.md``).

:func:`load_flows` either returns flows that are fully valid or raises :class:`ConfigError`
whose message names the file, the flow and the field at fault and says what to write
instead, e.g. ``flows.yaml: flow 'lead_to_posthog': field 'target': '5x' is not a duration
(use e.g. 250ms, 5s, 1m30s, 24h)``. Nothing is defaulted silently except the documented
defaults (``time: occurred_at``, ``objective: 0.99``, ``give_up_after: 24h``, and the alert
policy of DESIGN section 9 for a flow without ``alerts:``).

:func:`load_config` gives the flows and, per flow name, its
:class:`~streams.alerting.policy.AlertPolicy` (the ``alerts:`` key, parsed by
:mod:`streams.flows.alerts`); :func:`load_flows` gives the flows alone. Both validate the
whole file, alerts included, so every process refuses the same bad file.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import orjson
import yaml

from streams.alerting.policy import AlertPolicy
from streams.core.model import CompletionFilter, Flow
from streams.errors import ConfigError
from streams.flows.alerts import AlertsParser

DEFAULT_FILE = "default.yaml"
DEFAULT_TIME = ("occurred_at",)
DEFAULT_OBJECTIVE = 0.99
DEFAULT_GIVE_UP_AFTER_MS = 24 * 3600 * 1000

_FLOW_FIELDS = ("name", "start", "completion", "target", "objective", "give_up_after", "alerts")
_START_FIELDS = ("topic", "key", "time")
_END_FIELDS = ("topic", "key", "time", "filter")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_DURATION = re.compile(
    r"(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m(?!s))?(?:(?P<s>\d+)s)?(?:(?P<ms>\d+)ms)?"
)
_UNIT_MS = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}
_FILTER_EQ = re.compile(r"\s*(?P<path>[^\s=!]+)\s*(?P<op>==|!=)\s*(?P<value>.+?)\s*")
_FILTER_IN = re.compile(r"\s*(?P<path>[^\s=!]+)\s+in\s+(?P<value>\[.*\])\s*")
_AND = re.compile(r"\s+and\s+")
_DURATION_HINT = "(use e.g. 250ms, 5s, 1m30s, 24h)"


def parse_duration(text: str) -> int:
    """``"1m30s"`` → ``90000``: milliseconds of a positive duration in units d, h, m, s, ms.

    Units appear at most once each, largest first; raises :class:`ValueError` otherwise.
    """
    match = _DURATION.fullmatch(text.strip()) if text.strip() else None
    if match is None:
        raise ValueError(f"{text!r} is not a duration {_DURATION_HINT}")
    ms = sum(int(v) * _UNIT_MS[unit] for unit, v in match.groupdict().items() if v is not None)
    if ms <= 0:
        raise ValueError(f"{text!r} must be longer than zero {_DURATION_HINT}")
    return ms


def parse_path(text: str) -> tuple[str, ...]:
    """``"payload.lead.id"`` → ``("payload", "lead", "id")``; raises :class:`ValueError`."""
    parts = tuple(text.split("."))
    if not text or any(not p or p != p.strip() for p in parts):
        raise ValueError(f"{text!r} is not a field path (use dotted names, e.g. payload.lead.id)")
    return parts


def parse_filter(text: str) -> CompletionFilter:
    """``'source == "lead.captured"'`` → a :class:`CompletionFilter`; raises :class:`ValueError`.

    Forms: ``path == value``, ``path != value``, ``path in [v1, v2]``, and several of them
    joined by ``and`` (all must hold); values are JSON literals (strings in double quotes,
    numbers, true, false, null). An ``and`` inside a quoted string is part of the string.
    """
    first, *rest = (_parse_comparison(part, text) for part in _split_and(text))
    if not rest:
        return first
    return CompletionFilter(first.path, first.op, first.value, tuple(rest))


def _split_and(text: str) -> list[str]:
    """``text`` cut at every `` and `` that stands outside quotes and brackets."""
    parts: list[str] = []
    start = i = depth = 0
    quoted = escaped = False
    while i < len(text):
        ch = text[i]
        if quoted:
            escaped, quoted = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            quoted = True
        elif ch in "[]":
            depth += 1 if ch == "[" else -1
        elif depth == 0 and (joint := _AND.match(text, i)) is not None:
            parts.append(text[start:i])
            start = i = joint.end()
            continue
        i += 1
    parts.append(text[start:])
    return parts


def _parse_comparison(part: str, text: str) -> CompletionFilter:
    hint = (
        'use e.g. source == "lead.captured", source != "x", source in ["a", "b"] '
        'or source == "a" and stage == "accepted"'
    )
    match = _FILTER_IN.fullmatch(part)
    op = "in"
    if match is None:
        match = _FILTER_EQ.fullmatch(part)
        if match is None:
            raise ValueError(f"{text!r} is not a filter ({hint})")
        op = match["op"]
    path = parse_path(match["path"])
    try:
        value = orjson.loads(match["value"])
    except orjson.JSONDecodeError:
        raise ValueError(
            f"{text!r}: value {match['value']} is not a JSON literal "
            '(strings need double quotes, e.g. "lead.captured")'
        ) from None
    if op == "in":
        if not isinstance(value, list) or not all(_is_scalar(v) for v in value):
            raise ValueError(f"{text!r}: 'in' needs a list of literals ({hint})")
        return CompletionFilter(path, "in", tuple(value))
    if not _is_scalar(value):
        raise ValueError(f"{text!r}: compare with a single literal ({hint})")
    return CompletionFilter(path, "==" if op == "==" else "!=", value)


@dataclass(frozen=True, slots=True)
class FlowsConfig:
    """A valid flows file: its flows in file order, and each flow's alert policy by name
    (every flow has one: the defaults when its ``alerts:`` key is absent)."""

    flows: tuple[Flow, ...]
    policies: Mapping[str, AlertPolicy]


def load_flows(path: Path | None = None) -> tuple[Flow, ...]:
    """The flows of the YAML file at ``path``, or the packaged default four when ``None``.

    Raises :class:`ConfigError` naming file, flow and field when anything is wrong.
    """
    return load_config(path).flows


def load_config(path: Path | None = None) -> FlowsConfig:
    """The flows and alert policies of the YAML file at ``path`` (the packaged default
    when ``None``); :class:`ConfigError` naming file, flow and field when anything is wrong."""
    if path is None:
        text = resources.files(__package__).joinpath(DEFAULT_FILE).read_text(encoding="utf-8")
        return parse_config(text, DEFAULT_FILE)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the flows file: {exc}") from None
    return parse_config(text, str(path))


def parse_flows(text: str, source: str = "<flows>") -> tuple[Flow, ...]:
    """Flows from YAML ``text``; ``source`` names it in error messages (a file name)."""
    return parse_config(text, source).flows


def parse_config(text: str, source: str = "<flows>") -> FlowsConfig:
    """Flows and alert policies from YAML ``text``; ``source`` names it in error messages."""
    try:
        doc = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: expected a mapping with a 'flows:' list at the top")
    extra = sorted(set(doc) - {"flows"}, key=str)
    if extra:
        raise ConfigError(
            f"{source}: unknown top-level field {extra[0]!r} (only 'flows' is allowed)"
        )
    items = doc.get("flows")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{source}: 'flows' must be a non-empty list of flow definitions")
    flows: list[Flow] = []
    policies: dict[str, AlertPolicy] = {}
    seen: dict[str, int] = {}
    for index, item in enumerate(items, start=1):
        builder = _Builder(source, index, item)
        flow = builder.build()
        if flow.name in seen:
            raise ConfigError(
                f"{source}: flow {flow.name!r}: field 'name': duplicate flow name "
                f"(flow #{seen[flow.name]} has it too); names must be unique"
            )
        seen[flow.name] = index
        flows.append(flow)
        policies[flow.name] = builder.policy(flow)
    return FlowsConfig(tuple(flows), policies)


def flow_topics(flows: Iterable[Flow]) -> tuple[str, ...]:
    """Every start and completion topic of ``flows``, sorted, each once."""
    return tuple(sorted({t for f in flows for t in (f.start_topic, f.end_topic)}))


class _Builder:
    """Validates one flow mapping; every failure goes through :meth:`fail`."""

    def __init__(self, source: str, index: int, item: object) -> None:
        self.source = source
        self.label = f"flow #{index}"
        self.item = item

    def fail(self, field: str, problem: str) -> NoReturn:
        raise ConfigError(f"{self.source}: {self.label}: field {field!r}: {problem}")

    def build(self) -> Flow:
        item = self.item
        if not isinstance(item, dict):
            raise ConfigError(f"{self.source}: {self.label}: expected a mapping, got {_kind(item)}")
        name = item.get("name")
        if name is None:
            self.fail("name", "missing; give the flow a unique name, e.g. lead_to_posthog")
        if not isinstance(name, str) or _NAME.fullmatch(name) is None:
            self.fail("name", f"{name!r} is not a flow name (1-64 of A-Z a-z 0-9 _ . -)")
        self.label = f"flow {name!r}"
        self._check_fields("", item, _FLOW_FIELDS)
        start = self._section("start", _START_FIELDS)
        end = self._section("completion", _END_FIELDS)
        target_ms = self._duration("target", item.get("target"), None)
        give_up_ms = self._duration(
            "give_up_after", item.get("give_up_after"), DEFAULT_GIVE_UP_AFTER_MS
        )
        if give_up_ms <= target_ms:
            given = item.get("give_up_after", "24h (the default)")
            self.fail("give_up_after", f"{given} must be longer than target {item['target']}")
        end_filter = None
        if end.get("filter") is not None:
            raw = end["filter"]
            if not isinstance(raw, str):
                self.fail("completion.filter", f"expected a string, got {_kind(raw)}")
            try:
                end_filter = parse_filter(raw)
            except ValueError as exc:
                self.fail("completion.filter", str(exc))
        start_topic = self._topic("start.topic", start.get("topic"))
        end_topic = self._topic("completion.topic", end.get("topic"))
        if start_topic == end_topic and end_filter is None:
            self.fail(
                "completion.filter",
                "start and completion read the same topic; add a filter",
            )
        return Flow(
            name=name,
            start_topic=start_topic,
            end_topic=end_topic,
            start_key=self._path("start.key", start.get("key"), None),
            end_key=self._path("completion.key", end.get("key"), None),
            start_time=self._path("start.time", start.get("time"), DEFAULT_TIME),
            end_time=self._path("completion.time", end.get("time"), DEFAULT_TIME),
            end_filter=end_filter,
            target_ms=target_ms,
            objective=self._objective(item.get("objective", DEFAULT_OBJECTIVE)),
            give_up_after_ms=give_up_ms,
        )

    def policy(self, flow: Flow) -> AlertPolicy:
        """The alert policy of the flow :meth:`build` returned (its ``alerts:`` key)."""
        raw = self.item.get("alerts") if isinstance(self.item, dict) else None
        parser = AlertsParser(flow, self.fail, lambda f, v: self._duration(f, v, None))
        return parser.parse(raw)

    def _check_fields(
        self, prefix: str, mapping: Mapping[Any, Any], allowed: tuple[str, ...]
    ) -> None:
        for key in mapping:
            if key not in allowed:
                near = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean {near[0]!r}? " if near else ""
                self.fail(
                    f"{prefix}{key}",
                    f"unknown field ({hint}allowed: {', '.join(allowed)})",
                )

    def _section(self, field: str, allowed: tuple[str, ...]) -> dict[Any, Any]:
        value = self.item.get(field) if isinstance(self.item, dict) else None
        if value is None:
            self.fail(field, "missing; give at least {topic: ..., key: ...}")
        if not isinstance(value, dict):
            self.fail(field, f"expected a mapping with topic and key, got {_kind(value)}")
        self._check_fields(f"{field}.", value, allowed)
        return value

    def _topic(self, field: str, value: object) -> str:
        if value is None:
            self.fail(field, "missing; name the Kafka topic")
        if not isinstance(value, str) or _TOPIC.fullmatch(value) is None or value in {".", ".."}:
            self.fail(
                field,
                f"{value!r} is not a Kafka topic name (1-249 of A-Z a-z 0-9 . _ -)",
            )
        return value

    def _path(self, field: str, value: object, default: tuple[str, ...] | None) -> tuple[str, ...]:
        if value is None:
            if default is None:
                self.fail(
                    field,
                    "missing; give the field path, e.g. lead_id or payload.lead.id",
                )
            return default
        if isinstance(value, list) and value and all(isinstance(p, str) and p for p in value):
            return tuple(value)
        if not isinstance(value, str):
            self.fail(field, f"expected a dotted field path, got {_kind(value)}")
        try:
            return parse_path(value)
        except ValueError as exc:
            self.fail(field, str(exc))

    def _duration(self, field: str, value: object, default: int | None) -> int:
        if value is None:
            if default is None:
                self.fail(field, f"missing {_DURATION_HINT}")
            return default
        if not isinstance(value, str):
            self.fail(field, f"{value!r} is not a duration; give a unit {_DURATION_HINT}")
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(field, str(exc))

    def _objective(self, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            self.fail("objective", f"{value!r} must be a number between 0 and 1, e.g. 0.99")
        return float(value)


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping (YAML would keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"field {key!r} given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(exc)


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__
