"""The HTTP plumbing every connector shares: the classification and Retry-After."""

from __future__ import annotations

import pytest

from streams.connectors.http import classify, retry_after_ms
from streams.connectors.sink import Outcome
from streams.testing.peers.alerts import T0


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (202, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (301, Outcome.REJECTED),
        (400, Outcome.REJECTED),
        (403, Outcome.REJECTED),
        (404, Outcome.REJECTED),
        (408, Outcome.REJECTED),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (503, Outcome.RETRY),
        (599, Outcome.RETRY),
    ],
)
def test_2xx_delivers_429_and_5xx_retry_the_rest_is_refused(status: int, outcome: Outcome) -> None:
    assert classify(status) is outcome


@pytest.mark.parametrize(
    ("header", "delay"),
    [
        (None, None),
        ("0", 0),
        ("7", 7000),
        (" 120 ", 120_000),
        ("Thu, 23 Apr 2026 10:47:27 GMT", 30_000),
        ("Thu, 23 Apr 2026 10:46:00 GMT", 0),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(header: str | None, delay: int | None) -> None:
    assert retry_after_ms(header, T0) == delay
