"""A burst of 10,000 poison records mixed into live traffic, on the real broker with a real
worker: every poison record gets exactly one quarantine record with the reason it was built
for (matched by source topic, partition and offset), every valid record's outcome equals the
scripted scenario's, the worker neither crashes nor stalls, and the ingest group's committed
offsets reach the end of every input partition.

The poison covers what a hostile or broken producer sends: bytes that are not JSON, invalid
UTF-8, nesting past orjson's depth limit, ``NaN``, a number too big for a double, a key
named twice, a key of 257 characters, keys of the wrong type, ``null`` or empty, a missing
or unreadable time, tombstones and empty values, a wrong ``event_id``, the 1 MiB + 1 byte
record (which the broker must accept, so the worker can quarantine it) and completions dated
9999-12-31 on every partition of ``funnel.posthog.ingested`` (quarantined as
``future_time``; had one moved that topic's watermark, every pending start would be lost and
the exact breach comparison would fail). Valid records that lie are there too: a key of
exactly 256 characters and a flood of 1,000 starts of one key, each measured once.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from streams import topics
from streams.core.model import Flow
from streams.core.paths import set_path
from streams.flows.config import load_flows
from streams.kafka import KafkaConnection, new_admin, new_consumer, partition_list
from streams.pipeline.decoder import MAX_KEY_CHARS
from streams.pipeline.quarantine import MAX_RECORD_BYTES, RAW_CAP_BYTES
from streams.simulate.scenario import Expectation, scripted
from streams.testing.records import valid_record
from tests.faults.figures import Row, record
from tests.integration.conftest import (  # noqa: F401 (the fixtures this test uses)
    default_app_id,
    funnel_topics,
    own_broker,
    prefix,
    produce_fixture,
    reader,
    workers,
)
from tests.integration.test_worker import measurement_lags, settle_and_check

pytestmark = pytest.mark.integration

FLOWS: tuple[Flow, ...] = tuple(load_flows(None))
POISON = 10_000
CHUNKS = 10
"""The mixed records are produced in this many batches while the worker runs."""
FAR_FUTURE = "9999-12-31T23:59:59Z"
FUTURE_KEYS = 128
"""Completions dated 9999, one per key: 128 random keys miss one of 8 partitions with a
probability of 3e-7 (the test checks that they did not)."""
Poison = tuple[str, bytes, bytes | None, str]
"""topic, Kafka key, value, the reason it must get."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def poison_kinds(flow: Flow, side: str, at: int, i: int) -> Iterator[tuple[bytes | None, str]]:
    """Each way this test breaks a record of ``flow``'s ``side``, with the reason it must get."""
    key_path = flow.start_key if side == "start" else flow.end_key
    time_path = flow.start_time if side == "start" else flow.end_time

    def broken(path: tuple[str, ...], value: object) -> bytes:
        rec = valid_record(flow, side, f"poison-{i}", f"poison-{i}", at)
        set_path(rec, path, value)
        return orjson.dumps(rec)

    good = orjson.dumps(valid_record(flow, side, f"poison-{i}", f"poison-{i}", at))
    repeated = orjson.dumps({key_path[0]: 4711})[:-1] + b"," + good[1:]
    yield b"\x00" + random.Random(i).randbytes(24), "not_json"
    yield good[:-1] + b',"x":"\xff\xfe"}', "not_json"
    yield good[:-1] + b',"x":' + b"[" * 1025 + b"]" * 1025 + b"}", "not_json"
    yield good.replace(str(at).encode(), b"NaN"), "not_json"
    yield good.replace(str(at).encode(), b"9" * 400), "not_json"
    yield b"", "not_json"
    yield None, "not_json"
    yield b"[1,2,3]", "not_object"
    yield repeated, "schema_violation"
    yield broken(key_path, "K" * (MAX_KEY_CHARS + 1)), "schema_violation"
    yield broken(("event_id",), 42), "schema_violation"
    yield broken(key_path, 4711), "missing_key"
    yield broken(key_path, None), "missing_key"
    yield broken(key_path, ""), "missing_key"
    yield broken(time_path, None), "missing_time"
    yield broken(time_path, "yesterday at noon"), "unparsable_time"
    yield broken(time_path, FAR_FUTURE), "future_time"


def poison_burst(stem: str, at: int) -> list[Poison]:
    """``POISON`` records over every input topic, all kinds in turn; then the 1 MiB + 1
    byte record and ``FUTURE_KEYS`` completions dated 9999 (every partition of their topic)."""
    sides = [(f, s) for f in FLOWS for s in ("start", "end")]
    out: list[Poison] = []
    i = 0
    while len(out) < POISON - FUTURE_KEYS - 1:
        flow, side = sides[i % len(sides)]
        topic = flow.start_topic if side == "start" else flow.end_topic
        for raw, reason in poison_kinds(flow, side, at, i):
            out.append((topic, f"{stem}-poison-{len(out)}".encode(), raw, reason))
        i += 1
    out = out[: POISON - FUTURE_KEYS - 1]
    lead = FLOWS[0]
    huge = orjson.dumps(valid_record(lead, "start", f"{stem}-huge", "huge", at, pad=""))
    huge = huge[:-2] + b"x" * (MAX_RECORD_BYTES + 1 - len(huge)) + b'"}'
    assert len(huge) == MAX_RECORD_BYTES + 1
    out.append((lead.start_topic, f"{stem}-huge".encode(), huge, "too_large"))
    ingested = next(f for f in FLOWS if f.end_topic == topics.POSTHOG_INGESTED)
    for n in range(FUTURE_KEYS):
        rec = valid_record(ingested, "end", f"{stem}-future-{n}", f"future-{n}", FAR_FUTURE)
        out.append(
            (ingested.end_topic, f"{stem}-future-{n}".encode(), orjson.dumps(rec), "future_time")
        )
    return out


def lying_but_valid(stem: str, at: int) -> tuple[list[tuple[str, bytes, bytes]], dict[str, int]]:
    """A key of exactly 256 characters and 1,000 starts of one key, each completed 1 s after
    its first start: records, and the measurement lag each identity must get."""
    flow = FLOWS[0]
    records = []
    long_key = (stem + "-" + "K" * MAX_KEY_CHARS)[:MAX_KEY_CHARS]
    flood_key = f"{stem}-flood"
    for tag, key, starts in (("long", long_key, 1), ("flood", flood_key, 1_000)):
        for n in range(starts):
            rec = valid_record(flow, "start", key, f"{stem}-{tag}-s{n}", at + n)
            records.append((flow.start_topic, key.encode(), orjson.dumps(rec)))
        done = valid_record(flow, "end", key, f"{stem}-{tag}-e", at + 1_000)
        records.append((flow.end_topic, key.encode(), orjson.dumps(done)))
    return records, {f"{flow.name}:{long_key}": 1_000, f"{flow.name}:{flood_key}": 1_000}


def mixed(valid: list[Any], poison: list[Poison]) -> list[tuple[str, bytes, bytes | None]]:
    """Poison spread evenly between the valid records, which keep their order."""
    out: list[tuple[str, bytes, bytes | None]] = []
    step = len(poison) / max(len(valid), 1)
    taken = 0
    for n, rec in enumerate(valid):
        upto = int((n + 1) * step)
        out.extend(p[:3] for p in poison[taken:upto])
        taken = upto
        out.append(rec)
    out.extend(p[:3] for p in poison[taken:])
    return out


async def lagging_partitions(bootstrap: str, group: str, inputs: list[str]) -> dict[Any, Any]:
    """Input partitions whose committed offset in ``group`` is not their end offset."""
    consumer = new_consumer(KafkaConnection(bootstrap), enable_auto_commit=False)
    admin = new_admin(KafkaConnection(bootstrap))
    await consumer.start()
    await admin.start()
    try:
        parts = {t: consumer.partitions_for_topic(t) or set() for t in inputs}
        tps = partition_list(parts)
        ends = await consumer.end_offsets(tps)
        committed = await admin.list_consumer_group_offsets(group)
        return {
            (tp.topic, tp.partition): (getattr(committed.get(tp), "offset", None), end)
            for tp, end in ends.items()
            if getattr(committed.get(tp), "offset", None) != end
        }
    finally:
        await admin.close()
        await consumer.stop()


async def wait_for_no_lag(bootstrap: str, group: str, inputs: list[str]) -> dict[Any, Any]:
    deadline = time.monotonic() + 60
    lagging = await lagging_partitions(bootstrap, group, inputs)
    while lagging and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        lagging = await lagging_partitions(bootstrap, group, inputs)
    return lagging


async def test_a_poison_burst_in_live_traffic_is_quarantined_exactly_once(
    workers: Callable[..., Any],  # noqa: F811 (the fixture imported above)
    reader: Any,  # noqa: F811
    produce: Any,
    funnel_topics: str,  # noqa: F811
    prefix: str,  # noqa: F811
) -> None:
    worker = workers()
    now = now_ms()
    sc = scripted(FLOWS, 2_000, now=now, prefix=prefix)
    extra, extra_lags = lying_but_valid(prefix, now - 60_000)
    for ident, lag in extra_lags.items():
        flow, key = ident.split(":", 1)
        sc.expected[ident] = Expectation(flow, key, "on_time", "on_time", lag, now - 60_000)
    poison = poison_burst(prefix, now - 60_000)
    records = mixed([*sc.records, *extra], poison)
    where: list[tuple[str, int, int]] = []
    size = len(records) // CHUNKS + 1
    for start in range(0, len(records), size):  # live: the worker reads while we produce
        where += await produce(funnel_topics, records[start : start + size])
        await reader.poll(0.2)
    reason_of = {key: (raw, reason) for _, key, raw, reason in poison}
    wanted = {
        w: reason_of[k] for (_, k, _), w in zip(records, where, strict=True) if k in reason_of
    }
    assert len(wanted) == POISON
    future = {w[1] for w, (raw, _) in wanted.items() if raw and FAR_FUTURE.encode() in raw}
    assert len(future) == 8, "a 9999 record on every partition of funnel.posthog.ingested"
    scenario_bad = {
        w
        for (_, k, _), w in zip(records, where, strict=True)
        if k.startswith(f"{prefix}-bad-".encode())
    }

    def all_quarantined(r: Any) -> bool:
        return {position(q) for q in r.of(topics.QUARANTINE)} >= set(wanted)

    assert await reader.until(all_quarantined, timeout_s=120), "poison not all quarantined"
    await same_measurements(reader, sc.measurements())
    await settle_and_check(reader, sc)  # exact: a watermark carried to 9999 would add lost
    assert worker.proc.poll() is None, worker.tail()
    assert "Traceback" not in worker.log_path.read_text(errors="replace"), worker.tail()

    quarantine = reader.of(topics.QUARANTINE)
    counts = Counter(position(q) for q in quarantine)
    by_position = {position(q): q for q in quarantine}
    twice = [w for w, n in counts.items() if n > 1]
    wrong = [
        (w, by_position[w]["reason"], why)
        for w, (_, why) in wanted.items()
        if by_position[w]["reason"] != why
    ]
    assert (twice[:5], wrong[:5]) == ([], [])
    for w, (raw, _) in wanted.items():
        q = by_position[w]
        kept = b"" if q["raw_b64"] is None else base64.b64decode(str(q["raw_b64"]))
        assert (kept, q["raw_size"]) == ((raw or b"")[:RAW_CAP_BYTES], len(raw or b""))
    unexpected = set(counts) - set(wanted) - scenario_bad
    assert unexpected == set(), [by_position[u] for u in list(unexpected)[:3]]

    inputs = sorted({t for t, _, _ in records})
    lagging = await wait_for_no_lag(funnel_topics, f"{default_app_id(prefix)}-ingest", inputs)
    assert lagging == {}, f"committed offsets behind the end: {lagging}"
    assert worker.proc.poll() is None, worker.tail()
    record(
        Row(
            fault="poison burst in live traffic",
            injected=1,
            outcomes_checked=len(sc.expected) + len(wanted),
            outcomes_lost=len(wrong),
            poison_tried=len(wanted),
            stalls=len(lagging),
            detail=f"{len(records):,} records; 1 MiB + 1 byte and 9999-12-31 quarantined",
            test="tests/faults/test_poison.py",
        )
    )


async def same_measurements(out: Any, want: dict[str, int]) -> None:
    """Until every expected measurement is there with its lag; name the ones that are not."""
    if await out.until(lambda r: measurement_lags(r) == want, timeout_s=120):
        return
    got = measurement_lags(out)
    missing = {i: want[i] for i in sorted(set(want) - set(got))[:5]}
    wrong = [(i, got[i], want[i]) for i in sorted(set(want) & set(got)) if got[i] != want[i]]
    extra = sorted(set(got) - set(want))[:5]
    pytest.fail(f"measurements: missing {missing}, wrong {wrong[:5]}, extra {extra}")


def position(q: dict[str, Any]) -> tuple[str, int, int]:
    return (str(q["topic"]), int(q["partition"]), int(q["offset"]))
