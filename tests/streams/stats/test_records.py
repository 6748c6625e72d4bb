"""The freshness.stats contract: keys, one encoder and one decoder, the schema, and the
records the worker's join step really publishes (including its tombstones at expiry)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from streams import topics
from streams.core.model import FlowEvent
from streams.core.watermark import PartitionReport
from streams.flows.config import load_flows
from streams.pipeline import codec
from streams.pipeline.join import Joiner
from streams.schemas import load_schema
from streams.stats import records as stats
from streams.stats.records import GaugeRecord, StatsKey, WindowRecord, WindowStats

ROOT = Path(__file__).resolve().parents[3]
T0 = 1_780_000_000_020
LEAD, LEADS, POSTHOG = "lead_to_posthog", "funnel.lead.captured", "funnel.posthog.ingested"
VALIDATOR = jsonschema.Draft202012Validator(load_schema("output/stats.schema.json"))


def window(lags: list[float], **kw: Any) -> WindowRecord:
    win = WindowStats(lost=kw.pop("lost", 0))
    for v in lags:
        win.sketch.add(v)
        win.count += 1
        win.on_time += v <= 5_000
        win.clock_skew += v < 0
    win.late = win.count - win.on_time
    fields: dict[str, Any] = {"flow": LEAD, "partition": 3, "minute": T0 // 60_000}
    fields.update(kw)
    return WindowRecord(stats=win, updated_at=T0, **fields)


def gauge(**kw: Any) -> GaugeRecord:
    fields: dict[str, Any] = {
        "flow": "payment_to_posthog",
        "partition": 1,
        "pending": 12,
        "oldest_pending_started_at": T0 - 9_000,
        "open_breaches": 1,
        "monitor_lag_ms": 180,
        "watermark_ms": T0,
        "updated_at": T0 + 200,
    }
    fields.update(kw)
    return GaugeRecord(**fields)


RECORDS: list[stats.StatsRecord] = [
    window([6_400.0, -35.0, 100.0, 0.0, 99_999.5], lost=2),
    window([], partition=0),
    window([1.0] * 40, minute=0),
    gauge(),
    gauge(oldest_pending_started_at=None, watermark_ms=None, pending=0, open_breaches=0),
    gauge(monitor_lag_ms=-3),
]


@pytest.mark.parametrize("record", RECORDS)
def test_encode_decode_round_trip(record: stats.StatsRecord) -> None:
    raw = stats.encode(record)
    assert stats.decode(raw) == record
    assert stats.encode(stats.decode(raw)) == raw
    assert stats.from_json(stats.to_json(record)) == record


@pytest.mark.parametrize("record", RECORDS)
def test_every_encoded_record_meets_the_schema(record: stats.StatsRecord) -> None:
    VALIDATOR.validate(orjson.loads(stats.encode(record)))


def test_the_documented_examples_decode_and_encode_to_the_same_bytes() -> None:
    text = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    pattern = r"<!-- schema: output/stats.schema.json -->\n```json\n(.*?)\n```"
    examples = [orjson.loads(m) for m in re.findall(pattern, text, re.DOTALL)]
    assert [e["kind"] for e in examples] == ["window", "gauge"]
    for example in examples:
        raw = orjson.dumps(example)
        assert stats.encode(stats.decode(raw)) == raw


def test_keys_and_parsing_them_back() -> None:
    w, g = RECORDS[0], RECORDS[3]
    assert w.key == f"window:{LEAD}:3:{T0 // 60_000}"
    assert g.key == "gauge:payment_to_posthog:1"
    assert stats.parse_key(w.key) == StatsKey("window", LEAD, 3, T0 // 60_000)
    assert stats.parse_key(g.key) == StatsKey("gauge", "payment_to_posthog", 1)
    assert stats.record_kv(w) == (w.key.encode(), stats.encode(w))


@pytest.mark.parametrize(
    "key",
    ["", "window", "window:lead:3", "window:lead:x:5", "window::1:2", "gauge:lead", "gauge:a:-1",
     "gauge:a:1.5", "foo:lead:1", f"window:{LEAD}:3:٣"],
)  # fmt: skip
def test_parse_key_refuses_what_no_worker_writes(key: str) -> None:
    with pytest.raises(ValueError, match=r"not a freshness\.stats key"):
        stats.parse_key(key)


def _good() -> dict[str, Any]:
    return stats.to_json(RECORDS[0])


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (orjson.dumps({**_good(), "kind": "mystery"}), "neither 'window' nor 'gauge'"),
        (orjson.dumps({k: v for k, v in _good().items() if k != "partition"}), "'partition'"),
        (orjson.dumps({**_good(), "partition": -1}), ">= 0"),
        (orjson.dumps({**_good(), "minute": "5"}), "'minute' must be an integer"),
        (orjson.dumps({**_good(), "late": True}), "'late' must be an integer"),
        (orjson.dumps({**_good(), "flow": ""}), "'flow'"),
        (orjson.dumps({**_good(), "sketch": {"pos": {}}}), "'neg' is missing"),
        (orjson.dumps({**stats.to_json(RECORDS[3]), "pending": None}), "'pending'"),
    ],
)
def test_decode_says_what_is_wrong(value: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        stats.decode(value)
    assert str(info.value).startswith("not a freshness.stats record: ")


# ---- what the worker publishes ------------------------------------------------------------


def _tick(now: int) -> bytes:
    reports = [PartitionReport(t, p, now, 0, 0) for t in (POSTHOG, LEADS) for p in range(2)]
    return codec.encode_tick(now, reports, {POSTHOG: 2, LEADS: 2})


def _events(*pairs: tuple[str, int, int]) -> bytes:
    out = []
    for i, (key, start, lag) in enumerate(pairs):
        out.append(FlowEvent(LEAD, key, "start", f"s-{key}", start, LEADS, 0, i))
        out.append(FlowEvent(LEAD, key, "end", f"e-{key}", start + lag, POSTHOG, 0, i))
    return codec.encode_events(out)


def _stats_records(step_records: list[tuple[str, bytes, bytes | None]]) -> list[Any]:
    return [(k.decode(), v) for t, k, v in step_records if t == topics.STATS]


class Rows(dict[bytes, bytes]):
    """The join's table (``StateStore``): every row, whatever the partition."""

    def rows(self, partition: int) -> list[tuple[bytes, bytes]]:
        return list(self.items())


def test_the_join_step_publishes_records_the_decoder_reads_and_tombstones_at_expiry() -> None:
    j = Joiner(load_flows(None), events_topic="e", done_retention_ms=60_000, stats_interval_ms=1)
    table = Rows()
    j.on_message(0, 0, _events(("a", T0, 1_000), ("b", T0, 9_000), ("c", T0, -40)), table, T0)
    step = j.on_message(0, 1, _tick(T0 + 10_000), table, T0 + 10_000)
    published = _stats_records(step.records)
    windows = [stats.decode(v) for _, v in published if v and b'"window"' in v]
    (w,) = windows  # every completion fell in the minute of T0
    assert isinstance(w, WindowRecord)
    assert w.key == f"window:{LEAD}:0:{T0 // 60_000}"
    win = w.stats
    assert (win.count, win.on_time, win.late, win.lost, win.clock_skew) == (3, 2, 1, 0, 1)
    assert (win.sketch.min, win.sketch.max, w.updated_at) == (-40, 9_000, T0 + 10_000)
    for key, value in published:
        assert value is not None
        VALIDATOR.validate(orjson.loads(value))
        assert stats.decode(value).key == key
    later = T0 + (stats.RETENTION_MINUTES + 2) * 60_000
    expired = _stats_records(j.on_message(0, 2, _tick(later), table, later).records)
    tombstones = [stats.parse_key(k) for k, v in expired if v is None]
    assert tombstones == [StatsKey("window", LEAD, 0, w.minute)]
