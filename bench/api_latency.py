"""Latency of ``GET /v1/flows`` under a constant request rate (open loop, wrk2-style).

    .venv/bin/python bench/api_latency.py                # 200 req/s for 30 s, demo server
    .venv/bin/python bench/api_latency.py --url http://127.0.0.1:8000   # a running API
    .venv/bin/python bench/api_latency.py --burst 200    # 200 at once, against a reference

``--burst N`` sends N requests at once (N connections), ``--rounds`` times, against two demo
servers side by side in the same run: the API as it is (flow views computed at most every
``RECOMPUTE_MS``) and a reference that recomputes them after every change (``--recompute-ms
0``, the behaviour before), both with ``--updates-per-s`` stats records applied meanwhile (200:
a consumer applying a batch between any two requests, as under live traffic). It reports the
latency of each and their ratio; written to ``bench/results/api_burst.json``. With
``--in-process`` the same comparison runs through the app without HTTP (``--rounds`` pairs),
written to ``bench/results/api_burst_in_process.json``.

By default it starts ``python -m api.demo`` (a read model seeded with a busy day: 4 flows x
8 partitions x 1440 minutes of window sketches, 5,000 breaches) on a free loopback port,
with stats records replaced 16 times a second as live workers would, so the flow view is
recomputed while it is measured.

Open loop: request ``i`` is due at ``t0 + i / rate`` whether or not earlier ones have
answered, and its latency is measured from when it was due (no coordinated omission: a
stalled server shows up as latency, not as a lower rate). Goal: p95 < 50 ms. Writes
``bench/results/api_latency.json`` and exits 1 when the goal is missed or a request fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streams.simulate.percentile import percentile  # noqa: E402  (after the sys.path fix)

RESULT = ROOT / "bench" / "results" / "api_latency.json"
BURST_RESULT = ROOT / "bench" / "results" / "api_burst.json"
GOAL_P95_MS = 50.0
RECOMPUTE = 250
"""``api.readmodel.RECOMPUTE_MS`` (not imported: the HTTP modes need no ``api`` import)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ms(latencies: list[float], q: float) -> float | None:
    """The nearest-rank ``q`` percentile, rounded to 0.01 ms (None: no successful request)."""
    value = percentile(latencies, q)
    return None if value is None else round(value, 2)


async def wait_healthy(client: httpx.AsyncClient, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(httpx.TransportError):
            if (await client.get("/healthz")).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise SystemExit("the API did not answer /healthz in time")
        await asyncio.sleep(0.2)


async def open_loop(
    client: httpx.AsyncClient, path: str, rate: float, duration_s: float, headers: dict[str, str]
) -> tuple[list[float], list[str], float]:
    """Fire ``rate * duration_s`` requests on schedule; latencies (ms) from due time."""
    total = int(rate * duration_s)
    latencies: list[float] = []
    errors: list[str] = []
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.1

    async def one(due: float) -> None:
        try:
            r = await client.get(path, headers=headers)
            r.read()
            if r.status_code != 200:
                errors.append(f"HTTP {r.status_code}")
                return
        except httpx.HTTPError as exc:
            errors.append(type(exc).__name__)
            return
        latencies.append((loop.time() - due) * 1000.0)

    tasks = []
    for i in range(total):
        due = t0 + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - t0
    return latencies, errors, elapsed


async def measure(args: argparse.Namespace, base: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    limits = httpx.Limits(
        max_connections=args.connections, max_keepalive_connections=args.connections
    )
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10.0) as client:
        await wait_healthy(client, 120)
        size = len((await client.get(args.path, headers=headers)).content)
        await open_loop(client, args.path, args.rate, args.warmup, headers)
        latencies, errors, elapsed = await open_loop(
            client, args.path, args.rate, args.duration, headers
        )
    latencies.sort()
    p95 = _ms(latencies, 0.95)
    return {
        "benchmark": "api_latency",
        "endpoint": f"GET {args.path}",
        "load_generator": "python open loop (httpx, wrk2-style: latency from due time)",
        "target_rate_per_s": args.rate,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "requests": len(latencies) + len(errors),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "achieved_rate_per_s": round((len(latencies) + len(errors)) / elapsed, 1),
        "response_bytes": size,
        "latency_ms": {
            "p50": _ms(latencies, 0.50),
            "p90": _ms(latencies, 0.90),
            "p95": p95,
            "p99": _ms(latencies, 0.99),
            "max": round(latencies[-1], 2) if latencies else None,
        },
        "goal": {
            "p95_ms_below": GOAL_P95_MS,
            "met": p95 is not None and p95 < GOAL_P95_MS and not errors,
        },
    }


async def bursts(base: str, path: str, n: int, rounds: int) -> list[float]:
    """``rounds`` bursts of ``n`` simultaneous requests, each burst from ``n`` new
    connections (as ``n`` clients arriving at once; a kept-alive connection may be closed by
    the server's keep-alive timeout during a slow burst); latencies (ms) from its start."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=base, timeout=60.0) as probe:
        await wait_healthy(probe, 120)
    loop = asyncio.get_running_loop()
    for i in range(rounds + 1):
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60.0) as client:

            async def one(t0: float, client: httpx.AsyncClient = client) -> float:
                r = await client.get(path)
                if r.status_code != 200:
                    raise SystemExit(f"GET {path}: HTTP {r.status_code}")
                return (loop.time() - t0) * 1000.0

            t0 = loop.time()
            done = await asyncio.gather(*(one(t0) for _ in range(n)))
        if i > 0:  # the first burst warms the server up
            latencies.extend(done)
        await asyncio.sleep(0.5)
    latencies.sort()
    return latencies


async def in_process_burst(n: int, recompute_ms: int) -> list[float]:
    """``n`` concurrent ``/v1/flows`` through the app in process (no HTTP), one stats record
    applied between any two steps of the event loop (a consumer with a batch always ready):
    what the flow views cost, without uvicorn's and the client's share."""
    import random

    from api.app import create_app
    from api.demo import _window, build
    from streams import topics
    from streams.settings import Settings
    from streams.stats import records as stats

    now = 1_767_225_600_000
    settings = Settings()
    model = build(settings, now_ms=now, breaches=5000, recompute_ms=recompute_ms)
    app = create_app(settings, model)
    rng, flows = random.Random(2), list(model.flows.values())

    async def churn() -> None:
        for i in range(10**9):
            flow = flows[i % len(flows)]
            minute = now // stats.MINUTE_MS
            model.apply(topics.STATS, _window(rng, flow.name, flow.target_ms, i % 8, minute, now))
            await asyncio.sleep(0)

    latencies: list[float] = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        await client.get("/v1/flows")
        task = asyncio.create_task(churn())
        t0 = time.perf_counter()

        async def one() -> None:
            await client.get("/v1/flows")
            latencies.append((time.perf_counter() - t0) * 1000.0)

        await asyncio.gather(*(one() for _ in range(n)))
        task.cancel()
    latencies.sort()
    return latencies


def in_process_main(args: argparse.Namespace) -> int:
    """Reference (recompute after every change) and the API's bound, alternating."""
    runs: list[dict[str, Any]] = []
    for _ in range(args.rounds):
        for name, recompute in (("reference_recompute_every_change", 0), ("api", RECOMPUTE)):
            lat = asyncio.run(in_process_burst(args.burst, recompute))
            runs.append({"server": name, "p50_ms": _ms(lat, 0.5), "p95_ms": _ms(lat, 0.95)})
    result = {
        "benchmark": "api_burst_in_process",
        "burst": args.burst,
        "runs": runs,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    out = ROOT / "bench" / "results" / "api_burst_in_process.json"
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0


def demo(port: int, updates_per_s: float, recompute_ms: int | None) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "api.demo", "--port", str(port)]
    argv += ["--updates-per-s", str(updates_per_s)]
    if recompute_ms is not None:
        argv += ["--recompute-ms", str(recompute_ms)]
    env = {k: v for k, v in os.environ.items() if k != "FRESHNESS_API_TOKEN"}
    return subprocess.Popen(argv, cwd=ROOT, env=env)


def burst_main(args: argparse.Namespace) -> int:
    """The API against its reference, one after the other in the same run."""
    results: dict[str, Any] = {}
    for name, recompute in (("reference_recompute_every_change", 0), ("api", None)):
        port = free_port()
        server = demo(port, args.updates_per_s, recompute)
        try:
            lat = asyncio.run(
                bursts(f"http://127.0.0.1:{port}", args.path, args.burst, args.rounds)
            )
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        results[name] = {q: _ms(lat, v) for q, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}
    ref, api = results["reference_recompute_every_change"], results["api"]
    result = {
        "benchmark": "api_burst",
        "endpoint": f"GET {args.path}",
        "burst": args.burst,
        "rounds": args.rounds,
        "updates_per_s": args.updates_per_s,
        "latency_ms": results,
        "p50_ratio_reference_over_api": round(ref["p50"] / api["p50"], 2),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    BURST_RESULT.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="benchmark this running API instead of a demo server")
    parser.add_argument("--path", default="/v1/flows")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--updates-per-s", type=float, help="stats records applied a second (16; --burst: 200)"
    )
    parser.add_argument("--token", default=os.environ.get("FRESHNESS_API_TOKEN"))
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--burst", type=int, help="N requests at once instead of a rate")
    parser.add_argument("--rounds", type=int, default=10, help="bursts measured (--burst)")
    parser.add_argument(
        "--in-process", action="store_true", help="--burst through the app in process"
    )
    args = parser.parse_args(argv)
    if args.burst and args.in_process:
        return in_process_main(args)
    if args.burst:
        args.updates_per_s = 200.0 if args.updates_per_s is None else args.updates_per_s
        return burst_main(args)
    args.updates_per_s = 16.0 if args.updates_per_s is None else args.updates_per_s

    server = None
    base = args.url
    if base is None:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if k != "FRESHNESS_API_TOKEN"}
        args.token = None
        server = subprocess.Popen(
            [sys.executable, "-m", "api.demo", "--port", str(port),
             "--updates-per-s", str(args.updates_per_s)],
            cwd=ROOT,
            env=env,
        )  # fmt: skip
    try:
        result = asyncio.run(measure(args, base))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=15)
    result["server"] = (
        f"python -m api.demo (seeded day, {args.updates_per_s}/s stats updates)"
        if args.url is None
        else args.url
    )
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    result["command"] = " ".join([Path(sys.argv[0]).as_posix(), *(argv or sys.argv[1:])])
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0 if result["goal"]["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
