"""/metrics: Prometheus names, units, buckets around each flow's target, values."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import bucket_edges
from api.readmodel import ReadModel
from tests.api.records import NOW, Records


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
