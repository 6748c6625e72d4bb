"""deploy/grafana/freshness.json: every PromQL expression parses, selects only metrics the
API exports, and (with promtool) Prometheus parses it too and it returns series on the
metrics of the seeded demo read model; the panels cover what the issue names."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from api import demo
from api.metrics import registry_for
from api.readmodel import ReadModel
from streams import topics
from streams.alerting.records import AlertState, SinkCounts, encode_alert, encode_progress
from streams.connectors.sink import AlertEvent
from streams.flows.config import load_config
from streams.settings import Settings
from tests.deploy.promql import expand_grafana, exported_metrics, selected_metrics
from tests.rules.support import ROOT, promtool

DASHBOARD = ROOT / "deploy" / "grafana" / "freshness.json"
NOW = 1_767_225_600_000
LABEL_VALUES = re.compile(r"^label_values\((?P<metric>[a-zA-Z_:][\w:]*),\s*(?P<label>\w+)\)$")
COVERED = {
    "lag percentiles": "freshness_lag_seconds_bucket",
    "the target": "freshness_target_seconds",
    "on-time ratio": "freshness_on_time_total",
    "the objective": "freshness_objective_ratio",
    "error budget": "freshness_error_budget_remaining_ratio",
    "burn rate per window": "freshness_window_bad_starts",
    "open breaches": "freshness_open_breaches",
    "monitor lag": "freshness_monitor_lag_seconds",
    "quarantine rate": "freshness_quarantined_records_total",
    "alert deliveries": "freshness_alert_deliveries_total",
    "firing alerts": "freshness_alerts_firing",
}


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(DASHBOARD.read_bytes())
    return loaded


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        yield p
        yield from _panels(p.get("panels", []))


def _variables() -> dict[str, str]:
    """Each template variable as the regex of "All" (what Grafana sends when all are on)."""
    return {f"${v['name']}": v.get("allValue", ".*") for v in _dashboard()["templating"]["list"]}


def _exprs() -> list[tuple[str, str]]:
    """(panel title, expression with Grafana's variables filled in)."""
    variables = _variables()
    return [
        (panel["title"], expand_grafana(target["expr"], variables))
        for panel in _panels(_dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def test_every_expression_parses_and_selects_only_exported_metrics() -> None:
    exprs = _exprs()
    assert len(exprs) >= 20
    exported = exported_metrics()
    for title, expr in exprs:
        unknown = selected_metrics(expr) - exported
        assert not unknown, f"{title}: {unknown} not in /metrics"


def test_a_misspelt_metric_or_a_broken_expression_is_caught() -> None:
    assert selected_metrics("rate(freshness_late_totl[5m])") - exported_metrics() == {
        "freshness_late_totl"
    }
    with pytest.raises(ValueError, match="unclosed left parenthesis"):
        selected_metrics("sum by (flow (rate(freshness_late_total[5m]))")


def test_the_flow_variable_lists_flows_from_an_exported_metric() -> None:
    (var,) = _dashboard()["templating"]["list"]
    match = LABEL_VALUES.match(var["query"]["query"])
    assert match is not None
    assert match["metric"] in exported_metrics()
    assert match["label"] == "flow"
    assert var["datasource"]["uid"] == "prometheus"


def test_the_panels_cover_the_operators_questions() -> None:
    used = set().union(*(selected_metrics(e) for _, e in _exprs()))
    missing = {what: metric for what, metric in COVERED.items() if metric not in used}
    assert not missing


def test_panels_have_unique_ids_fit_the_grid_and_use_the_provisioned_source() -> None:
    provisioned = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]["uid"]
    panels = list(_panels(_dashboard()["panels"]))
    assert len({p["id"] for p in panels}) == len(panels)
    for p in panels:
        grid = p["gridPos"]
        assert grid["x"] >= 0, p["title"]
        assert grid["x"] + grid["w"] <= 24, p["title"]
        if p["type"] != "row":
            assert p["datasource"]["uid"] == provisioned, p["title"]
            assert p["targets"], p["title"]
            assert p.get("description"), p["title"]


# ---- with promtool ----------------------------------------------------------------------


def _rules_of_the_dashboard(tmp_path: Path) -> tuple[Path, list[str]]:
    """Each expression as a recording rule ``dashboard:expr_<i>`` (promtool's parser)."""
    names = [f"dashboard:expr_{i}" for i in range(len(_exprs()))]
    rules = [{"record": n, "expr": e} for n, (_, e) in zip(names, _exprs(), strict=True)]
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    return path, names


def _series_of_the_seeded_api() -> list[dict[str, str]]:
    """The seeded demo's /metrics as promtool input series, 11 one-minute steps: gauges
    hold their value, counters (and histogram parts) grow by one a step."""
    settings = Settings()
    model = demo.build(settings, now_ms=NOW, breaches=200)
    _seed_alerts(model)
    text = generate_latest(registry_for(model, load_config(None).policies)).decode()
    series = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = {**s.labels, "job": "freshness-api", "instance": "api:8000"}
            matchers = ", ".join(f"{k}={orjson.dumps(v).decode()}" for k, v in labels.items())
            grows = family.type in ("counter", "histogram")
            values = f"{s.value:g}+1x10" if grows else f"{s.value:g}x10"
            series.append({"series": f"{s.name}{{{matchers}}}", "values": values})
    return series


def _seed_alerts(model: ReadModel) -> None:
    """A firing alert and an Alertmanager sink's counts, as the alerter writes them."""
    event = AlertEvent(
        alert_id="funnel-freshness/lead_to_posthog/stuck",
        version=0,
        flow="lead_to_posthog",
        alert="stuck",
        severity="error",
        status="firing",
        since=NOW,
        updated_at=NOW,
        summary="lead_to_posthog: 1 entity stuck",
    )
    model.apply_raw(topics.ALERTS, *encode_alert(AlertState(event, ("alertmanager",))), offset=3)
    counts = SinkCounts("alertmanager", delivered=4, resent=2, updated_at=NOW)
    model.apply_raw(topics.ALERT_DELIVERIES, *encode_progress(counts))


@pytest.mark.integration
def test_prometheus_parses_every_expression_and_each_returns_series(tmp_path: Path) -> None:
    rules, names = _rules_of_the_dashboard(tmp_path)
    checked = promtool("check", "rules", "--lint=none", rules)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tests = {
        "rule_files": [rules.name],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": _series_of_the_seeded_api(),
                "promql_expr_test": [
                    {
                        "expr": f"count({name}) > bool 0",
                        "eval_time": "10m",
                        "exp_samples": [{"labels": "{}", "value": 1}],
                    }
                    for name in names
                ],
            }
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    done = promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
