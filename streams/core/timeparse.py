"""Event time parsing: RFC 3339 strings with an offset, or integer epoch milliseconds.

Pure: standard library only. This runs once per input event, so the common case (an ``int``,
or an RFC 3339 string such as ``2026-04-23T10:46:57.123Z``) takes well under a microsecond.

Guarantees of :func:`parse_event_time`:

- the result is an ``int`` of epoch milliseconds in ``0 ..= MAX_EPOCH_MS`` (1970 .. 9999);
- fractional seconds of any precision are *truncated* to milliseconds, never rounded;
- a time without an offset (a "naive" local time) is refused: its instant is unknown;
- only RFC 3339 ``date-time`` is accepted (``T`` or ``t`` between date and time,
  ``Z``/``z`` or ``+hh:mm``/``-hh:mm``); other ISO 8601 forms such as ``20260423T104657Z``,
  ``2026-04-23T10:46Z`` or ``+0530`` are refused, so every accepted string also matches the
  ``occurred_at`` pattern of the input schemas (``schemas/input/*.schema.json``);
- a leap second (``:60``) counts as the first millisecond of the next minute, as POSIX does;
- anything else raises :class:`ValueError` whose message says what was expected.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

MAX_EPOCH_MS = 253_402_300_799_999
"""``9999-12-31T23:59:59.999Z``: the latest representable event time."""

RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
"""The shape of an RFC 3339 date-time with offset; the input schemas use the same pattern."""

_RFC3339 = re.compile(RFC3339_PATTERN[1:-1])
_NAIVE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_EXPECTED = (
    "expected an RFC 3339 date-time with offset (e.g. 2026-04-23T10:46:57.123Z)"
    " or integer epoch milliseconds"
)


def parse_event_time(value: object) -> int:
    """Return ``value`` as epoch milliseconds; raise :class:`ValueError` when it is not a time.

    Accepts a non-negative ``int`` (not ``bool``), an integral ``float`` (JSON Schema counts
    ``1.0`` as an integer), or an RFC 3339 string with offset. See the module docstring.
    """
    if type(value) is int:
        if 0 <= value <= MAX_EPOCH_MS:
            return value
        raise ValueError(f"epoch milliseconds out of range 0..{MAX_EPOCH_MS}: {value}")
    if type(value) is str:
        return _parse_rfc3339(value)
    if type(value) is float:
        if value.is_integer():
            return parse_event_time(int(value))
        raise ValueError(f"epoch milliseconds must be an integer, got {value!r}")
    raise ValueError(f"{_EXPECTED}; got {type(value).__name__}")


def _parse_rfc3339(text: str) -> int:
    if _RFC3339.fullmatch(text) is None:
        shown = text if len(text) <= 64 else text[:64] + "..."
        if _NAIVE.fullmatch(text) is not None:
            raise ValueError(f"time {shown!r} has no offset; add 'Z' or '+hh:mm'")
        raise ValueError(f"{_EXPECTED}; got {shown!r}")
    try:
        ms = (datetime.fromisoformat(text) - _EPOCH) // _MS
    except ValueError:
        ms = _parse_slow(text)
    if 0 <= ms <= MAX_EPOCH_MS:
        return ms
    raise ValueError(f"time {text!r} is outside 1970-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z")


def _parse_slow(text: str) -> int:
    """Forms ``fromisoformat`` refuses but RFC 3339 allows: lower-case ``t``/``z``, ``:60``."""
    norm = text[:10] + "T" + text[11:]
    if norm[-1] == "z":
        norm = norm[:-1] + "Z"
    extra = 0
    if norm[17:19] == "60":
        norm = norm[:17] + "59" + norm[19:]
        extra = 1000
    try:
        return (datetime.fromisoformat(norm) - _EPOCH) // _MS + extra
    except ValueError as exc:
        raise ValueError(f"invalid date-time {text!r}: {exc}") from None


def format_event_time(ms: int) -> str:
    """The RFC 3339 UTC form of epoch milliseconds, e.g. ``2026-04-23T10:46:57.123Z``.

    ``parse_event_time(format_event_time(ms)) == ms`` for every ``ms`` in ``0..MAX_EPOCH_MS``.
    """
    dt = _EPOCH + timedelta(milliseconds=ms)
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
        f"{dt.second:02d}.{dt.microsecond // 1000:03d}Z"
    )
