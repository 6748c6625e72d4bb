"""``freshness rules prometheus`` checked by promtool (built by ``make promtool``).

``promtool check rules`` on the rules of the packaged flows, then ``promtool test rules``
with synthetic series of the metrics the API exports: every alert of the default policy
fires and clears; each burn tier decides what the alerter's own evaluation
(:func:`streams.alerting.evaluate.evaluate`) decides on the same counts, at the edges
(just above and at the factor, ``min_bad``, nothing judged); ``stuck`` fires exactly at
``after`` and holds until no breach is open; only caught-up API processes count.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.alerting.evaluate import FlowSnapshot, WindowCounts, evaluate
from streams.alerting.policy import AlertPolicy, BurnTier
from streams.alerting.rules import render, rule_groups, window_label
from streams.flows.config import FlowsConfig, load_config
from streams.settings import Settings
from tests.rules.support import promtool

pytestmark = pytest.mark.integration

CONFIG = load_config(None)
APP_ID = Settings.model_fields["app_id"].default
API = 'job="freshness-api", instance="api:8000"'
PHASE = 10
"""Steps per phase of a fire-and-clear test: healthy, burning, recovering."""
JUDGED = 1000


def _policies(config: FlowsConfig) -> list[AlertPolicy]:
    return [config.policies[f.name] for f in config.flows]


def _rule_file(tmp_path: Path, config: FlowsConfig = CONFIG) -> Path:
    path = tmp_path / "rules.yml"
    path.write_text(render(_policies(config), APP_ID))
    return path


def _run(tmp_path: Path, tests: list[dict[str, Any]], interval: str = "1m") -> str:
    """``promtool test rules`` of ``tests`` against the generated rules; its output."""
    rules = _rule_file(tmp_path)
    spec = {"rule_files": [rules.name], "evaluation_interval": interval, "tests": tests}
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    done = promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _series(name: str, labels: str, values: str) -> dict[str, str]:
    return {"series": f"{name}{{{labels}}}", "values": values}


def _phases(*values: float) -> str:
    """One value per phase, each held for :data:`PHASE` steps."""
    return " ".join(f"{v:g}x{PHASE - 1}" for v in values)


def _ready(values: str | None = None, labels: str = API) -> dict[str, str]:
    return _series("freshness_api_ready", labels, values or _phases(1, 1, 1))


def _window_series(
    flow: str, window_ms: int, bad: Sequence[float], judged: float = JUDGED, labels: str = API
) -> list[dict[str, str]]:
    common = f'{labels}, flow="{flow}", window="{window_label(window_ms)}"'
    good = [judged - b for b in bad]
    return [
        _series("freshness_window_good_starts", common, _phases(*good)),
        _series("freshness_window_bad_starts", common, _phases(*bad)),
    ]


def _rule(policy: AlertPolicy, alert: str) -> Mapping[str, Any]:
    (group,) = rule_groups([policy], APP_ID)["groups"]
    return next(r for r in group["rules"] if r.get("alert") == alert)


def _go_value(value: float) -> str:
    """``{{ $value }}`` as Go's template prints a float64."""
    return str(int(value)) if value == int(value) else repr(value)


def _fired(policy: AlertPolicy, alert: str, value: float) -> dict[str, Any]:
    """The alert as promtool must see it: the alerter's Alertmanager labels, the summary
    with ``value`` filled in."""
    rule = _rule(policy, alert)
    summary = str(rule["annotations"]["summary"])
    summary = summary.replace('{{ $value | printf "%.1f" }}', f"{value:.1f}")
    summary = summary.replace("{{ $value }}", _go_value(value))
    return {
        "exp_labels": {
            "flow": policy.flow,
            "severity": rule["labels"]["severity"],
            "alert_id": f"{APP_ID}/{policy.flow}/{alert}",
        },
        "exp_annotations": {**rule["annotations"], "summary": summary},
    }


def _checks(
    policy: AlertPolicy, at: str, firing: Mapping[str, float] | None = None
) -> Iterator[dict[str, Any]]:
    """At ``at``: each alert of ``policy`` in ``firing`` fires (with that value), none other."""
    firing = firing or {}
    for alert in policy.alerts:
        exp = [_fired(policy, alert, firing[alert])] if alert in firing else []
        yield {"eval_time": at, "alertname": alert, "exp_alerts": exp}


def _burning_bad(policy: AlertPolicy, tier: BurnTier, judged: int = JUDGED) -> int:
    """The fewest bad starts of ``judged`` that burn faster than the tier's factor."""
    return math.floor(tier.factor * (1 - policy.objective) * judged) + 1


def _burn(policy: AlertPolicy, bad: float, judged: float = JUDGED) -> float:
    """The burn rate as the rule computes it (with the budget the rule file prints)."""
    budget = float(f"{1 - policy.objective:.12g}")
    return bad / max(judged, 1) / budget


# ---- check rules ------------------------------------------------------------------------


def test_promtool_accepts_the_rules_of_the_packaged_flows(tmp_path: Path) -> None:
    done = promtool("check", "rules", _rule_file(tmp_path))
    count = sum(len(g["rules"]) for g in rule_groups(_policies(CONFIG), APP_ID)["groups"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {count} rules found" in done.stdout


# ---- every alert fires and clears -------------------------------------------------------


def _tier_story(policy: AlertPolicy, tier: BurnTier) -> dict[str, Any]:
    """Healthy, then both windows of ``tier`` burn just above its factor, then the short
    window recovers while the long one still burns: it must fire in the middle only."""
    bad = _burning_bad(policy, tier)
    series = [_ready()]
    for window in policy.windows_ms():
        phases = [0.0, 0.0, 0.0]
        if window in (tier.long_window_ms, tier.short_window_ms):
            phases = [0.0, bad, bad if window == tier.long_window_ms else 0.0]
        series += _window_series(policy.flow, window, phases)
    firing = {tier.name: _burn(policy, bad)}
    checks = [*_checks(policy, "5m"), *_checks(policy, "15m", firing), *_checks(policy, "25m")]
    return {
        "name": f"{policy.flow} {tier.name} fires and clears",
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": checks,
    }


def test_every_burn_tier_fires_while_both_windows_burn_and_clears_with_the_short_one(
    tmp_path: Path,
) -> None:
    policy = CONFIG.policies["lead_to_posthog"]
    assert [t.name for t in policy.tiers] == ["page-fast", "page-slow", "ticket"]
    out = _run(tmp_path, [_tier_story(policy, tier) for tier in policy.tiers])
    assert "SUCCESS" in out


def test_backlog_fires_above_max_pending_and_clears(tmp_path: Path) -> None:
    policy = CONFIG.policies["dlq_first_retry"]
    assert policy.backlog is not None
    limit = policy.backlog.max_pending
    labels = f'{API}, flow="{policy.flow}"'
    story = {
        "name": "dlq_first_retry backlog",
        "interval": "1m",
        "input_series": [
            _ready(),
            _series("freshness_pending", labels, _phases(limit, limit + 1, 10)),
        ],
        "alert_rule_test": [
            *_checks(policy, "5m"),
            *_checks(policy, "15m", {"backlog": limit + 1}),
            *_checks(policy, "25m"),
        ],
    }
    _run(tmp_path, [story])


def test_stuck_fires_at_after_and_holds_until_no_breach_is_open(tmp_path: Path) -> None:
    """lead_to_posthog (stuck after its 5 s target), one-second steps: a breach with its
    deadline at 10 s is open from 10 s; at 20 s it closes and a younger one (deadline
    19 s) is the oldest; none is open from 30 s."""
    policy = CONFIG.policies["lead_to_posthog"]
    assert policy.stuck is not None
    assert policy.stuck.after_ms == 5_000
    labels = f'{API}, flow="{policy.flow}"'
    story = {
        "name": "lead_to_posthog stuck",
        "interval": "1s",
        "input_series": [
            _ready(_phases(1, 1, 1, 1)),
            _series("freshness_open_breaches", labels, _phases(0, 1, 1, 0)),
            _series("freshness_oldest_open_breach_deadline_seconds", labels, "_x9 10x9 19x9 _x9"),
        ],
        "alert_rule_test": [
            *_checks(policy, "9s"),
            *_checks(policy, "14s"),  # 4 s past the deadline
            *_checks(policy, "15s", {"stuck": 1}),  # exactly after
            *_checks(policy, "21s", {"stuck": 1}),  # oldest only 2 s past: still firing
            *_checks(policy, "30s"),  # none open: resolved
            *_checks(policy, "35s"),
        ],
    }
    _run(tmp_path, [story], interval="1s")


# ---- burn tiers decide as the alerter does ----------------------------------------------


def _alerter_holds(
    policy: AlertPolicy, tier: BurnTier, counts: Mapping[int, tuple[int, int]]
) -> bool:
    """The alerter's verdict on ``counts`` (window -> (good, bad)), by its own code."""
    windows = tuple(
        WindowCounts(w, 0, 0, on_time=counts.get(w, (0, 0))[0], late=counts.get(w, (0, 0))[1])
        for w in policy.windows_ms()
    )
    snapshot = FlowSnapshot(policy.flow, 0, windows)
    (cond,) = [c for c in evaluate(policy, snapshot, 0) if c.alert == tier.name]
    return cond.holds


def _edge_cases(policy: AlertPolicy, tier: BurnTier) -> Iterator[tuple[str, int, int, int, int]]:
    """(name, long bad, long judged, short bad, short judged) around the tier's edges."""
    above, at = _burning_bad(policy, tier), _burning_bad(policy, tier) - 1
    yield "both just above", above, JUDGED, above, JUDGED
    yield "long at the factor", at, JUDGED, above, JUDGED
    yield "short at the factor", above, JUDGED, at, JUDGED
    yield "min_bad - 1, burning hard", tier.min_bad - 1, tier.min_bad, 1, 1
    yield "exactly min_bad, burning hard", tier.min_bad, tier.min_bad, 1, 1
    yield "nothing judged", 0, 0, 0, 0


def _edge_test(
    policy: AlertPolicy, tier: BurnTier, case: tuple[str, int, int, int, int]
) -> dict[str, Any]:
    name, long_bad, long_n, short_bad, short_n = case
    counts = {
        tier.long_window_ms: (long_n - long_bad, long_bad),
        tier.short_window_ms: (short_n - short_bad, short_bad),
    }
    series = [_ready()]
    for window in policy.windows_ms():
        good, bad = counts.get(window, (0, 0))
        series += _window_series(policy.flow, window, [bad] * 3, judged=good + bad)
    holds = _alerter_holds(policy, tier, counts)
    firing = {tier.name: _burn(policy, long_bad, long_n)} if holds else {}
    return {
        "name": f"{tier.name}: {name} (alerter: {'fires' if holds else 'quiet'})",
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            c for c in _checks(policy, "3m", firing) if c["alertname"] == tier.name
        ],
    }


def test_burn_tiers_decide_as_the_alerters_evaluation_at_every_edge(tmp_path: Path) -> None:
    policy = CONFIG.policies["payment_to_posthog"]
    tests = [_edge_test(policy, t, case) for t in policy.tiers for case in _edge_cases(policy, t)]
    verdicts = [t["name"] for t in tests]
    assert sum("fires" in v for v in verdicts) == 2 * len(policy.tiers), verdicts
    _run(tmp_path, tests)


# ---- only caught-up API processes count -------------------------------------------------


def test_only_caught_up_api_processes_count_and_replicas_give_one_alert(tmp_path: Path) -> None:
    policy = CONFIG.policies["lead_to_posthog"]
    fast = policy.tiers[0]
    bad = _burning_bad(policy, fast)
    other = 'job="freshness-api", instance="api-2:8000"'

    def burning(labels: str) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for window in policy.windows_ms():
            b = bad if window in (fast.long_window_ms, fast.short_window_ms) else 0
            out += _window_series(policy.flow, window, [b] * 3, labels=labels)
        return out

    not_ready = {
        "name": "an API process still reading counts for nothing",
        "interval": "1m",
        "input_series": [_ready(_phases(0, 0, 0)), *burning(API)],
        "alert_rule_test": list(_checks(policy, "15m")),
    }
    replicas = {
        "name": "two caught-up API processes: one alert",
        "interval": "1m",
        "input_series": [_ready(), _ready(labels=other), *burning(API), *burning(other)],
        "alert_rule_test": list(_checks(policy, "15m", {fast.name: _burn(policy, bad)})),
    }
    _run(tmp_path, [not_ready, replicas])
