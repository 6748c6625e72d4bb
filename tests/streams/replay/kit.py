"""Replays without a broker: input records with positions and Kafka timestamps, spans as
``offsets_for_time`` would find them, and the merge and engine driven as ``read_inputs``
drives them (any fetch interleaving)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from streams.core.model import Flow
from streams.flows.config import flow_topics, load_flows
from streams.pipeline.ingest import InputRecord
from streams.replay.engine import ReplayEngine, ReplayOptions, ReplayResult, Span
from streams.replay.merge import TimeMerge, TopicPartition
from streams.testing.records import valid_record

FLOWS: tuple[Flow, ...] = tuple(load_flows(None))
LEAD = FLOWS[0]
PARTITIONS = 2
T0 = 1_780_000_000_000


@dataclass
class Log:
    """Input topics with ``PARTITIONS`` partitions each; records get the next offset."""

    flows: Sequence[Flow] = FLOWS
    records: dict[TopicPartition, list[InputRecord]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for topic in flow_topics(self.flows):
            for p in range(PARTITIONS):
                self.records[(topic, p)] = []

    def add(self, topic: str, ts: int, value: bytes | None, partition: int = 0) -> InputRecord:
        part = self.records[(topic, partition)]
        rec = (topic, partition, len(part), ts, value)
        part.append(rec)
        return rec

    def start(self, flow: Flow, key: str, at: int, ts: int | None = None, **kw: int) -> InputRecord:
        value = orjson.dumps(valid_record(flow, "start", key, f"{key}-s", at))
        return self.add(flow.start_topic, at if ts is None else ts, value, **kw)

    def end(
        self, flow: Flow, key: str, at: int, ts: int | None = None, eid: str = ""
    ) -> InputRecord:
        value = orjson.dumps(valid_record(flow, "end", key, eid or f"{key}-c", at))
        return self.add(flow.end_topic, at if ts is None else ts, value)

    def spans(self, from_ms: int, to_ms: int, lookback_ms: int) -> dict[TopicPartition, Span]:
        """What ``plan_range`` finds: first offset at or after each time, else the end."""

        def first(records: list[InputRecord], at: int) -> int:
            return next((r[2] for r in records if r[3] >= at), len(records))

        out = {}
        for tp, recs in self.records.items():
            end = first(recs, to_ms)
            begin = min(first(recs, from_ms), end)
            out[tp] = Span(min(first(recs, from_ms - lookback_ms), begin), begin, end)
        return out


def replay(
    log: Log,
    from_ms: int,
    to_ms: int,
    *,
    lookback_ms: int = 3_600_000,
    options: ReplayOptions | None = None,
    seed: int | None = None,
) -> ReplayResult:
    """Replay ``log``; with ``seed``, partitions are fetched in random chunks and orders."""
    options = options or ReplayOptions()
    spans = log.spans(from_ms, to_ms, lookback_ms)
    engine = ReplayEngine(log.flows, spans, from_ms=from_ms, to_ms=to_ms, options=options)
    merge = TimeMerge(spans, options.tick_interval_ms)
    queues = {
        tp: list(recs[s.read_from : s.end]) for tp, s in spans.items() for recs in [log.records[tp]]
    }
    rng = random.Random(seed)
    for tp, q in queues.items():
        if not q:
            merge.close(tp)
    while any(queues.values()):
        tp = (
            rng.choice([tp for tp, q in queues.items() if q])
            if seed is not None
            else next(tp for tp, q in queues.items() if q)
        )
        n = rng.randint(1, 5) if seed is not None else len(queues[tp])
        merge.add(tp, queues[tp][:n])
        del queues[tp][:n]
        if not queues[tp]:
            merge.close(tp)
        for until, recs in merge.ready():
            engine.feed(until, recs)
    for until, recs in merge.ready():
        engine.feed(until, recs)
    assert merge.done()
    return engine.finish()
