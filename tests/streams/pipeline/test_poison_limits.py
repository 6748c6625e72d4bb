"""Size limits: a record just over the decoder's 1 MiB limit must reach the worker (to be
quarantined as ``too_large``), so every Kafka limit on its way is above it, and its
quarantine record must stay small. ``tests/faults/test_poison.py`` sends one through the
real broker; this checks the settings everywhere they are written down."""

from __future__ import annotations

from pathlib import Path

import orjson
import yaml

from streams.broker.process import BrokerConfig, render_properties
from streams.pipeline.quarantine import MAX_RECORD_BYTES, RAW_CAP_BYTES, quarantine_record
from streams.topics import MESSAGE_MAX_BYTES
from streams.worker.reader import MAX_FETCH_BYTES

ROOT = Path(__file__).resolve().parents[3]
BATCH_OVERHEAD = 1024
"""More than a record batch's header plus one record's framing and a 1 KiB key."""


def test_kafka_takes_a_record_over_the_decoder_limit_and_the_worker_fetches_it() -> None:
    assert MESSAGE_MAX_BYTES >= MAX_RECORD_BYTES + 1 + BATCH_OVERHEAD
    assert MAX_FETCH_BYTES >= MESSAGE_MAX_BYTES


def test_the_embedded_broker_uses_the_limit(tmp_path: Path) -> None:
    config = BrokerConfig(port=19092, controller_port=19093, data_dir=tmp_path, libs=tmp_path)
    props = dict(line.split("=", 1) for line in render_properties(config).splitlines())
    assert int(props["message.max.bytes"]) == MESSAGE_MAX_BYTES
    assert int(props["replica.fetch.max.bytes"]) == MESSAGE_MAX_BYTES


def test_the_compose_broker_uses_the_limit() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = compose["services"]["kafka"]["environment"]
    assert int(env["KAFKA_MESSAGE_MAX_BYTES"]) == MESSAGE_MAX_BYTES
    assert int(env["KAFKA_REPLICA_FETCH_MAX_BYTES"]) == MESSAGE_MAX_BYTES


def test_the_quarantine_record_of_the_largest_record_kafka_takes_stays_small() -> None:
    raw = b"x" * MESSAGE_MAX_BYTES
    rec = quarantine_record("t", 0, 0, "too_large", "big", raw, 1)
    assert len(orjson.dumps(rec)) < 2 * RAW_CAP_BYTES  # the 64 KiB cut, base64, and a line
    assert (rec["raw_size"], rec["truncated"]) == (MESSAGE_MAX_BYTES, True)
