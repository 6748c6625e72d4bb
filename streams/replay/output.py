"""``--output FILE``: the replay's final state per key, as JSON lines.

One line per key, ``{"topic": ..., "key": ..., "value": ...}``, sorted by topic then key;
values are the worker's own encoding of the output contract (DESIGN section 5:
:func:`streams.pipeline.codec.measurement_kv` and :func:`~streams.pipeline.codec.breach_kv`
bytes, unchanged). ``freshness.measurements`` holds the latest measurement of each key,
``freshness.breaches`` the current state of each breach; a retracted breach has no line (its
tombstone deleted it). Two replays of the same range give byte-identical files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import orjson

from streams import topics
from streams.pipeline import codec
from streams.replay.engine import ReplayResult


def output_lines(result: ReplayResult) -> Iterator[bytes]:
    """The lines of the output file, each ending in a newline."""
    measurements = result.measurements.values()
    records = [(topics.MEASUREMENTS, *codec.measurement_kv(m)) for m in measurements]
    records += [(topics.BREACHES, *codec.breach_kv(b)) for b in result.breaches.values()]
    records.sort(key=lambda r: (r[0], r[1]))
    for topic, key, value in records:
        line = {"topic": topic, "key": key.decode(), "value": orjson.Fragment(value)}
        yield orjson.dumps(line) + b"\n"


def write_output(result: ReplayResult, path: Path) -> int:
    """Write the file (replacing it only once complete); returns the number of lines."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    n = 0
    with tmp.open("wb") as fh:
        for line in output_lines(result):
            fh.write(line)
            n += 1
    tmp.replace(path)
    return n
