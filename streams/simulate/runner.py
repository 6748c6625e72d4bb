"""``freshness simulate``: live funnel traffic into Kafka, with a ground-truth file.

Runs a :class:`~streams.simulate.traffic.Planner` through a
:class:`~streams.simulate.scheduler.Scheduler` into an aiokafka producer, and, when asked,
the PostHog flows' completions through the real posthog SDK and the bridge
(``--posthog-host``) and one flow's completions through the monitor's HTTP receiver
(``--receiver-url``, :mod:`streams.simulate.sinks`). Ctrl-C (SIGINT)
or SIGTERM stops planning, flushes the producer, completes the truth file (with a summary
line) and exits 0. Exit 1 when a record could not be produced (the truth file then says
which entities were affected only through their outcomes; do not score such a run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import signal
import sys
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from streams.flows.config import flow_topics, load_flows, parse_duration
from streams.kafka import KafkaConnection, new_producer
from streams.logs import install_repeat_filter
from streams.settings import Settings
from streams.simulate.scheduler import Position, RunStats, Scheduler, WallClock
from streams.simulate.sinks import PostHogSink, ReceiverSink, Sinks
from streams.simulate.traffic import Fractions, Planner, TrafficConfig
from streams.simulate.truth import TruthWriter

DELIVERY_TIMEOUT_MS = 120_000
"""How long the simulator's producer keeps a record through a broker outage before it gives
up on it (aiokafka's 40 s default lost records in a 20 s outage plus the broker's restart)."""
PROGRESS_TTY_S = 1.0
PROGRESS_LOG_S = 10.0


class KafkaSink:
    """The aiokafka producer as a :class:`~streams.simulate.scheduler.Sink`."""

    def __init__(self, kafka: Settings | KafkaConnection) -> None:
        self.producer = new_producer(
            kafka,
            linger_ms=1,
            max_request_size=4 * 1024 * 1024,
            request_timeout_ms=DELIVERY_TIMEOUT_MS,
        )

    async def start(self, topic_names: tuple[str, ...] = ()) -> None:
        """Connect, and load the metadata of ``topic_names`` so no first send waits for it."""
        await self.producer.start()
        for name in topic_names:
            await self.producer.partitions_for(name)

    async def send(self, topic: str, key: bytes, value: bytes | None) -> Awaitable[Position]:
        fut: Awaitable[Position] = await self.producer.send(topic, value, key=key)
        return fut

    async def flush(self) -> None:
        await self.producer.flush()

    async def stop(self) -> None:
        await self.producer.stop()


@dataclass(frozen=True, slots=True)
class Paths:
    """Which records take another way than straight to Kafka (the options' group)."""

    posthog_host: str | None = None
    posthog_flush_interval: float = 0.25
    receiver_url: str | None = None
    receiver_topic: str | None = None
    ingest_token: str | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "posthog_host": self.posthog_host,
            "posthog_flush_interval": self.posthog_flush_interval,
            "receiver_url": self.receiver_url,
            "receiver_topic": self.receiver_topic,
        }


def paths_from_args(args: argparse.Namespace, settings: Settings, cfg: TrafficConfig) -> Paths:
    """The :class:`Paths` of the options; raises :class:`ValueError` for an unknown flow."""
    topic = None
    if args.receiver_url:
        named = [f for f in cfg.flows if f.name == args.receiver_flow]
        if not named:
            names = ", ".join(f.name for f in cfg.flows)
            raise ValueError(f"--receiver-flow {args.receiver_flow!r} is not a flow ({names})")
        topic = named[0].end_topic
    token = settings.ingest_token
    return Paths(
        posthog_host=args.posthog_host,
        posthog_flush_interval=args.posthog_flush_interval,
        receiver_url=args.receiver_url,
        receiver_topic=topic,
        ingest_token=None if token is None else token.get_secret_value(),
    )


async def open_sinks(
    kafka: Settings | KafkaConnection, paths: Paths, topic_names: tuple[str, ...]
) -> Sinks:
    """Kafka (connected, topic metadata loaded) and the paths ``paths`` asks for."""
    sink = KafkaSink(kafka)
    await sink.start(topic_names)
    posthog = None
    if paths.posthog_host:
        posthog = PostHogSink(
            kafka, paths.posthog_host, flush_interval=paths.posthog_flush_interval
        )
        await posthog.start()
    receiver = None
    if paths.receiver_url:
        receiver = ReceiverSink(paths.receiver_url, paths.ingest_token)
    return Sinks(sink, posthog, receiver, paths.receiver_topic)


def config_from_args(args: argparse.Namespace, settings: Settings, run_id: str) -> TrafficConfig:
    fractions = Fractions(
        late=args.late,
        missing=args.missing,
        out_of_order=args.out_of_order,
        skew=args.skew,
        duplicate=args.duplicate,
        malformed=args.malformed,
    )
    return TrafficConfig(
        flows=load_flows(settings.flows),
        run_id=run_id,
        rate=args.rate,
        fractions=fractions,
        seed=args.seed,
        lag_fraction=args.lag_fraction,
        lag_sigma=args.lag_sigma,
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Entry point of ``freshness simulate``."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_repeat_filter()
    run_id = args.run_id or secrets.token_hex(4)
    try:
        duration_ms = parse_duration(args.duration) if args.duration else None
        cfg = config_from_args(args, settings, run_id)
        cfg.fractions.check()
        paths = paths_from_args(args, settings, cfg)
    except ValueError as exc:
        print(f"freshness simulate: {exc}", file=sys.stderr)
        return 2
    truth_path: Path = args.truth or Path(f"simulate-{run_id}.truth.jsonl")
    return asyncio.run(_main(cfg, settings, duration_ms, truth_path, paths))


async def _main(
    cfg: TrafficConfig,
    kafka: Settings | KafkaConnection,
    duration_ms: int | None,
    truth_path: Path,
    paths: Paths | None = None,
) -> int:
    clock = WallClock()
    paths = paths or Paths()
    sink = await open_sinks(kafka, paths, flow_topics(cfg.flows))
    truth = TruthWriter(truth_path)
    start = clock.now_ms()
    end = None if duration_ms is None else start + duration_ms
    planner = Planner(cfg, start, end)
    truth.header({**_header(cfg, start, end), "paths": paths.describe()})
    scheduler = Scheduler(planner, sink, clock, truth, route=sink.route)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(
        f"simulate run {cfg.run_id}: keys {cfg.key_prefix}*, {cfg.rate:g} records/s, "
        f"{'until Ctrl-C' if duration_ms is None else f'{duration_ms / 1000:g} s'}, "
        f"truth {truth_path}",
        file=sys.stderr,
    )
    progress = asyncio.create_task(_progress(scheduler, start, end, sys.stderr))
    try:
        stats = await scheduler.run(stop)
    finally:
        progress.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await progress
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await sink.stop()
    now = clock.now_ms()
    truth.write(_summary(scheduler, planner, stats, now))
    truth.close()
    _print_line(sys.stderr, _progress_line(stats, start, end, now, 0.0), final=True)
    print(
        f"simulate run {cfg.run_id}: {stats.sent} records, "
        f"outcomes {dict(sorted(stats.outcomes.items()))}, "
        f"malformed {sum(stats.malformed.values())}; truth {truth_path}"
        + (" (interrupted)" if scheduler.interrupted else ""),
        file=sys.stderr,
    )
    if stats.errors:
        print(
            f"freshness simulate: {stats.errors} records could not be produced "
            f"(first: {stats.first_error}); do not score this run",
            file=sys.stderr,
        )
        return 1
    return 0


def _header(cfg: TrafficConfig, start: int, end: int | None) -> dict[str, Any]:
    f = cfg.fractions
    return {
        "run_id": cfg.run_id,
        "key_prefix": cfg.key_prefix,
        "seed": cfg.seed,
        "started_at": start,
        "ends_at": end,
        "rate": cfg.rate,
        "fractions": {
            "late": f.late,
            "missing": f.missing,
            "out_of_order": f.out_of_order,
            "skew": f.skew,
            "duplicate": f.duplicate,
            "malformed": f.malformed,
        },
        "lag": {
            "distribution": "lognormal",
            "median_fraction": cfg.lag_fraction,
            "sigma": cfg.lag_sigma,
        },
        "flows": [
            {
                "name": fl.name,
                "start_topic": fl.start_topic,
                "end_topic": fl.end_topic,
                "target_ms": fl.target_ms,
                "give_up_after_ms": fl.give_up_after_ms,
            }
            for fl in cfg.flows
        ],
    }


def _summary(sched: Scheduler, planner: Planner, stats: RunStats, now: int) -> dict[str, Any]:
    return {
        "type": "summary",
        "ended_at": now,
        "interrupted": sched.interrupted,
        "records_sent": stats.sent,
        "records_acked": stats.acked,
        "errors": stats.errors,
        "by_role": stats.by_role,
        "by_case": stats.by_case,
        "outcomes": stats.outcomes,
        "malformed": stats.malformed,
        "skipped_near_end": planner.skipped,
        "produce_delay_ms": stats.delay_summary(),
    }


def _progress_line(stats: RunStats, start: int, end: int | None, now: int, rate: float) -> str:
    cases = " ".join(f"{k} {v}" for k, v in sorted(stats.by_case.items()))
    elapsed = (now - start) / 1000
    total = "" if end is None else f"/{(end - start) / 1000:.0f}"
    delay, stats.recent_max_delay = stats.recent_max_delay, 0
    return (
        f"[{elapsed:.0f}{total} s] sent {stats.sent} ({rate:.0f}/s) | {cases} | "
        f"malformed {sum(stats.malformed.values())} | max ack delay {delay} ms"
        + (f" | errors {stats.errors}" if stats.errors else "")
    )


def _print_line(out: TextIO, line: str, *, final: bool = False) -> None:
    if out.isatty():
        out.write("\r\x1b[K" + line + ("\n" if final else ""))
    else:
        out.write(line + "\n")
    out.flush()


async def _progress(sched: Scheduler, start: int, end: int | None, out: TextIO) -> None:
    """A single updating line on a terminal, a line every 10 s otherwise."""
    every = PROGRESS_TTY_S if out.isatty() else PROGRESS_LOG_S
    last_sent, last_t = 0, sched.clock.now_ms()
    while True:
        await asyncio.sleep(every)
        now = sched.clock.now_ms()
        stats = sched.stats
        rate = (stats.sent - last_sent) * 1000 / max(1, now - last_t)
        last_sent, last_t = stats.sent, now
        _print_line(out, _progress_line(stats, start, end, now, rate))
