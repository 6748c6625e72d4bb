"""Flow definitions: the packaged default, and a clear message for each kind of bad file."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from streams.alerting.policy import BacklogRule, BurnTier, StuckRule, default_policy
from streams.core.model import CompletionFilter
from streams.errors import ConfigError
from streams.flows.config import (
    flow_topics,
    load_config,
    load_flows,
    parse_config,
    parse_duration,
    parse_filter,
    parse_flows,
    parse_path,
)
from streams.topics import INPUT_TOPICS

GOOD = """
flows:
  - name: lead_to_posthog
    start: {topic: funnel.lead.captured, key: lead_id}
    completion:
      {topic: funnel.posthog.ingested, key: source_id, filter: 'source == "lead.captured"'}
    target: 5s
"""


def test_default_has_the_four_flows_of_the_design() -> None:
    flows = {f.name: f for f in load_flows(None)}
    assert {n: f.target_ms for n, f in flows.items()} == {
        "lead_to_posthog": 5_000,
        "payment_to_posthog": 10_000,
        "dlq_first_retry": 60_000,
        "approval_to_notification": 300_000,
    }
    assert all(f.objective == 0.99 and f.give_up_after_ms == 86_400_000 for f in flows.values())
    lead = flows["lead_to_posthog"]
    assert (lead.start_topic, lead.start_key) == ("funnel.lead.captured", ("lead_id",))
    assert (lead.end_topic, lead.end_key) == ("funnel.posthog.ingested", ("source_id",))
    accepted = (CompletionFilter(("stage",), "==", "accepted"),)
    assert lead.end_filter == CompletionFilter(("source",), "==", "lead.captured", accepted)
    assert flows["payment_to_posthog"].end_filter == CompletionFilter(
        ("source",), "==", "payment.webhook_received", accepted
    )
    assert flows["dlq_first_retry"].end_filter is None
    assert flows["approval_to_notification"].end_key == ("approval_id",)
    assert set(flow_topics(flows.values())) == set(INPUT_TOPICS)


def test_defaults_and_custom_paths(tmp_path: Path) -> None:
    path = tmp_path / "flows.yaml"
    path.write_text(
        """
flows:
  - name: nested
    start: {topic: a.start, key: payload.lead.id, time: meta.ts}
    completion: {topic: a.done, key: [payload, "lead.id"]}
    target: 1m30s
    objective: 0.999
    give_up_after: 2h
"""
    )
    (flow,) = load_flows(path)
    assert flow.start_key == ("payload", "lead", "id")
    assert flow.end_key == ("payload", "lead.id")
    assert flow.start_time == ("meta", "ts")
    assert flow.end_time == ("occurred_at",)
    assert (flow.target_ms, flow.objective, flow.give_up_after_ms) == (
        90_000,
        0.999,
        7_200_000,
    )
    (plain,) = parse_flows(GOOD)
    assert plain.objective == 0.99
    assert plain.give_up_after_ms == 86_400_000


def test_flow_topics_sorted_unique() -> None:
    assert flow_topics(load_flows(None)) == tuple(sorted(set(INPUT_TOPICS)))
    assert flow_topics(()) == ()


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("250ms", 250),
        ("5s", 5_000),
        ("1m30s", 90_000),
        ("5m", 300_000),
        ("24h", 86_400_000),
        ("1d", 86_400_000),
        ("1h1m1s1ms", 3_661_001),
        (" 60s ", 60_000),
    ],
)
def test_parse_duration(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["", "5", "5x", "s", "1s1m", "0s", "1.5s", "-1s", "5 s", "5mss"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a duration|must be longer than zero"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'source == "lead.captured"',
            CompletionFilter(("source",), "==", "lead.captured"),
        ),
        ('meta.kind!="x"', CompletionFilter(("meta", "kind"), "!=", "x")),
        ("attempt == 1", CompletionFilter(("attempt",), "==", 1)),
        ('source in ["a", "b"]', CompletionFilter(("source",), "in", ("a", "b"))),
        ("ok == true", CompletionFilter(("ok",), "==", True)),
        (
            'source == "lead.captured" and stage == "accepted"',
            CompletionFilter(
                ("source",),
                "==",
                "lead.captured",
                (CompletionFilter(("stage",), "==", "accepted"),),
            ),
        ),
        (
            'note == "this and that" and tag in ["x and y"]  and  n != 2',
            CompletionFilter(
                ("note",),
                "==",
                "this and that",
                (CompletionFilter(("tag",), "in", ("x and y",)), CompletionFilter(("n",), "!=", 2)),
            ),
        ),
    ],
)
def test_parse_filter(text: str, expected: CompletionFilter) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "source",
        "source = 'x'",
        "source == lead.captured",
        'source in "a"',
        "x == [1]",
        'a..b == "x"',
        'source in [["a"]]',
        "",
        'source == "a" and',
        'source == "a" and and b == 1',
        'and source == "a"',
        'source == "a" and stage = "x"',
    ],
)
def test_parse_filter_refuses(text: str) -> None:
    problems = r"not a filter|not a field path|not a JSON literal|list of literals|single literal"
    with pytest.raises(ValueError, match=problems):
        parse_filter(text)


def test_parse_path() -> None:
    assert parse_path("a") == ("a",)
    assert parse_path("payload.lead.id") == ("payload", "lead", "id")
    for bad in ("", ".a", "a.", "a..b", "a. b"):
        with pytest.raises(ValueError, match="not a field path"):
            parse_path(bad)


FLOW = """
flows:
  - name: lead_to_posthog
    start: {{topic: funnel.lead.captured, key: lead_id}}
    completion: {{topic: funnel.posthog.ingested, key: source_id{filter}}}
    target: {target}
{extra}"""


def _flow(target: str = "5s", filter: str = "", extra: str = "") -> str:
    return FLOW.format(target=target, filter=filter, extra=extra)


BAD_FILES = [
    pytest.param(
        _flow(target="5x"),
        "flows.yaml: flow 'lead_to_posthog': field 'target': '5x' is not a duration "
        "(use e.g. 250ms, 5s, 1m30s, 24h)",
        id="bad-duration",
    ),
    pytest.param(
        _flow(target="5"),
        "flows.yaml: flow 'lead_to_posthog': field 'target': 5 is not a duration; give a unit",
        id="duration-without-unit",
    ),
    pytest.param(
        _flow(extra="    tagret: 5s\n"),
        "flows.yaml: flow 'lead_to_posthog': field 'tagret': unknown field (did you mean 'target'?",
        id="unknown-field",
    ),
    pytest.param(
        _flow(filter=", filtre: 'a == 1'"),
        "flows.yaml: flow 'lead_to_posthog': field 'completion.filtre': unknown field "
        "(did you mean 'filter'?",
        id="unknown-nested-field",
    ),
    pytest.param(
        _flow() + _flow().replace("flows:\n", ""),
        "flows.yaml: flow 'lead_to_posthog': field 'name': "
        "duplicate flow name (flow #1 has it too)",
        id="duplicate-name",
    ),
    pytest.param(
        "flows:\n  - name: f\n    start: {key: id}\n    completion: {topic: b, key: id}\n"
        "    target: 5s\n",
        "flows.yaml: flow 'f': field 'start.topic': missing; name the Kafka topic",
        id="missing-topic",
    ),
    pytest.param(
        "flows:\n  - name: f\n    start: {topic: a}\n    completion: {topic: b, key: id}\n"
        "    target: 5s\n",
        "flows.yaml: flow 'f': field 'start.key': missing",
        id="missing-key",
    ),
    pytest.param(
        "flows:\n  - name: f\n    start: {topic: a, key: id}\n    target: 5s\n",
        "flows.yaml: flow 'f': field 'completion': missing",
        id="missing-completion",
    ),
    pytest.param(
        "flows:\n  - name: f\n    start: {topic: a, key: id}\n"
        "    completion: {topic: b, key: id}\n",
        "flows.yaml: flow 'f': field 'target': missing",
        id="missing-target",
    ),
    pytest.param(
        _flow(filter=", filter: 'source = \"x\"'"),
        "flows.yaml: flow 'lead_to_posthog': field 'completion.filter': 'source = \"x\"' "
        "is not a filter",
        id="bad-filter-op",
    ),
    pytest.param(
        _flow(filter=", filter: 'source == lead.captured'"),
        "flows.yaml: flow 'lead_to_posthog': field 'completion.filter': 'source == lead.captured': "
        "value lead.captured is not a JSON literal",
        id="bad-filter-value",
    ),
    pytest.param(
        "flows: [\n",
        "flows.yaml: not valid YAML: ",
        id="unreadable-yaml",
    ),
    pytest.param(
        _flow(extra="    give_up_after: 5s\n"),
        "flows.yaml: flow 'lead_to_posthog': field 'give_up_after': "
        "5s must be longer than target 5s",
        id="give-up-not-after-target",
    ),
    pytest.param(
        _flow(target="25h"),
        "flows.yaml: flow 'lead_to_posthog': field 'give_up_after': "
        "24h (the default) must be longer",
        id="target-beyond-default-give-up",
    ),
    pytest.param(
        _flow(extra="    objective: 99\n"),
        "flows.yaml: flow 'lead_to_posthog': field 'objective': "
        "99 must be a number between 0 and 1",
        id="bad-objective",
    ),
    pytest.param(
        _flow(extra="    objective: true\n"),
        "field 'objective': True must be a number between 0 and 1",
        id="bool-objective",
    ),
    pytest.param(
        "flows:\n  - name: 'a:b'\n",
        "flows.yaml: flow #1: field 'name': 'a:b' is not a flow name",
        id="bad-name",
    ),
    pytest.param(
        "flows:\n  - start: {topic: a, key: id}\n",
        "flows.yaml: flow #1: field 'name': missing; give the flow a unique name",
        id="missing-name",
    ),
    pytest.param(
        "flows:\n  - name: f\n    start: {topic: 'a b', key: id}\n"
        "    completion: {topic: b, key: id}\n    target: 5s\n",
        "flows.yaml: flow 'f': field 'start.topic': 'a b' is not a Kafka topic name",
        id="bad-topic",
    ),
    pytest.param(
        "flows:\n  - name: f\n    start: {topic: a, key: id}\n    completion: {topic: a, key: id}\n"
        "    target: 5s\n",
        "flows.yaml: flow 'f': field 'completion.filter': start and completion read the same topic",
        id="same-topic-without-filter",
    ),
    pytest.param(
        "flows:\n  - name: f\n    start: {topic: a, key: 'x..y'}\n"
        "    completion: {topic: b, key: id}\n    target: 5s\n",
        "flows.yaml: flow 'f': field 'start.key': 'x..y' is not a field path",
        id="bad-path",
    ),
    pytest.param(
        "flows:\n  - name: f\n    name: g\n",
        "flows.yaml: not valid YAML: field 'name' given twice at line 3",
        id="duplicate-yaml-key",
    ),
    pytest.param("flows: []\n", "flows.yaml: 'flows' must be a non-empty list", id="empty"),
    pytest.param("- a\n", "flows.yaml: expected a mapping with a 'flows:' list", id="not-mapping"),
    pytest.param(
        GOOD + "version: 2\n",
        "flows.yaml: unknown top-level field 'version'",
        id="unknown-top",
    ),
    pytest.param("flows:\n  - 3\n", "flows.yaml: flow #1: expected a mapping, got int", id="item"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_bad_file_names_file_flow_and_field(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "flows.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_flows(tmp_path / "flows.yaml")
    got = str(info.value)
    assert got.startswith(str(tmp_path) + "/"), got
    assert message in got, got


def test_message_names_the_file_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("flows.yaml").write_text(_flow(target="5x"))
    with pytest.raises(ConfigError) as info:
        load_flows(Path("flows.yaml"))
    assert str(info.value) == (
        "flows.yaml: flow 'lead_to_posthog': field 'target': '5x' is not a duration "
        "(use e.g. 250ms, 5s, 1m30s, 24h)"
    )


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the flows file"):
        load_flows(tmp_path / "absent.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match=r"bin\.yaml: cannot read the flows file"):
        load_flows(tmp_path / "bin.yaml")


DOCS = Path(__file__).resolve().parents[3] / "docs" / "flows.md"


def test_docs_examples_load_and_match_what_they_say() -> None:
    text = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- flows-example -->\n```yaml\n(.*?)```", text, re.DOTALL)
    assert len(blocks) == 2
    first, second = (parse_flows(b, "docs/flows.md") for b in blocks)
    assert first == tuple(f for f in load_flows(None) if f.name == "lead_to_posthog")
    order, invoice = second
    assert order.end_key == ("order", "id")
    assert order.end_time == ("sent_at",)
    assert invoice.start_topic == order.end_topic
    assert invoice.end_filter == CompletionFilter(
        ("status",), "in", ("settled", "partially_settled")
    )
    assert (invoice.target_ms, invoice.give_up_after_ms) == (3 * 86_400_000, 30 * 86_400_000)


def test_every_comparison_joined_by_and_must_hold() -> None:
    flt = parse_filter('source == "lead.captured" and stage == "accepted"')
    assert flt.matches({"source": "lead.captured", "stage": "accepted"})
    assert not flt.matches({"source": "lead.captured", "stage": "delivered"})
    assert not flt.matches({"source": "lead.captured"})
    assert not flt.matches({"source": "payment.webhook_received", "stage": "accepted"})


def test_not_equal_filter_needs_the_field() -> None:
    flt = parse_filter('source != "test"')
    assert flt.matches({"source": "live"})
    assert not flt.matches({"source": "test"})
    assert not flt.matches({})


# ---- alerts: ----------------------------------------------------------------------------


def _alerts(body: str, name: str = "lead_to_posthog") -> str:
    """A one-flow file whose flow has ``alerts:`` with ``body`` (indented lines)."""
    return _flow().replace("lead_to_posthog", name) + "    alerts:\n" + body


def test_every_flow_has_a_policy_and_absent_alerts_give_the_defaults() -> None:
    config = load_config(None)
    assert [f.name for f in config.flows] == list(config.policies)
    for flow in config.flows:
        assert config.policies[flow.name] == default_policy(flow)
    (flow,) = parse_flows(GOOD)
    assert parse_config(GOOD).policies == {flow.name: default_policy(flow)}
    assert parse_config(_flow(extra="    alerts: {}\n")).policies["lead_to_posthog"] == (
        default_policy(flow)
    )


def test_every_window_factor_severity_and_route_is_configurable() -> None:
    text = _alerts(
        "      page-fast: {factor: 10, long_window: 2h, short_window: 10m, min_bad: 3,\n"
        "                  severity: error, routes: [pagerduty]}\n"
        "      page-slow: {factor: 4.5, long_window: 12h, short_window: 1h,\n"
        "                  severity: warning, routes: []}\n"
        "      ticket: {factor: 1.5, long_window: 1d, short_window: 2h, min_bad: 20,\n"
        "               severity: info, routes: [webhook]}\n"
        "      stuck: {min_open: 3, after: 2m, severity: critical, routes: [alertmanager]}\n"
        "      backlog: {max_pending: 1000, severity: info, routes: [webhook, pagerduty]}\n"
    )
    policy = parse_config(text).policies["lead_to_posthog"]
    assert policy.tiers == (
        BurnTier("page-fast", 10.0, 2 * 3_600_000, 600_000, "error", frozenset({"pagerduty"}), 3),
        BurnTier("page-slow", 4.5, 12 * 3_600_000, 3_600_000, "warning", frozenset(), 5),
        BurnTier("ticket", 1.5, 86_400_000, 7_200_000, "info", frozenset({"webhook"}), 20),
    )
    assert policy.stuck == StuckRule(120_000, 3, "critical", frozenset({"alertmanager"}))
    assert policy.backlog == BacklogRule(1000, "info", frozenset({"webhook", "pagerduty"}))


def test_a_field_given_replaces_only_that_field() -> None:
    policy = parse_config(
        _alerts("      page-fast: {factor: 20}\n      stuck: {after: 1m}\n")
    ).policies["lead_to_posthog"]
    base = default_policy(parse_flows(GOOD)[0])
    assert policy.tiers[0] == dataclasses.replace(base.tiers[0], factor=20.0)
    assert policy.tiers[1:] == base.tiers[1:]
    assert policy.stuck == dataclasses.replace(base.stuck, after_ms=60_000)  # type: ignore[type-var]


def test_alerts_can_be_switched_off_and_backlog_on() -> None:
    text = _alerts(
        "      page-slow: false\n      ticket: {enabled: false, factor: 2}\n"
        "      stuck: {enabled: false}\n      backlog: {max_pending: 7}\n"
    )
    policy = parse_config(text).policies["lead_to_posthog"]
    assert policy.alerts == ("page-fast", "backlog")
    assert policy.backlog == BacklogRule(7)
    dlq = parse_config(_alerts("      backlog: false\n", name="dlq_first_retry"))
    assert dlq.policies["dlq_first_retry"].backlog is None
    dlq = parse_config(_alerts("      backlog: {severity: error}\n", name="dlq_first_retry"))
    assert dlq.policies["dlq_first_retry"].backlog == BacklogRule(
        50, "error", frozenset({"alertmanager", "webhook"})
    )


def _bad_alerts(body: str, field: str, problem: str, id: str) -> object:
    return pytest.param(
        _alerts(body), f"flows.yaml: flow 'lead_to_posthog': field '{field}': {problem}", id=id
    )


BAD_ALERTS = [
    pytest.param(
        _flow(extra="    alerts: [page-fast]\n"),
        "flows.yaml: flow 'lead_to_posthog': field 'alerts': expected a mapping of alert names",
        id="alerts-not-mapping",
    ),
    _bad_alerts(
        "      page-fats: {}\n",
        "alerts.page-fats",
        "unknown field (did you mean 'page-fast'?",
        "unknown-alert",
    ),
    _bad_alerts(
        "      page-fast: {factr: 2}\n",
        "alerts.page-fast.factr",
        "unknown field (did you mean 'factor'?",
        "unknown-tier-field",
    ),
    _bad_alerts(
        "      page-fast: {factor: fast}\n",
        "alerts.page-fast.factor",
        "'fast' must be a number greater than 0",
        "factor-not-number",
    ),
    _bad_alerts(
        "      page-slow: {factor: 0}\n",
        "alerts.page-slow.factor",
        "0 must be a number greater than 0",
        "factor-zero",
    ),
    _bad_alerts(
        "      ticket: {factor: true}\n",
        "alerts.ticket.factor",
        "True must be a number",
        "factor-bool",
    ),
    _bad_alerts(
        "      page-fast: {long_window: 1hour}\n",
        "alerts.page-fast.long_window",
        "'1hour' is not a duration",
        "window-not-duration",
    ),
    _bad_alerts(
        "      page-fast: {short_window: 90s}\n",
        "alerts.page-fast.short_window",
        "'90s' must be a whole number of minutes",
        "window-not-minutes",
    ),
    _bad_alerts(
        "      ticket: {long_window: 31d}\n",
        "alerts.ticket.long_window",
        "'31d' must be a whole number of minutes, at most 30d",
        "window-too-long",
    ),
    _bad_alerts(
        "      page-fast: {short_window: 1h}\n",
        "alerts.page-fast.short_window",
        "must be shorter than long_window",
        "short-not-shorter",
    ),
    _bad_alerts(
        "      page-fast: {min_bad: 0}\n",
        "alerts.page-fast.min_bad",
        "0 must be a whole number of at least 1",
        "min-bad-zero",
    ),
    _bad_alerts(
        "      page-fast: {severity: sev1}\n",
        "alerts.page-fast.severity",
        "'sev1' is not one of critical, error, warning, info",
        "bad-severity",
    ),
    _bad_alerts(
        "      page-fast: {routes: [slack]}\n",
        "alerts.page-fast.routes",
        "unknown route 'slack'",
        "bad-route",
    ),
    _bad_alerts(
        "      page-fast: {routes: pagerduty}\n",
        "alerts.page-fast.routes",
        "expected a list, got str",
        "routes-not-list",
    ),
    _bad_alerts(
        "      page-fast: {routes: [webhook, webhook]}\n",
        "alerts.page-fast.routes",
        "['webhook', 'webhook'] names a route twice",
        "route-twice",
    ),
    _bad_alerts(
        "      page-fast: {enabled: no-thanks}\n",
        "alerts.page-fast.enabled",
        "'no-thanks' must be true or false",
        "enabled-not-bool",
    ),
    _bad_alerts(
        "      page-fast: 14.4\n",
        "alerts.page-fast",
        "expected a mapping of fields or false (off), got float",
        "tier-not-mapping",
    ),
    _bad_alerts(
        "      stuck: {min_open: 0}\n",
        "alerts.stuck.min_open",
        "0 must be a whole number of at least 1",
        "min-open-zero",
    ),
    _bad_alerts(
        "      stuck: {after: 0s}\n",
        "alerts.stuck.after",
        "'0s' must be longer than zero",
        "after-zero",
    ),
    _bad_alerts(
        "      stuck: {severity: page}\n",
        "alerts.stuck.severity",
        "'page' is not one of",
        "stuck-severity",
    ),
    _bad_alerts(
        "      stuck: {routes: [email]}\n",
        "alerts.stuck.routes",
        "unknown route 'email'",
        "stuck-route",
    ),
    _bad_alerts(
        "      backlog: {severity: info}\n",
        "alerts.backlog.max_pending",
        "missing; backlog is off by default for this flow",
        "backlog-without-max",
    ),
    _bad_alerts(
        "      backlog: {max_pending: -1}\n",
        "alerts.backlog.max_pending",
        "-1 must be a whole number of at least 0",
        "max-pending-negative",
    ),
    _bad_alerts(
        "      backlog: {max_pending: 10, routes: [sms]}\n",
        "alerts.backlog.routes",
        "unknown route 'sms'",
        "backlog-route",
    ),
    _bad_alerts(
        "      backlog: {max_pending: 10, severity: low}\n",
        "alerts.backlog.severity",
        "'low' is not one of",
        "backlog-severity",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_ALERTS)
def test_a_bad_alert_policy_names_the_flow_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / "flows.yaml").write_text(text)
    for load in (load_config, load_flows):  # the worker refuses the file too
        with pytest.raises(ConfigError) as info:
            load(tmp_path / "flows.yaml")
        got = str(info.value)
        assert got.startswith(str(tmp_path) + "/"), got
        assert message in got, got


def test_docs_alerts_example_loads_and_matches_what_it_says(tmp_path: Path) -> None:
    text = DOCS.read_text(encoding="utf-8")
    (block,) = re.findall(r"<!-- alerts-example -->\n```yaml\n(.*?)```", text, re.DOTALL)
    config = parse_config(block, "docs/flows.md")
    (flow,) = config.flows
    policy, base = config.policies[flow.name], default_policy(flow)
    assert policy.alerts == ("page-fast", "page-slow", "stuck", "backlog")
    assert policy.tiers[0] == dataclasses.replace(base.tiers[0], min_bad=10)
    assert policy.tiers[1] == dataclasses.replace(base.tiers[1], severity="error")
    assert policy.stuck == StuckRule(120_000, 3, "error", frozenset({"alertmanager", "webhook"}))
    assert policy.backlog == BacklogRule(100)
    # the error line the page shows is the one a file with that mistake gets
    (line,) = re.findall(r"```text\n(flows\.yaml: flow 'dlq_first_retry'.*)\n```", text)
    (tmp_path / "flows.yaml").write_text(block.replace("short_window: 5m", "short_window: 90s"))
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "flows.yaml")
    assert str(info.value) == f"{tmp_path}/{line}"
