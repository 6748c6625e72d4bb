"""A read model seeded with a realistic day of contract records, served without Kafka.

For fuzzing (``make schemathesis``), latency benchmarks (``bench/api_latency.py``) and
trying the API out: ``python -m api.demo --port 8000``. The data is deterministic for a
given ``--seed`` and sized like a busy day: every flow reports from every partition for
every minute of the last 24 h, plus breaches, measurements and quarantined records.
Nothing here is used by ``freshness api``.

Nothing here touches Kafka either: ``explain?inputs=true`` reads the seeded records
(:class:`SeededLookup`), and the receivers (enabled by ``FRESHNESS_INGEST_TOKEN`` /
``FRESHNESS_WEBHOOK_INGEST_SECRET`` as in the real API) judge records exactly as the real
API does and hand the accepted ones to :class:`DiscardingWriter`. So a fuzzer exercises every
route, and what it finds is the API's, not an unreachable broker's 503.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from collections.abc import Sequence
from typing import Any

import uvicorn
from fastapi import FastAPI

from api.app import create_app
from api.readmodel import RECOMPUTE_MS, ReadModel
from api.receivers import Record
from api.server import uvicorn_config
from streams import topics
from streams.core.model import Flow
from streams.flows.config import load_flows
from streams.replay.explain import InputSeen, OutputSeen
from streams.settings import Settings
from streams.stats import records as stats


class SeededLookup:
    """The entity's records as the read model holds them (no input records, no Kafka)."""

    async def records(
        self, flow: Flow, key: str, known: list[OutputSeen], window_ms: int
    ) -> tuple[list[InputSeen], list[OutputSeen], list[OutputSeen]]:
        breaches = [o for o in known if o.topic == topics.BREACHES]
        return [], breaches, [o for o in known if o.topic == topics.MEASUREMENTS]


class DiscardingWriter:
    """Acknowledges every write at once and counts it: the receivers' judgement without
    Kafka."""

    def __init__(self) -> None:
        self.written = 0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def write(self, topic: str, records: Sequence[Record]) -> None:
        self.written += len(records)


def seed(
    model: ReadModel,
    *,
    now_ms: int,
    partitions: int = 8,
    minutes: int = 1440,
    breaches: int = 5_000,
    seed_value: int = 1,
) -> None:
    """Apply a day of window and gauge records per flow, breaches and measurements."""
    rng = random.Random(seed_value)
    now_minute = now_ms // stats.MINUTE_MS
    for flow in model.flows.values():
        for p in range(partitions):
            for m in range(now_minute - minutes + 1, now_minute + 1):
                model.apply(topics.STATS, _window(rng, flow.name, flow.target_ms, p, m, now_ms))
            model.apply(topics.STATS, _gauge(rng, flow.name, p, now_ms))
    names = list(model.flows)
    for i in range(breaches):
        flow = model.flows[names[i % len(names)]]
        model.apply(topics.BREACHES, _breach(rng, flow.name, flow.target_ms, i, now_ms))
        started = now_ms - rng.randint(0, 86_400_000)
        lag = int(rng.lognormvariate(0, 0.8) * flow.target_ms / 2)
        model.apply(
            topics.MEASUREMENTS,
            {
                "flow": flow.name,
                "key": f"m{i}",
                "start_event_id": f"s{i}",
                "end_event_id": f"e{i}",
                "started_at": started,
                "completed_at": started + lag,
                "lag_ms": lag,
                "target_ms": flow.target_ms,
                "on_time": lag <= flow.target_ms,
                "clock_skew": False,
            },
        )
    _example_entity(model, now_ms)
    for i, reason in enumerate(("not_json", "schema_violation", "too_large") * 5):
        model.apply(
            topics.QUARANTINE,
            {
                "topic": "funnel.lead.captured",
                "partition": 0,
                "offset": i,
                "reason": reason,
                "detail": "",
                "raw_b64": "",
                "raw_size": 1,
                "truncated": False,
                "observed_at": now_ms,
            },
        )


def _example_entity(model: ReadModel, now_ms: int) -> None:
    """``lead_to_posthog:lead-42`` (the OpenAPI examples): late, with its breach."""
    started = now_ms - 60_000
    base = {"flow": "lead_to_posthog", "key": "lead-42", "start_event_id": "evt-1"}
    source = {"topic": "funnel.lead.captured", "partition": 2, "offset": 1041}
    model.apply(
        topics.MEASUREMENTS,
        {
            **base,
            "end_event_id": "evt-2",
            "started_at": started,
            "completed_at": started + 11_000,
            "lag_ms": 11_000,
            "target_ms": 5_000,
            "on_time": False,
            "clock_skew": False,
            "start_source": source,
        },
    )
    model.apply(
        topics.BREACHES,
        {**base, "breach_id": "lead_to_posthog:lead-42", "kind": "late", "status": "closed",
         "started_at": started, "deadline": started + 5_000, "detected_at": started + 5_300,
         "completed_at": started + 11_000, "lag_ms": 11_000, "target_ms": 5_000,
         "start_source": source},
    )  # fmt: skip


def _window(
    rng: random.Random, flow: str, target: int, partition: int, minute: int, now_ms: int
) -> dict[str, Any]:
    win = stats.WindowStats(count=rng.randint(5, 40))
    for _ in range(win.count):
        lag = rng.lognormvariate(0, 0.6) * target / 3
        win.sketch.add(lag)
        win.on_time += lag <= target
    win.late = win.count - win.on_time
    win.lost = int(rng.random() < 0.01)
    return stats.to_json(stats.WindowRecord(flow, partition, minute, win, updated_at=now_ms))


def _gauge(rng: random.Random, flow: str, partition: int, now_ms: int) -> dict[str, Any]:
    gauge = stats.GaugeRecord(
        flow,
        partition,
        pending=rng.randint(0, 50),
        oldest_pending_started_at=now_ms - rng.randint(0, 4_000),
        open_breaches=0,
        monitor_lag_ms=rng.randint(0, 200),
        watermark_ms=now_ms,
        updated_at=now_ms,
    )
    return stats.to_json(gauge)


def _breach(rng: random.Random, flow: str, target: int, i: int, now_ms: int) -> dict[str, Any]:
    started = now_ms - rng.randint(target, 86_400_000)
    kind = rng.choice(("overdue", "late", "late", "lost"))
    done = started + target + rng.randint(1, 10 * target) if kind == "late" else None
    return {
        "breach_id": f"{flow}:k{i}", "flow": flow, "key": f"k{i}", "kind": kind,
        "status": "open" if kind == "overdue" else "closed", "started_at": started,
        "deadline": started + target, "detected_at": started + target + 150,
        "completed_at": done, "lag_ms": None if done is None else done - started,
        "target_ms": target, "start_event_id": f"s{i}",
        "start_source": {"topic": "funnel.lead.captured", "partition": i % 8, "offset": i},
    }  # fmt: skip


def build(
    settings: Settings, *, now_ms: int, breaches: int, recompute_ms: int = RECOMPUTE_MS
) -> ReadModel:
    """A caught-up read model of the configured flows, seeded, on a frozen clock."""
    model = ReadModel(
        load_flows(settings.flows),
        entity_capacity=settings.api_timeline_entities,
        stats_interval_ms=settings.stats_interval_ms,
        clock=lambda: now_ms,
        recompute_ms=recompute_ms,
    )
    seed(model, now_ms=now_ms, breaches=breaches)
    model.progress.mark_caught_up()
    return model


async def _churn(model: ReadModel, per_s: float, now_ms: int) -> None:
    """Replace the current minute's window and gauge records, like live workers do."""
    rng = random.Random(2)
    flows = list(model.flows.values())
    i = 0
    while True:
        await asyncio.sleep(1 / per_s)
        flow = flows[i % len(flows)]
        p = (i // len(flows)) % 8
        model.apply(
            topics.STATS,
            _window(rng, flow.name, flow.target_ms, p, now_ms // stats.MINUTE_MS, now_ms),
        )
        model.apply(topics.STATS, _gauge(rng, flow.name, p, now_ms))
        i += 1


async def _serve(app: FastAPI, model: ReadModel, args: argparse.Namespace) -> None:
    config = uvicorn_config(app, args.host, args.port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    churn = (
        asyncio.create_task(_churn(model, args.updates_per_s, args.now_ms))
        if args.updates_per_s > 0
        else None
    )
    try:
        await server.serve()
    finally:
        if churn is not None:
            churn.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--breaches", type=int, default=5_000)
    parser.add_argument("--now-ms", type=int, default=1_767_225_600_000)
    parser.add_argument(
        "--updates-per-s",
        type=float,
        default=0.0,
        help="stats records per second replaced while serving (live workers publish "
        "flows x partitions / stats interval, e.g. 16/s)",
    )
    parser.add_argument(
        "--recompute-ms",
        type=int,
        default=RECOMPUTE_MS,
        help="least time between two computations of the flow views (0: after every change)",
    )
    args = parser.parse_args(argv)
    settings = Settings()
    model = build(
        settings, now_ms=args.now_ms, breaches=args.breaches, recompute_ms=args.recompute_ms
    )
    app = create_app(settings, model, writer=DiscardingWriter(), lookup=SeededLookup())
    asyncio.run(_serve(app, model, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
