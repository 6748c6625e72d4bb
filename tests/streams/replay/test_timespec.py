"""TIME and duration arguments of replay and explain."""

from __future__ import annotations

import pytest

from streams.replay.timespec import parse_span, parse_time

NOW = 1_780_000_000_000


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("now", NOW),
        ("-2h", NOW - 7_200_000),
        ("-90s", NOW - 90_000),
        ("-1h30m", NOW - 5_400_000),
        ("1776941217123", 1_776_941_217_123),
        ("2026-04-23T10:46:57.123Z", 1_776_941_217_123),
        ("2026-04-23T12:46:57.123+02:00", 1_776_941_217_123),
    ],
)
def test_times(text: str, ms: int) -> None:
    assert parse_time(text, NOW) == ms


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("yesterday", "is not a time"),
        ("2026-04-23T10:46:57", "is not a time"),
        ("-2x", "a relative time is a minus sign and a duration"),
        ("-", "a relative time"),
        ("", "is not a time"),
    ],
)
def test_bad_times_say_what_is_expected(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_time(text, NOW)


def test_spans() -> None:
    assert parse_span("10m") == 600_000
    with pytest.raises(ValueError, match="duration"):
        parse_span("ten minutes")
