"""Event time parsing: RFC 3339 with offset or epoch ms, truncation to ms, clear refusals."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.core.timeparse import (
    MAX_EPOCH_MS,
    RFC3339_PATTERN,
    format_event_time,
    parse_event_time,
)

T0_MS = 1_776_941_217_123  # 2026-04-23T10:46:57.123Z


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        (0, 0),
        (T0_MS, T0_MS),
        (MAX_EPOCH_MS, MAX_EPOCH_MS),
        (float(T0_MS), T0_MS),
        ("2026-04-23T10:46:57.123Z", T0_MS),
        ("2026-04-23T10:46:57Z", T0_MS - 123),
        ("2026-04-23t10:46:57.123z", T0_MS),
        ("2026-04-23T12:46:57.123+02:00", T0_MS),
        ("2026-04-23T05:16:57.123-05:30", T0_MS),
        ("2026-04-23T10:46:57.1239Z", T0_MS),  # truncated, not rounded
        ("2026-04-23T10:46:57.123999999999Z", T0_MS),  # any precision
        ("2026-04-23T10:46:57.1Z", T0_MS - 23),
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T01:00:00+01:00", 0),
        ("9999-12-31T23:59:59.999Z", MAX_EPOCH_MS),
        ("2016-12-31T23:59:60.5Z", 1_483_228_800_500),  # leap second: first ms of next minute
    ],
)
def test_accepts(value: object, ms: int) -> None:
    assert parse_event_time(value) == ms


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-04-23T10:46:57", "has no offset; add 'Z' or '+hh:mm'"),
        ("2026-04-23T10:46:57.123", "has no offset"),
        ("2026-04-23T10:46", "has no offset"),
        ("2026-04-23 10:46:57Z", "expected an RFC 3339 date-time with offset"),
        ("2026-04-23", "expected an RFC 3339"),
        ("20260423T104657Z", "expected an RFC 3339"),
        ("2026-04-23T10:46:57+0200", "expected an RFC 3339"),
        ("2026-04-23T10:46:57+02", "expected an RFC 3339"),
        ("2026-04-23T10:46:57,5Z", "expected an RFC 3339"),
        ("2026-04-23T10:46:57.Z", "expected an RFC 3339"),
        ("2026-04-23T10:46:57Z\n", "expected an RFC 3339"),
        ("2026-W17-4T10:46:57Z", "expected an RFC 3339"),
        ("", "expected an RFC 3339"),
        ("x" * 500, "..."),
        ("2026-02-30T00:00:00Z", "invalid date-time '2026-02-30T00:00:00Z': day is out of range"),
        ("2026-04-23T25:00:00Z", "invalid date-time"),
        ("2026-04-23T10:46:57+24:00", "invalid date-time"),
        ("1969-12-31T23:59:59.999Z", "outside 1970-01-01T00:00:00Z"),
        ("9999-12-31T23:59:59.999-01:00", "outside"),
        (-1, "epoch milliseconds out of range"),
        (MAX_EPOCH_MS + 1, "out of range"),
        (True, "got bool"),
        (False, "got bool"),
        (1.5, "must be an integer"),
        (float("inf"), "must be an integer"),
        (float("nan"), "must be an integer"),
        (None, "got NoneType"),
        ([1], "got list"),
        (b"2026-04-23T10:46:57Z", "got bytes"),
    ],
)
def test_refuses_with_a_clear_message(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_event_time(value)


def test_pattern_is_the_one_the_schemas_use() -> None:
    rx = re.compile(RFC3339_PATTERN)
    assert rx.search("2026-04-23T10:46:57.123Z")
    assert not rx.search("2026-04-23T10:46:57")


@given(st.integers(min_value=0, max_value=MAX_EPOCH_MS))
def test_format_then_parse_round_trips(ms: int) -> None:
    text = format_event_time(ms)
    assert re.fullmatch(RFC3339_PATTERN[1:-1], text)
    assert parse_event_time(text) == ms


aware = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(9998, 12, 31),
    timezones=st.builds(
        timezone,
        st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
            lambda m: timedelta(minutes=m)
        ),
    ),
)


@given(aware, st.integers(min_value=0, max_value=9), st.sampled_from(["T", "t"]))
def test_any_rfc3339_string_gives_the_instant_truncated_to_ms(
    dt: datetime, extra_digits: int, sep: str
) -> None:
    offset = dt.utcoffset()
    assert offset is not None
    minutes = int(offset.total_seconds()) // 60
    tz = (
        "Z"
        if minutes == 0
        else f"{'+' if minutes > 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    )
    frac = f"{dt.microsecond:06d}" + "7" * extra_digits
    text = dt.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + "." + frac + tz
    expected = (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert parse_event_time(text) == expected
    assert re.fullmatch(RFC3339_PATTERN[1:-1], text)


@given(st.text(max_size=40))
def test_any_text_parses_or_raises_value_error(text: str) -> None:
    try:
        ms = parse_event_time(text)
    except ValueError:
        return
    assert 0 <= ms <= MAX_EPOCH_MS
    assert re.fullmatch(RFC3339_PATTERN[1:-1], text)
