"""Quarantine: why an input record was refused, and the record that says so.

Every refused input record becomes one ``freshness.quarantine`` record (schema
``schemas/output/quarantine.schema.json``) carrying the source topic, partition and offset,
a reason code from :data:`REASONS`, a human detail, and the raw bytes (base64, cut at
64 KiB; a longer value's ``detail`` ends with its SHA-256), so an operator can see and
replay what was refused, and match a cut record to the producer's copy.
"""

from __future__ import annotations

import base64
import hashlib
from types import MappingProxyType
from typing import Final, Literal

Reason = Literal[
    "too_large",
    "not_json",
    "not_object",
    "schema_violation",
    "missing_key",
    "missing_time",
    "unparsable_time",
    "future_time",
    "unknown_topic",
    "corrupt_internal",
]
"""Reason codes of quarantined records (also the ``reason`` label of the metric)."""

REASONS: Final[MappingProxyType[Reason, str]] = MappingProxyType(
    {
        "too_large": "the record is larger than 1 MiB; it was not parsed",
        "not_json": "the record is not JSON (or is empty: a tombstone or zero bytes)",
        "not_object": "the record is JSON but not an object",
        "schema_violation": "the record breaks the topic's schema (the detail names the field)",
        "missing_key": "a flow's key field is absent, empty or not a string",
        "missing_time": "a flow's time field is absent or null",
        "unparsable_time": "a flow's time field is not an RFC 3339 time with offset or epoch ms",
        "future_time": (
            "a flow's time is further ahead of when the record was read than "
            "FRESHNESS_MAX_FUTURE_SKEW_MS allows"
        ),
        "unknown_topic": "no configured flow reads this topic",
        "corrupt_internal": "a message of the internal flow-events topic this version cannot read",
    }
)
"""Each reason code with a one-line description, for docs and metric help."""

MAX_RECORD_BYTES: Final = 1 << 20
"""Records larger than this (1 MiB) are refused as ``too_large`` before parsing."""
RAW_CAP_BYTES: Final = 64 * 1024
"""At most this many bytes of the raw record are kept in ``raw_b64``."""
DETAIL_CAP_CHARS: Final = 1024
"""``detail`` is cut to this many characters (the schema's ``maxLength``)."""


def quarantine_record(
    topic: str,
    partition: int,
    offset: int,
    reason: str,
    detail: str,
    raw: bytes | None,
    observed_at: int,
) -> dict[str, object]:
    """The ``freshness.quarantine`` record for one refused input record.

    ``raw_b64`` holds the first 64 KiB of ``raw`` (``null`` for a tombstone), ``raw_size`` the
    full size and ``truncated`` whether bytes were cut. A truncated record's ``detail`` ends
    with the SHA-256 of the whole value (:func:`whole_value_digest`), so a copy kept by the
    producer can be matched without a quarantine record of 1 MiB. Raises
    :class:`ValueError` for a reason that is not in :data:`REASONS` (a programming error,
    not bad input).
    """
    if reason not in REASONS:
        raise ValueError(f"unknown quarantine reason {reason!r}; use one of {sorted(REASONS)}")
    size = 0 if raw is None else len(raw)
    if raw is not None and size > RAW_CAP_BYTES:
        digest = whole_value_digest(raw)
        detail = f"{detail[: DETAIL_CAP_CHARS - len(digest)]}{digest}"
    return {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "reason": reason,
        "detail": detail[:DETAIL_CAP_CHARS],
        "raw_b64": None if raw is None else base64.b64encode(raw[:RAW_CAP_BYTES]).decode("ascii"),
        "raw_size": size,
        "truncated": size > RAW_CAP_BYTES,
        "observed_at": observed_at,
    }


def whole_value_digest(raw: bytes) -> str:
    """The suffix a truncated record's ``detail`` ends with: ``; sha256 <64 hex digits>``."""
    return f"; sha256 {hashlib.sha256(raw).hexdigest()}"
