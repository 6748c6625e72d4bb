"""``POST /v1/events/{topic}`` under a constant rate of batches (open loop, wrk2-style).

    .venv/bin/python bench/receivers.py                      # 2,000 and 4,000 records/s, 30 s each
    .venv/bin/python bench/receivers.py --rates 2000 --batch 100 --duration 60
    .venv/bin/python bench/receivers.py --bootstrap 127.0.0.1:9092

Starts its own embedded broker (or uses ``--bootstrap``), creates the default flows' topics,
and runs ``freshness api`` with ``FRESHNESS_INGEST_TOKEN`` set (the real receiver: every
record judged by the worker's decoder, written with acks=all, 202 only once Kafka
acknowledged all of them). For each rate it POSTs JSON arrays of ``--batch`` distinct,
valid ``funnel.notification.acknowledged`` records to ``/v1/events/...``, open loop: request
``i`` is due at ``t0 + i * batch / rate`` whether or not earlier ones answered, and its
latency counts from when it was due, so a stalled server shows as latency, not as a lower
rate. After each step it reads the topic's end offsets: every record answered 202 must be
there. Goal (DESIGN section 12), judged on the 2,000 records/s step (the others show the
headroom): 2,000 records/s in batches of 100 sustained with p95 under 50 ms and no error.
Writes ``bench/results/receivers.json``; exit 1 when the goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import ROOT, broker, check, machine, make_topics, worker_child

from streams import topics
from streams.broker.process import free_port
from streams.flows.config import flow_topics, load_flows
from streams.kafka import KafkaConnection, new_consumer, partition_list, topic_partitions
from streams.process import Child
from streams.simulate.percentile import percentile
from streams.testing.records import valid_record

RESULT = ROOT / "bench" / "results" / "receivers.json"
TOPIC = topics.NOTIFICATION_ACKNOWLEDGED
FLOW = "approval_to_notification"
GOAL_RATE = 2_000.0
GOAL_P95_MS = 50.0
TOKEN = "bench-ingest-token"


def bodies(rate: float, batch: int, seconds: float, t0_ms: int, step: str) -> list[bytes]:
    """One JSON array of ``batch`` valid records per request, ``occurred_at`` its due time."""
    flow = next(f for f in load_flows(None) if f.name == FLOW)
    out = []
    per_s = rate / batch
    for i in range(int(per_s * seconds)):
        due = t0_ms + int(i * 1000 / per_s)
        records = [
            valid_record(flow, "end", f"b{step}-{i}-{j}", f"b{step}-{i}-{j}-c", due)
            for j in range(batch)
        ]
        out.append(orjson.dumps(records))
    return out


async def open_loop(
    client: httpx.AsyncClient, payloads: list[bytes], per_s: float
) -> tuple[list[float], list[str], float]:
    """POST ``payloads`` on schedule; latencies (ms) from due time, errors, elapsed seconds."""
    latencies: list[float] = []
    errors: list[str] = []
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.1
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    async def one(due: float, body: bytes) -> None:
        try:
            r = await client.post(f"/v1/events/{TOPIC}", content=body, headers=headers)
            if r.status_code != 202:
                errors.append(f"HTTP {r.status_code} {r.text[:120]}")
                return
        except httpx.HTTPError as exc:
            errors.append(type(exc).__name__)
            return
        latencies.append((loop.time() - due) * 1000.0)

    tasks = []
    for i, body in enumerate(payloads):
        due = t0 + i / per_s
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due, body)))
    await asyncio.gather(*tasks)
    return latencies, errors, loop.time() - t0


async def records_in(bootstrap: str, topic: str) -> int:
    consumer = new_consumer(KafkaConnection(bootstrap), enable_auto_commit=False)
    await consumer.start()
    try:
        parts = partition_list(await topic_partitions(consumer, [topic]))
        ends = await consumer.end_offsets(parts)
        begins = await consumer.beginning_offsets(parts)
        return sum(ends[tp] - begins[tp] for tp in parts)
    finally:
        await consumer.stop()


def _ms(values: list[float], q: float) -> float | None:
    value = percentile(values, q)
    return None if value is None else round(value, 2)


async def step(
    client: httpx.AsyncClient, api: Child, bootstrap: str, args: argparse.Namespace, rate: float
) -> dict[str, Any]:
    per_s = rate / args.batch
    t0_ms = time.time_ns() // 1_000_000
    warm = bodies(rate, args.batch, args.warmup, t0_ms, f"w{rate:g}")
    await open_loop(client, warm, per_s)
    check(api)
    t0_ms = time.time_ns() // 1_000_000
    payloads = bodies(rate, args.batch, args.duration, t0_ms, f"m{rate:g}")
    before = await records_in(bootstrap, TOPIC)
    latencies, errors, elapsed = await open_loop(client, payloads, per_s)
    written = await records_in(bootstrap, TOPIC) - before
    check(api)
    latencies.sort()
    ok = len(latencies)
    return {
        "target_records_per_s": rate,
        "batch": args.batch,
        "requests": ok + len(errors),
        "errors": len(errors),
        "error_kinds": sorted({e.split(" ", 2)[0] + " " + e.split(" ", 2)[1] for e in errors})
        if errors
        else [],
        "achieved_records_per_s": round(ok * args.batch / elapsed, 1),
        "records_acknowledged": ok * args.batch,
        "records_in_topic": written,
        "latency_ms": {
            "p50": _ms(latencies, 0.50),
            "p90": _ms(latencies, 0.90),
            "p95": _ms(latencies, 0.95),
            "p99": _ms(latencies, 0.99),
            "max": round(latencies[-1], 2) if latencies else None,
        },
    }


async def bench(args: argparse.Namespace, bootstrap: str, home: Path) -> list[dict[str, Any]]:
    await make_topics(bootstrap, list(flow_topics(load_flows(None))))
    port = free_port()
    env = dict(
        os.environ,
        FRESHNESS_KAFKA_BOOTSTRAP=bootstrap,
        FRESHNESS_HOME=str(home),
        FRESHNESS_API_PORT=str(port),
        FRESHNESS_INGEST_TOKEN=TOKEN,
        PYTHONUNBUFFERED="1",
    )
    env.pop("FRESHNESS_API_TOKEN", None)
    argv = [sys.executable, "-m", "streams.cli", "api"]
    api = worker_child("api", argv, env, home / "api.log", cwd=ROOT)
    api.start()
    limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=64)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
            await _wait_writing(client, api)
            return [await step(client, api, bootstrap, args, rate) for rate in args.rates]
    finally:
        api.stop()


async def _wait_writing(client: httpx.AsyncClient, api: Child) -> None:
    """Until the receiver acknowledges a write (its producer connects in the background)."""
    probe = bodies(1.0, 1, 1.0, time.time_ns() // 1_000_000, "probe")[0]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        check(api)
        with contextlib.suppress(httpx.TransportError):
            r = await client.post(f"/v1/events/{TOPIC}", content=probe, headers=headers)
            if r.status_code == 202:
                return
        await asyncio.sleep(0.5)
    raise SystemExit(f"the receiver did not acknowledge a write in time:\n{api.tail()}")


def result(args: argparse.Namespace, steps: list[dict[str, Any]], kafka: str) -> dict[str, Any]:
    at_goal = [s for s in steps if s["target_records_per_s"] == GOAL_RATE and s["batch"] == 100]
    met = bool(at_goal) and all(
        s["errors"] == 0
        and s["records_in_topic"] == s["records_acknowledged"]
        and s["achieved_records_per_s"] >= GOAL_RATE * 0.98
        and (s["latency_ms"]["p95"] or 1e9) < GOAL_P95_MS
        for s in at_goal
    )
    return {
        "benchmark": "receivers",
        "endpoint": f"POST /v1/events/{TOPIC} (JSON array, acks=all)",
        "server": "freshness api (uvicorn, one process) with FRESHNESS_INGEST_TOKEN set",
        "load_generator": "python open loop (httpx, wrk2-style: latency from due time)",
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "steps": steps,
        "goal": {
            "records_per_s_at_least": GOAL_RATE,
            "batch": 100,
            "p95_ms_below": GOAL_P95_MS,
            "met": met,
        },
        "machine": machine(kafka),
        "command": " ".join(["bench/receivers.py", *sys.argv[1:]]),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--rates",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[2_000.0, 4_000.0],
        help="records per second, comma-separated steps (2000,4000)",
    )
    p.add_argument("--batch", type=int, default=100, help="records per request (100)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds measured per step")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before each step")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--bootstrap", default=None)
    p.add_argument("--out", type=Path, default=RESULT)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-receivers-") as tmp:
        home = Path(tmp)
        with broker(args.bootstrap, home) as (bootstrap, kafka):
            steps = asyncio.run(bench(args, bootstrap, home))
    out = result(args, steps, kafka)
    text = orjson.dumps(out, option=orjson.OPT_INDENT_2)
    print(text.decode())
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(text + b"\n")
    return 0 if out["goal"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
