"""Ingest: routing, quarantine, and the future-time guard that keeps one record dated 9999
from carrying a watermark (and every pending start) into the year 9999."""

from __future__ import annotations

import orjson
import pytest

from streams.core.model import Flow
from streams.flows.config import load_flows
from streams.pipeline.codec import route
from streams.pipeline.decoder import Decoder
from streams.pipeline.ingest import Ingest

FLOWS: tuple[Flow, ...] = tuple(load_flows(None))
LEADS = "funnel.lead.captured"
POSTHOG = "funnel.posthog.ingested"
NOW = 1_780_000_000_000
SKEW = 300_000


def lead(i: int, at: int) -> bytes:
    return orjson.dumps({"event_id": f"l{i}", "lead_id": f"L{i}", "occurred_at": at})


def ingested(i: int, at: int | str) -> bytes:
    return orjson.dumps(
        {"event_id": f"p{i}", "source_id": f"L{i}", "source": "lead.captured", "occurred_at": at}
    )


@pytest.fixture
def ingest() -> Ingest:
    return Ingest(Decoder(FLOWS), 8, max_future_skew_ms=SKEW)


def test_valid_records_are_routed_by_flow_and_key(ingest: Ingest) -> None:
    res = ingest.process([(LEADS, 0, 5, NOW, lead(1, NOW - 10))], NOW)
    (partition,) = res.batches
    assert partition == route("lead_to_posthog", "L1", 8)
    (ev,) = res.batches[partition]
    assert (ev.flow, ev.key, ev.side, ev.occurred_at, ev.offset) == (
        "lead_to_posthog",
        "L1",
        "start",
        NOW - 10,
        5,
    )
    assert res.quarantine == []
    assert res.read == [(LEADS, 0, 5, NOW - 10)]


def test_bad_records_are_quarantined_with_reason_and_still_counted_as_read(
    ingest: Ingest,
) -> None:
    res = ingest.process([(LEADS, 1, 7, NOW, b"{nope"), (LEADS, 1, 8, NOW, None)], NOW)
    assert [r["reason"] for _, r in res.quarantine] == ["not_json", "not_json"]
    assert [k for k, _ in res.quarantine] == [f"{LEADS}:1:7".encode(), f"{LEADS}:1:8".encode()]
    assert res.read == [(LEADS, 1, 7, None), (LEADS, 1, 8, None)]
    assert res.batches == {}


def test_a_time_up_to_the_allowance_is_judged_one_ms_more_is_quarantined(ingest: Ingest) -> None:
    ok = ingest.process([(POSTHOG, 0, 1, NOW, ingested(1, NOW + SKEW))], NOW)
    assert ok.quarantine == []
    assert sum(len(b) for b in ok.batches.values()) == 1
    bad = ingest.process([(POSTHOG, 0, 2, NOW, ingested(2, NOW + SKEW + 1))], NOW)
    assert bad.batches == {}
    ((key, rec),) = bad.quarantine
    assert key == f"{POSTHOG}:0:2".encode()
    assert rec["reason"] == "future_time"
    assert "FRESHNESS_MAX_FUTURE_SKEW_MS" in str(rec["detail"])
    assert bad.read == [(POSTHOG, 0, 2, None)]


def test_the_reference_is_the_record_timestamp_capped_by_the_read_time(ingest: Ingest) -> None:
    at = NOW + SKEW + 1_000
    # written 1 s later than now would allow it, but it is read now: the earlier time counts
    assert ingest.process([(LEADS, 0, 1, NOW + 1_000, lead(1, at))], NOW).quarantine
    # replayed a day later: the record's own timestamp still decides, the same way
    replay = ingest.process([(LEADS, 0, 1, NOW, lead(1, at))], NOW + 86_400_000)
    assert [r["reason"] for _, r in replay.quarantine] == ["future_time"]
    # no timestamp (-1): the read time is the reference
    assert not ingest.process([(LEADS, 0, 2, -1, lead(2, at))], NOW + 1_000).quarantine


def test_a_year_9999_record_does_not_move_the_watermark(ingest: Ingest) -> None:
    res = ingest.process(
        [
            (POSTHOG, 0, 0, NOW, ingested(1, NOW - 5_000)),
            (POSTHOG, 0, 1, NOW, ingested(2, "9999-12-31T23:59:59Z")),
        ],
        NOW,
    )
    ingest.forwarded(res)
    (report,) = ingest.reports([(POSTHOG, 0, 5, NOW)], NOW, grace_ms=200)  # not caught up
    assert report.watermark == NOW - 5_000
    (caught_up,) = ingest.reports([(POSTHOG, 0, 2, NOW)], NOW, grace_ms=200)
    assert caught_up.watermark == NOW - 200
