"""Finding one entity's records in Kafka, for ``freshness explain`` and the API's explain.

* :func:`find_outputs`: every version of its breach record (tombstones too) and every
  measurement of it written in a time window, with their Kafka timestamps;
* :func:`read_inputs_at`: the input records at the positions the monitor recorded
  (``start_source``, ``end_source``), one fetch each;
* :func:`scan_inputs`: every record of the flow's two input topics in a time window that
  decodes to an event of the entity (duplicates and later completions too).

Input records are decoded by the worker's :class:`~streams.pipeline.decoder.Decoder`; a
record the worker refuses keeps its quarantine reason (``InputSeen.problem``), including the
future-time guard of :mod:`streams.pipeline.ingest` against the record's Kafka timestamp.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from streams import topics
from streams.core.clock import now_ms
from streams.core.model import Flow
from streams.errors import InputError
from streams.kafka import new_consumer
from streams.pipeline.decoder import Decoder
from streams.replay import live
from streams.replay.explain import InputSeen, OutputSeen, names_entity
from streams.replay.source import CONSUMER_OPTIONS, RangeReader, start_consumer
from streams.settings import Settings

Position = tuple[str, int, int]


async def find_outputs(
    consumer: Any,
    breach_id: str,
    since_ms: int,
    until_ms: int | None,
    progress: Callable[[int], None] = lambda n: None,
) -> tuple[list[OutputSeen], list[OutputSeen]]:
    """(breach versions, measurements) of ``breach_id`` (``flow:key``), each in log order."""
    ranges = await live.output_ranges(consumer, live.LIVE_TOPICS, since_ms, until_ms)
    records, _ = await live.read_outputs(consumer, ranges, breach_id.__eq__, progress)
    records.sort(key=lambda r: (r.partition, r.offset))
    seen = [OutputSeen(r.topic, r.partition, r.offset, r.timestamp, r.value) for r in records]
    return (
        [r for r in seen if r.topic == topics.BREACHES],
        [r for r in seen if r.topic == topics.MEASUREMENTS],
    )


async def find_pages(
    consumer: Any,
    flow: Flow,
    key: str,
    since_ms: int,
    until_ms: int | None,
    progress: Callable[[int], None] = lambda n: None,
) -> list[OutputSeen]:
    """The ``freshness.alerts`` states of ``flow`` written in the window that name ``key``
    (none when the topic does not exist: no alerter was ever deployed)."""
    prefix = "/" + flow.name + "/"
    ranges = await live.output_ranges(consumer, (topics.ALERTS,), since_ms, until_ms)
    records, _ = await live.read_outputs(consumer, ranges, lambda k: prefix in k, progress)
    records.sort(key=lambda r: (r.partition, r.offset))
    return [
        OutputSeen(r.topic, r.partition, r.offset, r.timestamp, r.value)
        for r in records
        if names_entity(r.value, flow.name, key)
    ]


def positions_in(records: Iterable[OutputSeen]) -> list[Position]:
    """Every input position the output records name, in order of appearance, once each."""
    out: dict[Position, None] = {}
    for rec in records:
        for name in ("start_source", "end_source"):
            src = None if rec.value is None else rec.value.get(name)
            if isinstance(src, dict):
                out[(str(src["topic"]), int(src["partition"]), int(src["offset"]))] = None
    return list(out)


class EntityDecoder:
    """Input records to :class:`InputSeen` for one entity, as the worker would see them."""

    def __init__(self, flows: Sequence[Flow], flow: Flow, key: str, max_future_skew_ms: int):
        self.decoder = Decoder(flows)
        self.flow, self.key = flow, key
        self.max_future_skew_ms = max_future_skew_ms

    def seen(
        self, topic: str, partition: int, offset: int, ts: int, raw: bytes | None
    ) -> InputSeen:
        """The record; ``side`` None when it is no event of this entity (``problem`` says
        why when the worker refuses it)."""
        try:
            events = self.decoder.decode(topic, partition, offset, raw)
        except InputError as exc:
            return InputSeen(topic, partition, offset, ts, raw, problem=str(exc))
        ev = next((e for e in events if e.flow == self.flow.name and e.key == self.key), None)
        if ev is None:
            return InputSeen(topic, partition, offset, ts, raw)
        problem = None
        if ts >= 0 and ev.occurred_at > ts + self.max_future_skew_ms:
            problem = f"future_time: occurred_at is {ev.occurred_at - ts} ms after it was written"
        return InputSeen(
            topic, partition, offset, ts, raw, ev.side, ev.event_id, ev.occurred_at, problem
        )


async def read_inputs_at(
    consumer: Any, positions: Iterable[Position], decode: EntityDecoder
) -> list[InputSeen]:
    """The records at ``positions`` (those that no longer exist are left out)."""
    out: list[InputSeen] = []
    for topic, partition, offset in positions:

        def batch(tp: tuple[str, int], msgs: Sequence[Any]) -> None:
            out.extend(decode.seen(tp[0], tp[1], m.offset, m.timestamp, m.value) for m in msgs)

        ranges = {(topic, partition): (offset, offset + 1)}
        await RangeReader(consumer, ranges, what="explain's input reader", stall_s=10).run(batch)
    return out


async def scan_inputs(
    consumer: Any,
    decode: EntityDecoder,
    since_ms: int,
    until_ms: int | None,
    progress: Callable[[int], None] = lambda n: None,
) -> list[InputSeen]:
    """Every record of the flow's input topics in the window that is an event of the entity."""
    flow = decode.flow
    names = sorted({flow.start_topic, flow.end_topic})
    ranges = await live.output_ranges(consumer, names, since_ms, until_ms)
    needle = _needle(decode.key)
    out: list[InputSeen] = []

    def batch(tp: tuple[str, int], msgs: Sequence[Any]) -> None:
        for m in msgs:
            if needle is not None and (m.value is None or needle not in m.value):
                continue
            rec = decode.seen(tp[0], tp[1], m.offset, m.timestamp, m.value)
            if rec.side is not None:
                out.append(rec)
        progress(len(msgs))

    await RangeReader(consumer, ranges, what="explain's input scan").run(batch)
    out.sort(key=lambda r: (r.timestamp, r.topic, r.partition, r.offset))
    return out


def _needle(key: str) -> bytes | None:
    """Bytes every record of ``key`` contains, to skip the others undecoded; None when a
    producer might have escaped the key differently (then every record is decoded)."""
    if key.isascii() and key.isprintable() and '"' not in key and "\\" not in key:
        return orjson.dumps(key)
    return None


class EntityRecords:
    """One entity's records from Kafka for the API's explain (one consumer per call)."""

    def __init__(self, settings: Settings, flows: Sequence[Flow]) -> None:
        self.settings = settings
        self.flows = tuple(flows)

    async def records(
        self, flow: Flow, key: str, known: list[OutputSeen], window_ms: int
    ) -> tuple[list[InputSeen], list[OutputSeen], list[OutputSeen]]:
        """(inputs, breach versions, measurements): the input records at the positions
        ``known`` names, and the entity's output records written from the first of them
        to ``window_ms`` after the last (or after the deadline); ``known`` is kept where
        Kafka no longer has them."""
        decode = EntityDecoder(self.flows, flow, key, self.settings.max_future_skew_ms)
        consumer = new_consumer(self.settings, **CONSUMER_OPTIONS)
        try:
            await start_consumer(consumer, self.settings)
            inputs = await read_inputs_at(consumer, positions_in(known), decode)
            since, until = _window(flow, known, inputs, window_ms)
            ident = f"{flow.name}:{key}"
            breaches, measurements = await find_outputs(consumer, ident, since, until)
        finally:
            await consumer.stop()
        if not breaches and not measurements:
            breaches = [o for o in known if o.topic == topics.BREACHES]
            measurements = [o for o in known if o.topic == topics.MEASUREMENTS]
        return inputs, breaches, measurements


def _window(
    flow: Flow, known: Sequence[OutputSeen], inputs: Sequence[InputSeen], window_ms: int
) -> tuple[int, int | None]:
    started = [int(o.value["started_at"]) for o in known if o.value is not None]
    stamps = [r.timestamp for r in inputs if r.timestamp >= 0]
    since = min(stamps or started or [0]) - 1_000
    due = max(started, default=since) + flow.target_ms
    until = max([*stamps, due]) + window_ms
    return since, None if until >= now_ms() else until
