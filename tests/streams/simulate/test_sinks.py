"""The simulator's paths to the monitor: routing per record, the truth following the event
time the PostHog path reports, and the PostHog sink with the real SDK against the local
capture endpoint (its bridge delivering in memory)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

import orjson

from streams import topics
from streams.connectors.monitor import Record
from streams.connectors.posthog import PostHogBridge
from streams.core.timeparse import parse_event_time
from streams.simulate.scheduler import Position, Scheduler
from streams.simulate.sinks import PostHogSink, Sinks, _Observed
from streams.simulate.traffic import Planned
from streams.simulate.truth import TruthWriter, read_truth
from streams.testing.peers.posthog import PostHogCapture
from tests.streams.simulate.test_scheduler import T0, FakeClock, FakeSink, planner

SDK_DELAY_MS = 700
OTHER_END_TOPICS = (topics.DLQ_RETRY_ATTEMPTED, topics.NOTIFICATION_ACKNOWLEDGED)


class SlowPostHog(FakeSink):
    """Acknowledges PostHog completions as answered ``SDK_DELAY_MS`` after they were sent."""

    async def send(self, topic: str, key: bytes, value: bytes | None) -> Awaitable[Position]:
        await super().send(topic, key, value)  # keeps what was sent, and when
        fut: asyncio.Future[Position] = asyncio.get_running_loop().create_future()
        fut.set_result(Position(topic, -1, -1, occurred_at=self.clock.now + SDK_DELAY_MS))
        return fut


def planned(topic: str, role: str) -> Planned:
    return Planned(0, 0, topic, b"k", b"{}", role)


def test_only_completions_take_the_other_paths() -> None:
    kafka, posthog, receiver = object(), object(), object()
    sinks = Sinks(kafka, posthog, receiver, topics.NOTIFICATION_ACKNOWLEDGED)  # type: ignore[arg-type]
    assert sinks.route(planned(topics.POSTHOG_INGESTED, "end")) is posthog
    assert sinks.route(planned(topics.POSTHOG_INGESTED, "dup_end")) is posthog
    assert sinks.route(planned(topics.POSTHOG_INGESTED, "malformed")) is kafka
    assert sinks.route(planned(topics.NOTIFICATION_ACKNOWLEDGED, "end")) is receiver
    assert sinks.route(planned(topics.NOTIFICATION_ACKNOWLEDGED, "malformed")) is kafka
    assert sinks.route(planned(topics.DLQ_RETRY_ATTEMPTED, "end")) is kafka
    assert sinks.route(planned(topics.LEAD_CAPTURED, "start")) is kafka
    assert Sinks(kafka).route(planned(topics.POSTHOG_INGESTED, "end")) is kafka


async def test_the_truth_lag_is_the_one_the_path_reports(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    kafka, slow = FakeSink(clock), SlowPostHog(clock)
    sinks = Sinks(kafka, slow)  # type: ignore[arg-type]
    writer = TruthWriter(tmp_path / "truth.jsonl")
    writer.header({"run_id": "s1", "key_prefix": "sim-s1-", "flows": [], "started_at": T0})
    scheduler = Scheduler(planner(T0 + 20_000), sinks, clock, writer, route=sinks.route)
    await scheduler.run(asyncio.Event())
    writer.close()
    answered: dict[str, int] = {}
    for sent in slow.sent:
        answered.setdefault(sent.key.decode(), sent.at + SDK_DELAY_MS)  # the first copy
    truth = read_truth(tmp_path / "truth.jsonl")
    completed = [s for s in truth.starts if s.lag_ms is not None]
    posthog = [s for s in completed if s.flow.endswith("_posthog")]
    assert {s.outcome for s in posthog} == {"on_time", "late"}
    for s in posthog:
        assert s.lag_ms == answered[s.key] - s.started_at
        target = 5_000 if s.flow == "lead_to_posthog" else 10_000
        assert s.outcome == ("on_time" if s.lag_ms <= target else "late")
    ends = {x.key.decode(): x for x in kafka.sent if x.topic in OTHER_END_TOPICS}
    others = [s for s in completed if not s.flow.endswith("_posthog")]
    assert others
    for s in others:
        end = orjson.loads(ends[s.key].value or b"{}")
        assert s.lag_ms == parse_event_time(end["occurred_at"]) - s.started_at  # as planned


async def test_the_posthog_sink_acknowledges_with_the_moment_posthog_answered() -> None:
    async with PostHogCapture() as capture:
        sink = PostHogSink.__new__(PostHogSink)
        delivered: list[list[Record]] = []

        class Memory:
            def deliver(self, topic: str, records: Sequence[Record]) -> None:
                delivered.append(list(records))

            def close(self) -> None:
                return None

        _init_with(sink, capture.url, Memory())
        await sink.start()
        value = orjson.dumps(
            {"event_id": "sim-x-1-c", "source": "lead.captured", "source_id": "sim-x-1"}
        )
        futures = [await sink.send(topics.POSTHOG_INGESTED, b"sim-x-1", value) for _ in range(2)]
        await sink.flush()
        positions = [await f for f in futures]
        (batch,) = capture.accepted()
        assert len(batch.events) == 2
        assert len(set(batch.uuids)) == 1  # the duplicate copy is the same PostHog event
        for pos in positions:
            assert pos.occurred_at is not None
            assert 0 <= pos.occurred_at - batch.answered_at <= 50
        values = [orjson.loads(v) for records in delivered for _, v in records]
        assert {v["event_id"] for v in values} == {f"posthog-accepted-{batch.uuids[0]}"}
        await sink.stop()


def _init_with(sink: PostHogSink, host: str, delivery: Any) -> None:
    """A PostHogSink whose bridge delivers to ``delivery`` instead of Kafka."""
    from posthog import Posthog

    sink._loop = None
    sink._pending = {}
    sink.bridge = PostHogBridge(_Observed(delivery, sink._delivered))
    client = Posthog("phc_sim_test", host=host, flush_interval=0.05, on_error=sink._refused)
    sink.client = sink.bridge.instrument(client)
