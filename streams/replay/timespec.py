"""The times and durations ``freshness replay`` and ``freshness explain`` take on the command line.

A TIME is one of:

* an RFC 3339 date-time with offset (``2026-04-23T10:46:57.123Z``), as event times are;
* integer epoch milliseconds (``1776941217123``);
* ``now``, or a time relative to now: ``-2h``, ``-90s``, ``-1h30m`` (a minus sign and a
  duration in the units of the flows file: d, h, m, s, ms).

Relative times are resolved against an injected ``now`` (epoch ms), so one command resolves
every TIME it takes against the same instant. Every error is a :class:`ValueError` whose
message says what was expected.
"""

from __future__ import annotations

from streams.core.timeparse import parse_event_time
from streams.flows.config import parse_duration
from streams.replay.options import TIME_HELP


def parse_time(text: str, now: int) -> int:
    """``text`` as epoch milliseconds (see the module docstring); ``now`` resolves relatives."""
    value = text.strip()
    if value == "now":
        return now
    if value.startswith("-"):
        try:
            return now - parse_duration(value[1:])
        except ValueError:
            raise ValueError(
                f"time {text!r}: a relative time is a minus sign and a duration, e.g. -2h, "
                "-90s or -1h30m"
            ) from None
    try:
        return parse_event_time(int(value) if value.isdigit() else value)
    except ValueError:
        raise ValueError(f"time {text!r} is not a time ({TIME_HELP})") from None


def parse_span(text: str) -> int:
    """A positive duration such as ``10m`` or ``1h30m``, in milliseconds."""
    return parse_duration(text)
