"""Detection-to-page delay of stuck alerts, end to end (DESIGN section 12: "page sent <= 2 s
after an alert is due").

    .venv/bin/python bench/page_delay.py                   # 10 flows x 10 rounds, ~2.5 min
    .venv/bin/python bench/page_delay.py --flows 10 --rounds 12 --bootstrap 127.0.0.1:9092

Starts its own embedded broker (or uses ``--bootstrap``), one ``freshness worker`` and one
``freshness alerter`` subprocess (default settings: ``FRESHNESS_ALERT_EVAL_MS`` 1000), and
the local PagerDuty peer (``streams.testing.peers``) in this process. The flows file has
``--flows`` flows, each on a topic pair of its own, target 1 s, whose ``stuck`` alert fires
as soon as an overdue breach is open (``after: 1ms``: the alert is due at the breach's
deadline); the burn tiers are off. In every round each flow gets one start that is not
completed (its ``occurred_at`` is the wall clock when it is sent), waits for the PagerDuty
trigger, then gets its completion and waits for the resolve. The flows' rounds are
staggered so that triggers and resolves together stay below PagerDuty's 120 events per
minute (the rate limit would otherwise add its own wait).

For every trigger: ``page_minus_deadline_ms`` = the PagerDuty peer's arrival time of the
request minus the stuck entity's deadline (from the request's own ``custom_details``), and
``page_minus_detected_ms`` = arrival minus the breach's ``detected_at`` (the worker's part
taken out). Reports count, p50, p99 and max of both (nearest rank,
``streams.simulate.percentile``) and writes ``bench/results/page_delay.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import ROOT, _env, broker, check, machine, worker_child

from streams import topics
from streams.alerting.alerter import READY_MARK
from streams.flows.config import load_flows
from streams.kafka import KafkaConnection, ensure_topics, new_producer
from streams.process import Child
from streams.simulate.percentile import percentile
from streams.testing.peers.pagerduty import PagerDutyPeer
from streams.testing.records import valid_record

RESULT = ROOT / "bench" / "results" / "page_delay.json"
ROUTING_KEY = "B" * 32
WORKING = "caught up with the topics"
EVENTS_PER_MINUTE = 100
"""Triggers plus resolves per minute the rounds are paced to (PagerDuty allows 120)."""


def flows_file(path: Path, count: int) -> Path:
    lines = ["flows:"]
    for i in range(count):
        lines += [
            f"  - name: bench{i:02d}",
            f"    start: {{topic: bench.page.f{i:02d}.start, key: id}}",
            f"    completion: {{topic: bench.page.f{i:02d}.done, key: id}}",
            "    target: 1s",
            "    alerts:",
            "      page-fast: false",
            "      page-slow: false",
            "      ticket: false",
            "      stuck: {after: 1ms}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def wait_log(child: Child, mark: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while mark not in child.log.read_text(errors="replace"):
        check(child)
        if time.monotonic() > deadline:
            raise SystemExit(f"{child.name}: no {mark!r} in {timeout_s} s:\n{child.tail()}")
        await asyncio.sleep(0.2)


async def send(bootstrap: str, flow: Any, side: str, key: str) -> None:
    topic = flow.start_topic if side == "start" else flow.end_topic
    value = orjson.dumps(valid_record(flow, side, key, f"{key}-{side}", now_ms()))
    producer = new_producer(KafkaConnection(bootstrap), linger_ms=0, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()


async def until(check_fn: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check_fn():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for PagerDuty")
        await asyncio.sleep(0.01)


async def rounds(bootstrap: str, pd: PagerDutyPeer, flow: Any, n: int, period_s: float) -> None:
    """``n`` rounds of one stuck entity of ``flow``: trigger, then resolve."""
    dedup = f"pagebench/{flow.name}/stuck"

    def count(action: str) -> int:
        return sum(
            1 for e in pd.events() if e["dedup_key"] == dedup and e["event_action"] == action
        )

    for r in range(n):
        began = time.monotonic()
        key = f"{flow.name}-r{r}"
        await send(bootstrap, flow, "start", key)
        await until(lambda r=r: count("trigger") > r, 30)
        await send(bootstrap, flow, "end", key)
        await until(lambda r=r: count("resolve") > r, 30)
        await asyncio.sleep(max(0.0, period_s - (time.monotonic() - began)))


def delays(pd: PagerDutyPeer) -> tuple[list[int], list[int]]:
    to_deadline: list[int] = []
    to_detected: list[int] = []
    for req in pd.requests:
        event = req.json()
        if req.status != 202 or event["event_action"] != "trigger":
            continue
        oldest = event["payload"]["custom_details"]["oldest"][0]
        to_deadline.append(req.arrived_at - int(oldest["deadline"]))
        to_detected.append(req.arrived_at - int(oldest["detected_at"]))
    return to_deadline, to_detected


def summary(values: Sequence[int]) -> dict[str, Any]:
    return {
        "count": len(values),
        "p50_ms": percentile(values, 0.50),
        "p99_ms": percentile(values, 0.99),
        "max_ms": max(values, default=None),
    }


async def bench(args: argparse.Namespace, bootstrap: str, home: Path) -> dict[str, Any]:
    flows_path = flows_file(home / "flows.yaml", args.flows)
    flows = load_flows(flows_path)
    specs = topics.required_topics(flows, "pagebench")
    await ensure_topics(KafkaConnection(bootstrap), specs, 8, 1)
    cli = [sys.executable, "-m", "streams.cli"]
    async with PagerDutyPeer() as pd:
        env = _env(bootstrap, home, "pagebench")
        env.update(
            FRESHNESS_FLOWS=str(flows_path),
            FRESHNESS_PAGERDUTY_ROUTING_KEY=ROUTING_KEY,
            FRESHNESS_PAGERDUTY_URL=pd.enqueue_url,
            FRESHNESS_LOG_LEVEL="info",
        )
        worker = worker_child("worker", [*cli, "worker"], env, home / "worker.log")
        alerter = worker_child("alerter", [*cli, "alerter"], env, home / "alerter.log")
        for child in (worker, alerter):
            child.start()
        try:
            await wait_log(worker, "Ready", 120)
            await wait_log(alerter, READY_MARK, 120)
            await wait_log(alerter, WORKING, 120)
            period = len(flows) * 2 * 60 / EVENTS_PER_MINUTE
            tasks = []
            for i, flow in enumerate(flows):
                await asyncio.sleep(period / len(flows) if i else 0)
                tasks.append(asyncio.create_task(rounds(bootstrap, pd, flow, args.rounds, period)))
            await asyncio.gather(*tasks)
        finally:
            alerter.stop()
            worker.stop()
    to_deadline, to_detected = delays(pd)
    return {
        "page_minus_deadline": summary(to_deadline),
        "page_minus_detected": summary(to_detected),
        "samples_page_minus_deadline_ms": to_deadline,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--bootstrap", help="use this cluster instead of an embedded broker")
    parser.add_argument("--no-write", action="store_true", help="do not write the result file")
    parser.add_argument("--home", type=Path, help="keep the broker data and the logs here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="page-delay-") as tmp:
        home = args.home or Path(tmp)
        home.mkdir(parents=True, exist_ok=True)
        with broker(args.bootstrap, home) as (bootstrap, kafka_version):
            measured = asyncio.run(bench(args, bootstrap, home))
    result = {
        "bench": "page_delay",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/page_delay.py " + " ".join(argv or sys.argv[1:]),
        "settings": {"alert_eval_ms": 1000, "flows": args.flows, "rounds": args.rounds},
        "goal": "page sent <= 2 s after the alert is due (DESIGN section 12)",
        "machine": machine(kafka_version),
        **measured,
    }
    dl = result["page_minus_deadline"]
    print(
        f"stuck alerts: {dl['count']}; page - deadline p50 {dl['p50_ms']} ms, "
        f"p99 {dl['p99_ms']} ms, max {dl['max_ms']} ms"
    )
    dt = result["page_minus_detected"]
    print(f"page - detected_at p50 {dt['p50_ms']} ms, p99 {dt['p99_ms']} ms")
    if not args.no_write:
        RESULT.write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
