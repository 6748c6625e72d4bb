"""Quarantine records: raw bytes kept (cut at 64 KiB), schema-valid, reasons documented."""

from __future__ import annotations

import base64
from typing import get_args

import fastjsonschema
import pytest

from streams.pipeline.quarantine import (
    DETAIL_CAP_CHARS,
    RAW_CAP_BYTES,
    REASONS,
    Reason,
    quarantine_record,
)
from streams.schemas import load_schema

VALIDATE = fastjsonschema.compile(load_schema("output/quarantine.schema.json"))


def test_small_record_kept_whole() -> None:
    rec = quarantine_record("funnel.lead.captured", 2, 17, "not_json", "bad", b"{oops", 1_000)
    assert rec == {
        "topic": "funnel.lead.captured",
        "partition": 2,
        "offset": 17,
        "reason": "not_json",
        "detail": "bad",
        "raw_b64": base64.b64encode(b"{oops").decode(),
        "raw_size": 5,
        "truncated": False,
        "observed_at": 1_000,
    }
    VALIDATE(rec)


@pytest.mark.parametrize(
    ("size", "truncated"),
    [
        (RAW_CAP_BYTES - 1, False),
        (RAW_CAP_BYTES, False),
        (RAW_CAP_BYTES + 1, True),
        (1 << 21, True),
    ],
)
def test_raw_cut_at_64_kib(size: int, truncated: bool) -> None:
    raw = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    rec = quarantine_record("t", 0, 0, "too_large", "big", raw, 1)
    kept = base64.b64decode(str(rec["raw_b64"]))
    assert kept == raw[:RAW_CAP_BYTES]
    assert (rec["raw_size"], rec["truncated"]) == (size, truncated)
    VALIDATE(rec)


def test_tombstone_has_null_raw() -> None:
    rec = quarantine_record("t", 0, 0, "not_json", "empty record", None, 1)
    assert (rec["raw_b64"], rec["raw_size"], rec["truncated"]) == (None, 0, False)
    VALIDATE(rec)


def test_detail_is_capped() -> None:
    rec = quarantine_record("t", 0, 0, "schema_violation", "d" * 5000, b"{}", 1)
    assert len(str(rec["detail"])) == DETAIL_CAP_CHARS
    VALIDATE(rec)


def test_unknown_reason_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown quarantine reason 'oops'"):
        quarantine_record("t", 0, 0, "oops", "", b"", 1)


def test_reasons_literal_descriptions_and_schema_agree() -> None:
    schema_enum = load_schema("output/quarantine.schema.json")["properties"]["reason"]["enum"]
    assert set(get_args(Reason)) == set(REASONS) == set(schema_enum)
    assert all(desc and "\n" not in desc for desc in REASONS.values())
