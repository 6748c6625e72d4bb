"""``freshness rules prometheus`` without promtool: the rules come from the flows' alert
policies, carry the alerter's Alertmanager labels, read only what ``/metrics`` exports, and
``/metrics`` exports the alerter's own window counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import registry_for
from api.readmodel import ReadModel
from streams.alerting.evaluate import OpenOverdue, build_snapshot
from streams.alerting.rules import render, rule_groups, window_label
from streams.cli import main
from streams.connectors import alertmanager
from streams.connectors.sink import AlertEvent
from streams.flows.config import load_config, parse_config
from tests.api.records import NOW, Records, make_model
from tests.deploy.promql import exported_metrics, selected_metrics

APP_ID = "funnel-freshness"
CUSTOM = """\
flows:
  - name: custom
    start: {topic: funnel.lead.captured, key: lead_id}
    completion: {topic: funnel.posthog.ingested, key: source_id}
    target: 30s
    objective: 0.95
    alerts:
      page-fast: {factor: 10, long_window: 2h, short_window: 10m, min_bad: 3}
      page-slow: false
      stuck: {min_open: 3, after: 2m, severity: critical}
      backlog: {max_pending: 7}
"""


def _rules(text: str = CUSTOM) -> dict[str, dict[str, Any]]:
    config = parse_config(text)
    (group,) = rule_groups([config.policies["custom"]], APP_ID)["groups"]
    return {r.get("alert") or r["record"]: r for r in group["rules"]}


@pytest.mark.parametrize(
    ("ms", "label"),
    [(300_000, "5m"), (3_600_000, "1h"), (5_400_000, "1h30m"), (259_200_000, "3d"), (0, "0s")],
)
def test_windows_are_written_as_prometheus_durations(ms: int, label: str) -> None:
    assert window_label(ms) == label


def test_the_rules_follow_the_flows_alert_policy_field_by_field() -> None:
    rules = _rules()
    assert [a for a in rules if not a.startswith("freshness:")] == [
        "page-fast",
        "ticket",
        "stuck",
        "backlog",
    ]
    fast = rules["page-fast"]["expr"]
    assert 'window="2h"}) > 10\n' in fast
    assert 'window="10m"}) > 10\n' in fast
    assert fast.endswith('window="2h"}) >= 3')
    assert rules["freshness:burn_rate"]["expr"].endswith("/ 0.05")  # 1 - objective 0.95
    stuck = rules["stuck"]["expr"]
    assert 'freshness:open_breaches{flow="custom"} >= 3\n' in stuck
    assert '{flow="custom"} >= 120\n' in stuck
    assert rules["stuck"]["labels"]["severity"] == "critical"
    assert rules["backlog"]["expr"] == 'freshness:pending{flow="custom"} > 7'
    assert rules["ticket"]["labels"]["severity"] == "warning"


def test_alert_labels_are_the_alerters_alertmanager_labels() -> None:
    config = load_config(None)
    for group in rule_groups(config.policies.values(), APP_ID)["groups"]:
        for rule in (r for r in group["rules"] if "alert" in r):
            flow = group["name"].removeprefix("freshness-")
            event = AlertEvent(
                alert_id=f"{APP_ID}/{flow}/{rule['alert']}",
                version=1,
                flow=flow,
                alert=rule["alert"],
                severity=rule["labels"]["severity"],
                status="firing",
                since=0,
                updated_at=0,
                summary="",
            )
            prometheus = {"alertname": rule["alert"], "flow": flow, **rule["labels"]}
            assert prometheus == alertmanager.labels(event)


def test_every_metric_the_rules_read_is_exported_or_recorded_before() -> None:
    config = load_config(None)
    exported = exported_metrics()
    for group in rule_groups(config.policies.values(), APP_ID)["groups"]:
        recorded: set[str] = set()
        for rule in group["rules"]:
            unknown = selected_metrics(rule["expr"]) - exported - recorded - {"ALERTS"}
            assert not unknown, (group["name"], rule.get("alert") or rule["record"], unknown)
            if "record" in rule:
                recorded.add(rule["record"])


@pytest.fixture
def model() -> ReadModel:
    return make_model()


@pytest.fixture
def rec() -> Records:
    return Records()


def _samples(model: ReadModel, name: str) -> dict[tuple[str, ...], float]:
    text = generate_latest(registry_for(model, load_config(None).policies)).decode()
    out: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(s.labels.values())] = s.value
    return out


def test_metrics_export_the_alerters_window_counts_and_the_oldest_deadline(
    model: ReadModel, rec: Records
) -> None:
    model.apply("freshness.stats", rec.window([100.0, 200.0, 9_000.0], lost=1))
    model.apply("freshness.stats", rec.gauge(pending=2))
    model.apply("freshness.breaches", rec.breach("a"))
    model.apply("freshness.breaches", rec.breach("b", started_at=NOW - 10_000))
    policy = load_config(None).policies["lead_to_posthog"]
    open_ = [
        OpenOverdue(str(b["key"]), int(b["deadline"]), int(b["detected_at"]))
        for b in model.breaches.open_for("lead_to_posthog")
    ]
    want = build_snapshot(policy, model.stats["lead_to_posthog"], open_, now_ms=model.clock())
    good = _samples(model, "freshness_window_good_starts")
    bad = _samples(model, "freshness_window_bad_starts")
    for counts in want.windows:
        key = ("lead_to_posthog", window_label(counts.window_ms))
        assert good[key] == counts.outcomes.good
        assert bad[key] == counts.bad
    assert bad[("lead_to_posthog", "5m")] == 4  # one late, one lost, two open overdue
    deadline = _samples(model, "freshness_oldest_open_breach_deadline_seconds")
    assert deadline == {("lead_to_posthog",): (NOW - 55_000) / 1000}  # "a", the older


def test_freshness_rules_prometheus_writes_the_rule_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flows = tmp_path / "flows.yaml"
    flows.write_text(CUSTOM)
    out = tmp_path / "rules.yml"
    assert main(["rules", "prometheus", "--flows", str(flows), "-o", str(out)]) == 0
    config = parse_config(CUSTOM)
    assert out.read_text() == render([config.policies["custom"]], APP_ID)
    assert yaml.safe_load(out.read_text())["groups"][0]["name"] == "freshness-custom"
    assert main(["rules", "prometheus"]) == 0
    assert "freshness-dlq_first_retry" in capsys.readouterr().out
    flows.write_text(CUSTOM.replace("factor: 10", "factor: fast"))
    assert main(["rules", "prometheus", "--flows", str(flows)]) == 2
    assert "alerts.page-fast.factor" in capsys.readouterr().err
