"""The join step of the pipeline (no Faust, no broker): messages in, writes and records out,
state rebuilt from the table, corrupt internal messages quarantined, and the future-time
guard holding end to end through ingest and join."""

from __future__ import annotations

from collections.abc import Iterable

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import topics
from streams.core.model import Flow, FlowEvent
from streams.core.watermark import PartitionReport
from streams.errors import StateError
from streams.flows.config import load_flows
from streams.pipeline import codec
from streams.pipeline.decoder import Decoder
from streams.pipeline.ingest import Ingest
from streams.pipeline.join import Joiner, Step

FLOWS: tuple[Flow, ...] = tuple(load_flows(None))
EVENTS = "app-flow-events"
LEAD = "lead_to_posthog"
LEADS = "funnel.lead.captured"
POSTHOG = "funnel.posthog.ingested"
T0 = 1_780_000_000_000


class Table(dict[bytes, bytes]):
    """The durable table as the join sees it; writes applied as the worker applies them."""

    def apply(self, step: Step) -> None:
        for key, value in step.writes:
            if value is None:
                self.pop(key, None)
            else:
                self[key] = value

    def rows(self, partition: int) -> Iterable[tuple[bytes, bytes]]:
        return list(self.items())  # every partition's: the join keeps its own


def joiner() -> Joiner:
    return Joiner(FLOWS, events_topic=EVENTS, done_retention_ms=3_600_000, stats_interval_ms=10**9)


def start(key: str, at: int, offset: int = 0) -> FlowEvent:
    return FlowEvent(LEAD, key, "start", f"s-{key}", at, LEADS, 0, offset)


def tick(now: int, wm: int) -> bytes:
    reports = [PartitionReport(POSTHOG, p, wm, 0, 0) for p in range(2)]
    reports += [PartitionReport(LEADS, p, wm, 0, 0) for p in range(2)]
    return codec.encode_tick(now, reports, {POSTHOG: 2, LEADS: 2})


def breaches(step: Step) -> list[dict[str, object]]:
    return [orjson.loads(v) for t, _, v in step.records if t == topics.BREACHES and v]


def test_a_start_is_written_to_the_table_and_declared_overdue_by_a_tick() -> None:
    j, table = joiner(), Table()
    step = j.on_message(0, 0, codec.encode_events([start("a", T0)]), table, T0)
    table.apply(step)
    assert list(table) == [codec.entity_key(0, LEAD, "a")]
    assert step.records == []
    step = j.on_message(0, 1, tick(T0 + 6_000, T0 + 5_001), table, T0 + 6_000)
    (b,) = breaches(step)
    assert (b["breach_id"], b["kind"], b["status"]) == (f"{LEAD}:a", "overdue", "open")


def test_a_rebuilt_partition_resends_every_breach_it_holds() -> None:
    j, table = joiner(), Table()
    table.apply(j.on_message(0, 0, codec.encode_events([start("a", T0)]), table, T0))
    table.apply(j.on_message(0, 1, tick(T0 + 6_000, T0 + 5_001), table, T0 + 6_000))
    again = joiner()  # a restart, or the partition moved here
    step = again.on_message(0, 2, tick(T0 + 6_100, T0 + 5_100), table, T0 + 6_100)
    (b,) = breaches(step)
    assert (b["breach_id"], b["kind"]) == (f"{LEAD}:a", "overdue")


def test_a_corrupt_message_is_quarantined_and_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    j, table = joiner(), Table()
    step = j.on_message(3, 17, b'{"e": [["half"]]}', table, T0)
    assert step.writes == []
    ((topic, key, value),) = step.records
    assert (topic, key) == (topics.QUARANTINE, f"{EVENTS}:3:17".encode())
    assert value is not None
    rec = orjson.loads(value)
    assert (rec["topic"], rec["partition"], rec["offset"], rec["reason"]) == (
        EVENTS,
        3,
        17,
        "corrupt_internal",
    )
    assert "not a flow-events message" in caplog.text


def test_an_unreadable_state_row_stops_the_rebuild_with_a_clear_error() -> None:
    table = Table({codec.entity_key(0, LEAD, "a"): b"garbage"})
    with pytest.raises(StateError, match="cannot be read"):
        joiner().on_message(0, 0, tick(T0, T0), table, T0)
    table = Table({codec.entity_key(1, LEAD, "a"): b"garbage"})
    assert not breaches(joiner().on_message(0, 0, tick(T0, T0), table, T0))  # other partition


# ---- the future-time guard, end to end ----------------------------------------------


def lead_record(i: int, at: int) -> bytes:
    return orjson.dumps({"event_id": f"l{i}", "lead_id": f"L{i}", "occurred_at": at})


def posthog_record(i: int, at: int | str, eid: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "event_id": eid or f"p{i}",
            "source_id": f"L{i}",
            "source": "lead.captured",
            "occurred_at": at,
        }
    )


def run(records: list[tuple[str, int, int, bytes]], now: int) -> tuple[list[bytes], list[str]]:
    """Ingest then join ``(topic, partition, timestamp, value)`` records read at ``now``,
    tick once caught up; returns the output values sent and the quarantine reasons."""
    ingest, j, table = Ingest(Decoder(FLOWS), 4), joiner(), Table()
    parts = [(LEADS, 0), (POSTHOG, 0), (POSTHOG, 1)]
    for topic, partition in parts:
        ingest.clock.start_at(topic, partition, 0)  # assigned, read from the start (the reader)
    offsets: dict[tuple[str, int], int] = {}
    batch = []
    for topic, partition, ts, value in records:
        offset = offsets[(topic, partition)] = offsets.get((topic, partition), -1) + 1
        batch.append((topic, partition, offset, ts, value))
    res = ingest.process(batch, now)
    ingest.forwarded(res)
    out: list[bytes] = []
    for n, (partition, evs) in enumerate(sorted(res.batches.items())):
        step = j.on_message(partition, n, codec.encode_events(evs), table, now)
        table.apply(step)
        out += [v for t, _, v in step.records if v and t != topics.QUARANTINE]
    marks = [(t, p, offsets.get((t, p), -1) + 1, now) for t, p in parts]
    reports = ingest.reports(marks, now, grace_ms=200)
    msg = codec.encode_tick(now, reports, {LEADS: 1, POSTHOG: 2})
    for partition in range(4):
        out += [v for t, _, v in j.on_message(partition, 99, msg, table, now).records if v]
    reasons = [str(r["reason"]) for _, r in res.quarantine]
    return sorted(out), reasons


case = st.tuples(
    st.integers(0, 60_000),  # start, ms after T0
    st.one_of(st.none(), st.integers(0, 20_000)),  # lag; None: never completes
)
hostile = st.one_of(
    st.just("9999-12-31T23:59:59Z"),
    st.integers(T0 + 10 * 86_400_000, 253_402_300_799_000),
    st.integers(301_001, 10**9).map(lambda d: T0 + 90_000 + d),
)


@settings(max_examples=100, deadline=None)
@given(
    cases=st.lists(case, min_size=1, max_size=30),
    bad=st.lists(st.tuples(st.integers(0, 40), hostile), max_size=5),
)
def test_far_future_records_change_no_outcome(
    cases: list[tuple[int, int | None]], bad: list[tuple[int, int | str]]
) -> None:
    """Any number of completions dated beyond the allowance, for any key, anywhere in the
    stream: each is quarantined as future_time and every other outcome is what it is
    without them (no pending start declared lost, no watermark in the future)."""
    now = T0 + 90_000
    good: list[tuple[str, int, int, bytes]] = []
    for i, (at, lag) in enumerate(cases):
        good.append((LEADS, 0, T0 + at, lead_record(i, T0 + at)))
        if lag is not None and at + lag <= 89_000:
            good.append((POSTHOG, 0, T0 + at + lag, posthog_record(i, T0 + at + lag)))
    mixed = list(good)
    for n, (where, when) in enumerate(bad):  # for pending keys too; on their own partition
        hostile_record = (POSTHOG, 1, now, posthog_record(n, when, f"x{n}"))
        mixed.insert(min(where, len(mixed)), hostile_record)
    clean_out, clean_reasons = run(good, now)
    out, reasons = run(mixed, now)
    assert clean_reasons == []
    assert reasons == ["future_time"] * len(bad)
    assert out == clean_out
