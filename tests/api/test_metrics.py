"""/metrics: Prometheus names, units, buckets around each flow's target, values."""

from __future__ import annotations

import random
from typing import Any

import httpx
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import bucket_edges, registry_for
from api.readmodel import ReadModel
from tests.api.records import FLOWS, NOW, Records


async def scrape(client: httpx.AsyncClient) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


async def test_metric_names_and_values(
    model: ReadModel, rec: Records, client: httpx.AsyncClient
) -> None:
    lags = [100.0, 1_000.0, 4_000.0, 6_000.0, 20_000.0, -50.0]
    model.apply("freshness.stats", rec.window(lags, lost=2))
    model.apply(
        "freshness.stats",
        rec.gauge(pending=4, oldest_pending_started_at=NOW - 12_000, monitor_lag_ms=1_500),
    )
    model.apply("freshness.breaches", rec.breach("a"))
    for offset, reason in ((1, "not_json"), (2, "not_json"), (2, "not_json"), (3, "too_large")):
        model.apply("freshness.quarantine", rec.quarantine(offset, reason))
    m = await scrape(client)
    lead = (("flow", "lead_to_posthog"),)
    assert m["freshness_on_time_total"][lead] == 4
    assert m["freshness_late_total"][lead] == 2
    assert m["freshness_lost_total"][lead] == 2
    assert m["freshness_clock_skew_total"][lead] == 1
    assert m["freshness_open_breaches"][lead] == 1
    assert m["freshness_pending"][lead] == 4
    assert m["freshness_oldest_pending_age_seconds"][lead] == 12.0
    assert m["freshness_monitor_lag_seconds"][lead] == 1.5
    assert m["freshness_quarantined_records_total"] == {
        (("reason", "not_json"),): 2,
        (("reason", "too_large"),): 1,
    }
    assert m["freshness_lag_seconds_count"][lead] == 6
    buckets = {
        dict(k)["le"]: v
        for k, v in m["freshness_lag_seconds_bucket"].items()
        if dict(k)["flow"] == "lead_to_posthog"
    }
    assert buckets["5.0"] == 4  # -0.05, 0.1, 1, 4 s are within the 5 s target
    assert buckets["2.5"] == 3
    assert buckets["+Inf"] == 6
    assert m["freshness_flow_status"][(("flow", "lead_to_posthog"), ("status", "breaching"))] == 1


async def test_buckets_are_placed_around_each_flows_target(client: httpx.AsyncClient) -> None:
    m = await scrape(client)
    les: dict[str, list[str]] = {}
    for labels in m["freshness_lag_seconds_bucket"]:
        d = dict(labels)
        les.setdefault(d["flow"], []).append(d["le"])
    assert "5.0" in les["lead_to_posthog"]
    assert "60.0" in les["dlq_first_retry"]
    assert bucket_edges(60_000)[0] == 6.0
    assert bucket_edges(60_000)[-1] == 1800.0
    assert les["lead_to_posthog"] != les["dlq_first_retry"]


def _counter_samples(model: ReadModel) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every counter sample and every histogram bucket and count of one ``/metrics`` scrape."""
    text = generate_latest(registry_for(model)).decode()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            counted = (family.type == "counter" and s.name.endswith("_total")) or (
                family.type == "histogram" and s.name.endswith(("_bucket", "_count"))
            )
            if counted:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counters_and_histogram_never_decrease_over_more_than_a_day(rec: Records) -> None:
    """26 h of minutes from two partitions, with the worker's tombstones at expiry (25 h)
    and a smaller (replayed) record replacing a larger one: no sample ever goes down."""
    rng = random.Random(4)
    clock = [NOW]
    model = ReadModel(FLOWS, stats_interval_ms=2_000, clock=lambda: clock[0])
    first = NOW // 60_000
    published: dict[tuple[int, int], dict[str, Any]] = {}
    want = {"on_time": 0, "late": 0, "lost": 0, "clock_skew": 0, "count": 0}
    previous = _counter_samples(model)
    scrapes = 0

    def scrape_and_check() -> None:
        nonlocal previous, scrapes
        now = _counter_samples(model)
        for sample, value in previous.items():
            assert now.get(sample, 0.0) >= value, (sample, value, now.get(sample))
        previous, scrapes = now, scrapes + 1

    for m in range(first, first + 26 * 60):
        clock[0] = (m + 1) * 60_000
        expired = [slot for slot in published if slot[1] < m + 1 - 25 * 60]
        for p, minute in expired:  # the worker prunes first, then publishes (_publish_stats)
            model.apply_raw(
                "freshness.stats", f"window:lead_to_posthog:{p}:{minute}".encode(), None
            )
            del published[(p, minute)]
        for p in (0, 1):
            lags = [rng.choice((-40.0, 300.0, 4_000.0, 6_000.0, 40_000.0)) for _ in range(6)]
            partial = rec.window(lags[:3], partition=p, minute=m, updated_at=clock[0])
            full = rec.window(lags, partition=p, minute=m, lost=m % 3, updated_at=clock[0])
            model.apply("freshness.stats", partial)
            model.apply("freshness.stats", full)
            for name in want:
                want[name] += full[name]
            published[(p, m)] = partial
        if m == first + 700:  # a worker restarted from older state re-sends smaller records
            for older in list(published.values())[-20:]:
                model.apply("freshness.stats", older)
            scrape_and_check()
        model.apply("freshness.stats", rec.gauge(watermark_ms=clock[0] - 1, updated_at=clock[0]))
        if m % 7 == 0 or expired:
            scrape_and_check()
    scrape_and_check()
    assert scrapes > 200
    lead = (("flow", "lead_to_posthog"),)
    for name in ("on_time", "late", "lost", "clock_skew"):  # every published outcome, once
        assert previous[(f"freshness_{name}_total", lead)] == want[name]
    assert previous[("freshness_lag_seconds_count", lead)] == want["count"]
