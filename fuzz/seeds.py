"""The fuzz target's input format and its seed corpus (``python fuzz/seeds.py DIR``).

One fuzz input is one Kafka record: :func:`encode` puts the topic's index in the first
byte and the value after it; :func:`record_of` reads it back (see ``fuzz/decoder.py``).

The seeds are generated rather than committed so they follow the schemas and the flows:
a valid record of every input topic (epoch-ms and RFC 3339 times, far past, near the
future-time allowance, a key of 256 characters), then each of them with every field
path broken (absent, null, empty, each wrong JSON type, too long, repeated), and the
classic poison: random bytes, invalid UTF-8, deep nesting, huge numbers, ``NaN``,
non-objects, a tombstone and the 1 MiB + 1 byte record.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson

from streams.core.model import Flow
from streams.core.paths import set_path
from streams.core.timeparse import MAX_EPOCH_MS, format_event_time
from streams.flows import load_flows
from streams.pipeline.decoder import MAX_KEY_CHARS, Decoder
from streams.pipeline.quarantine import MAX_RECORD_BYTES
from streams.testing.records import valid_record

NOW = 1_780_000_000_000
"""The wall clock (and Kafka timestamp) the target reads every record at."""
SKEW = 300_000
UNKNOWN_TOPIC = "funnel.not.configured"
OVERSIZE = 0xFF
"""A first byte that makes the value ``MAX_RECORD_BYTES + 1`` bytes (the rest, repeated),
on ``funnel.lead.captured``: the 1 MiB + 1 byte record without 1 MiB inputs."""
FLOWS: tuple[Flow, ...] = tuple(load_flows(None))
TOPICS = (*Decoder(FLOWS).topics, UNKNOWN_TOPIC)
OVERSIZE_TOPIC = "funnel.lead.captured"
WRONG = [None, 0, -1, 1.5, True, "", [], {}, [1], {"a": 1}, "x" * (MAX_KEY_CHARS + 1)]


def encode(topic: str, raw: bytes | None) -> bytes:
    """The fuzz input of one record (``None``: a tombstone)."""
    head = bytes([TOPICS.index(topic)])
    return head if raw is None else head + raw


def record_of(data: bytes) -> tuple[str, bytes | None]:
    """The (topic, value) of one fuzz input; ``None`` is a tombstone."""
    if len(data) <= 1:
        return TOPICS[data[0] % len(TOPICS) if data else 0], None
    head, raw = data[0], data[1:]
    if head == OVERSIZE:
        return OVERSIZE_TOPIC, (raw * (MAX_RECORD_BYTES // len(raw) + 2))[: MAX_RECORD_BYTES + 1]
    return TOPICS[head % len(TOPICS)], raw


def seeds() -> Iterator[tuple[str, bytes]]:
    """(name, fuzz input) of every seed."""
    for flow in FLOWS:
        for side in ("start", "end"):
            yield from _valid_and_broken(flow, side)
    lead = "funnel.lead.captured"
    rng = random.Random(13)
    for i in range(8):
        yield f"random-{i}", encode(lead, rng.randbytes(rng.randint(1, 64)))
    for name, raw in _poison():
        yield name, encode(lead, raw)
    yield "tombstone", encode(lead, None)
    yield "unknown-topic", encode(UNKNOWN_TOPIC, b'{"event_id":"e"}')
    yield "oversize", bytes([OVERSIZE]) + b'{"event_id":"e","lead_id":"L","occurred_at":0} '


def _valid_and_broken(flow: Flow, side: str) -> Iterator[tuple[str, bytes]]:
    topic = flow.start_topic if side == "start" else flow.end_topic
    times: list[int | str] = [NOW - 1000, format_event_time(NOW - 1000), 0, NOW + SKEW - 1]
    times += [format_event_time(NOW + SKEW + 1), "9999-12-31T23:59:59Z", MAX_EPOCH_MS]
    stem = f"{flow.name}-{side}"
    for i, at in enumerate(times):
        rec = valid_record(flow, side, "K" * MAX_KEY_CHARS if i == 1 else "K-1", f"e-{i}", at)
        yield f"{stem}-time-{i}", encode(topic, orjson.dumps(rec))
    base = valid_record(flow, side, "K-1", "e-1", NOW - 1000)
    for path in _paths(base):
        name = f"{stem}-{'.'.join(path)}"
        for j, wrong in enumerate(WRONG):
            rec = valid_record(flow, side, "K-1", "e-1", NOW - 1000)
            set_path(rec, path, wrong)
            yield f"{name}-wrong-{j}", encode(topic, orjson.dumps(rec))
        rec = valid_record(flow, side, "K-1", "e-1", NOW - 1000)
        _drop(rec, path)
        yield f"{name}-absent", encode(topic, orjson.dumps(rec))
        first = orjson.dumps({path[0]: None})[:-1]
        yield f"{name}-repeated", encode(topic, first + b"," + orjson.dumps(base)[1:])


def _paths(rec: dict[str, object], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, value in rec.items():
        yield (*prefix, name)
        if isinstance(value, dict):
            yield from _paths(value, (*prefix, name))


def _drop(rec: dict[str, object], path: tuple[str, ...]) -> None:
    node: object = rec
    for name in path[:-1]:
        node = node[name] if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


def _poison() -> Iterator[tuple[str, bytes]]:
    ok = b'"event_id":"e","lead_id":"L","occurred_at":0'
    yield "invalid-utf8", b'{"event_id":"e","lead_id":"L\xff\xfe","occurred_at":0}'
    yield "lone-surrogate", b'{"event_id":"e","lead_id":"\\ud800","occurred_at":0}'
    yield "deep-1024", b"{" + ok + b',"x":' + b"[" * 1023 + b"]" * 1023 + b"}"
    yield "deep-1025", b"{" + ok + b',"x":' + b"[" * 1025 + b"]" * 1025 + b"}"
    yield "deep-repeat", b"{" + ok + b',"x":' + b"[" * 990 + b'{"a":1,"a":2}' + b"]" * 990 + b"}"
    yield "huge-int", b'{"event_id":"e","lead_id":"L","occurred_at":' + b"9" * 5000 + b"}"
    yield "u64-overflow", b'{"event_id":"e","lead_id":"L","occurred_at":18446744073709551616}'
    yield "huge-float", b'{"event_id":"e","lead_id":"L","occurred_at":1e400}'
    yield "float-time", b'{"event_id":"e","lead_id":"L","occurred_at":1.5e12}'
    yield "nan", b'{"event_id":"e","lead_id":"L","occurred_at":NaN}'
    yield "infinity", b'{"event_id":"e","lead_id":"L","occurred_at":Infinity}'
    yield "repeat-escaped", b"{" + ok + b',"x":{"a":"\\u003a","a":"\\u003a"}}'
    yield "repeat-empty-key", b"{" + ok + b',"":null,"":1}'
    yield "repeat-commas", b"{" + ok + b',"a":"x,y","a":"x:y"}'
    yield "null-key", b'{null:1,"event_id":"e"}'
    yield "empty-object", b"{}"
    yield "empty-string", b'""'
    yield "whitespace", b"   "
    yield "json-null", b"null"
    yield "array", b'["e","L",0]'
    yield "empty-array", b"[]"
    yield "number", b"17"
    yield "bom", b"\xef\xbb\xbf{" + ok + b"}"
    yield "trailing", b"{" + ok + b"} {}"


def write_seeds(directory: Path) -> int:
    """Write every seed as one file of ``directory``; return how many."""
    directory.mkdir(parents=True, exist_ok=True)
    written = dict(seeds())
    for name, data in written.items():
        (directory / name).write_bytes(data)
    return len(written)


if __name__ == "__main__":
    print(f"{write_seeds(Path(sys.argv[1]))} seeds in {sys.argv[1]}")
