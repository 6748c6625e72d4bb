"""The status page without a browser: its numbers are /v1's, it is behind the read token,
it loads nothing from elsewhere, its filters and pages are /v1/breaches', an entity page
shows the timeline and the explanation, and the alerts the ledger holds."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from html import escape as html_escape
from html.parser import HTMLParser
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from api import errors, status
from api.app import create_app
from api.explain import EntityLookup
from api.readmodel import ReadModel
from streams import topics
from streams.alerting.records import AlertState, encode_alert
from streams.connectors.sink import AlertEvent
from streams.core.model import Flow
from streams.errors import BrokerError
from streams.replay.explain import InputSeen, OutputSeen
from streams.settings import Settings
from tests.api.records import NOW, Records

TOKEN = "s3cret-token-for-the-status-page"


class Page(HTMLParser):
    """Elements with ``data-*`` attributes, links, and the texts of script/style/span."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.fields: list[tuple[str, str, str, str]] = []
        """(enclosing data-flow, data-field, data-value, text)"""
        self.links: list[str] = []
        self.sources: list[str] = []
        self.blocks: dict[str, list[str]] = {"script": [], "style": []}
        self._flow = ""
        self._open: list[tuple[str, str, str]] = []
        self._block: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "data-flow" in a:
            self._flow = a["data-flow"]
        if "data-field" in a and "data-value" in a and tag == "span":
            self._open.append((a["data-field"], a["data-value"], ""))
        if "href" in a:
            self.links.append(a["href"])
        if "src" in a:
            self.sources.append(a["src"])
        if tag in self.blocks:
            self._block = tag
            self.blocks[tag].append("")

    def handle_data(self, data: str) -> None:
        if self._open:
            field, value, text = self._open[-1]
            self._open[-1] = (field, value, text + data)
        if self._block is not None:
            self.blocks[self._block][-1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._open:
            field, value, text = self._open.pop()
            self.fields.append((self._flow, field, value, text))
        if tag == self._block:
            self._block = None

    def value(self, flow: str, field: str) -> tuple[Any, str]:
        (hit,) = [(orjson.loads(v), t) for f, k, v, t in self.fields if f == flow and k == field]
        return hit


def _client(model: ReadModel, settings: Settings, lookup: EntityLookup | None = None) -> Any:
    """A client of the whole API; with ``lookup``, of the status pages alone reading
    "Kafka" through it."""
    if lookup is None:
        app = create_app(settings, model)
    else:
        app = FastAPI()
        errors.install(app)
        app.include_router(status.router(model, settings, lookup))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


@pytest.fixture
async def web(model: ReadModel) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(model, Settings()) as c:
        yield c


def _seed(model: ReadModel, rec: Records) -> None:
    model.apply(topics.STATS, rec.window([100.0, 900.0, 4_000.0, 7_000.0], lost=1))
    model.apply(topics.STATS, rec.window([300.0, 12_000.0], minute=NOW // 60_000 - 30))
    model.apply(topics.STATS, rec.gauge(pending=3, oldest_pending_started_at=NOW - 9_000))
    model.apply(topics.BREACHES, rec.breach("stuck-1"))
    model.apply(topics.BREACHES, rec.breach("late-1", kind="late", completed_at=NOW - 50_000))
    model.apply(topics.MEASUREMENTS, rec.measurement("m-1", lag_ms=700))


def _fire(model: ReadModel, flow: str = "lead_to_posthog", alert: str = "stuck") -> None:
    event = AlertEvent(
        alert_id=f"funnel-freshness/{flow}/{alert}",
        version=0,
        flow=flow,
        alert=alert,
        severity="error",
        status="firing",
        since=NOW - 5_000,
        updated_at=NOW - 5_000,
        summary=f"{flow}: 1 entity stuck past its deadline",
    )
    key, value = encode_alert(AlertState(event, ("alertmanager",)))
    model.apply_raw(topics.ALERTS, key, value, offset=7)


async def test_every_number_on_the_flows_page_is_the_one_v1_flows_answers(
    model: ReadModel, rec: Records, web: httpx.AsyncClient
) -> None:
    _seed(model, rec)
    _fire(model)
    html = (await web.get("/")).text
    flows = (await web.get("/v1/flows")).json()["flows"]
    page = Page(html)
    for f in flows:
        name = f["name"]
        for key in ("last_5m", "last_1h", "last_24h"):
            p95 = f["windows"][key]["lag_ms"]["p95"]
            assert page.value(name, f"windows.{key}.lag_ms.p95") == (p95, status.fmt_ms(p95))
        ratio = f["windows"]["last_1h"]["on_time_ratio"]
        assert page.value(name, "windows.last_1h.on_time_ratio") == (ratio, status.fmt_ratio(ratio))
        left = (
            f["error_budget"]["remaining_ratio"]
            if f["error_budget"]["good"] + f["error_budget"]["bad"]
            else None
        )
        assert page.value(name, "error_budget.remaining_ratio")[0] == left
        assert page.value(name, "open_breaches") == (f["open_breaches"], str(f["open_breaches"]))
        assert page.value(name, "pending") == (f["pending"], str(f["pending"]))
        assert f'data-flow="{name}"' in html
        assert page.value(name, "status")[0] == f["status"]
        for reason in f["status_reasons"]:
            assert html_escape(reason) in html
    lead = next(f for f in flows if f["name"] == "lead_to_posthog")
    assert lead["windows"]["last_1h"]["lag_ms"]["p95"] is not None
    assert lead["alerts_firing"] == ["stuck"]
    assert page.value("lead_to_posthog", "alerts_firing") == (["stuck"], "stuck")
    assert "lead_to_posthog: 1 entity stuck past its deadline" in html
    assert "1 firing" in html


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (None, "\N{EN DASH}"),
        (0, "0 ms"),
        (812.4, "812 ms"),
        (3904.0, "3.90 s"),
        (-1500, "-1.50 s"),
        (312_000, "5.2 min"),
        (5_400_000, "1.5 h"),
    ],
)
def test_lags_are_written_in_the_unit_that_reads_best(ms: float | None, text: str) -> None:
    assert status.fmt_ms(ms) == text


def test_ratios_targets_and_times() -> None:
    assert status.fmt_ratio(0.99238) == "99.24 %"
    assert status.fmt_ratio(None) == "\N{EN DASH}"
    assert [status.fmt_target(t) for t in (250, 5_000, 60_000, 300_000, 90_000)] == [
        "250 ms",
        "5 s",
        "1 min",
        "5 min",
        "90 s",
    ]
    assert status.fmt_time(1_767_225_605_300) == "2026-01-01 00:00:05.300Z"


def test_the_sparkline_draws_the_last_hour_against_the_target(
    model: ReadModel, rec: Records
) -> None:
    _seed(model, rec)
    points = status.p95_by_minute(model, "lead_to_posthog")
    assert len(points) == status.SPARK_MINUTES
    assert points[-1] is not None  # the minute of NOW
    assert points[-31] is not None  # 30 minutes earlier
    assert sum(p is not None for p in points) == 2
    svg = status.sparkline(points, 5_000)
    assert svg.count("<circle") == 2  # two lone minutes: dots, not lines
    assert "target 5 s" in svg
    assert status.sparkline([None] * 60, 5_000) == '<span class="none">no lags this hour</span>'


async def test_the_pages_are_behind_the_read_token(model: ReadModel, rec: Records) -> None:
    _seed(model, rec)
    settings = Settings(api_token=SecretStr(TOKEN))
    async with _client(model, settings) as c:
        for path in ("/", "/breaches", "/entities/lead_to_posthog/stuck-1"):
            refused = await c.get(path)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == "Bearer"
            assert (await c.get(path, headers={"Authorization": "Bearer nope"})).status_code == 401
            shown = await c.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert shown.status_code == 200
            assert TOKEN not in shown.text
            assert "set-cookie" not in shown.headers
        assert (await c.get("/", headers={"Cookie": f"token={TOKEN}"})).status_code == 401
        assert (await c.get(f"/?token={TOKEN}")).status_code == 401


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


async def test_nothing_is_loaded_from_elsewhere(
    model: ReadModel, rec: Records, web: httpx.AsyncClient
) -> None:
    _seed(model, rec)
    for path in ("/", "/breaches?status=open", "/entities/lead_to_posthog/stuck-1", "/nope"):
        r = await web.get(path)
        page = Page(r.text)
        if path == "/nope":
            assert r.status_code == 404
            continue
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        (script,), (style,) = page.blocks["script"], page.blocks["style"]
        assert f"script-src {_csp_hash(script)};" in csp
        assert f"style-src {_csp_hash(style)};" in csp
        assert page.sources == []
        for link in page.links:
            assert link.startswith(("/", "data:")), link
            assert not link.startswith("//"), link
        assert r.headers["cache-control"] == "no-store"


def _refresh(html: str) -> str:
    """The ``data-refresh`` of the page's ``#live`` part."""
    (found,) = re.findall(r'<main id="live"[^>]* data-refresh="([a-z]+)"', html)
    return found


def _breach_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-breach="([^"]+)"', html)


async def test_the_breaches_page_is_v1_breaches_with_its_filters_and_pages(
    model: ReadModel, rec: Records, web: httpx.AsyncClient
) -> None:
    for i in range(status.PAGE_SIZE + 5):
        model.apply(topics.BREACHES, rec.breach(f"k{i:03}", started_at=NOW - 900_000 + i * 1000))
    model.apply(topics.BREACHES, rec.breach("done", kind="late", completed_at=NOW))
    model.apply(topics.BREACHES, rec.breach("p", flow="payment_to_posthog"))
    first = (await web.get("/breaches", params={"flow": "lead_to_posthog", "status": "open"})).text
    api = (
        await web.get(
            "/v1/breaches",
            params={"flow": "lead_to_posthog", "status": "open", "limit": status.PAGE_SIZE},
        )
    ).json()
    assert _breach_ids(first) == [b["breach_id"] for b in api["items"]]
    assert '<option value="lead_to_posthog" selected>' in first
    (nxt,) = re.findall(r'<a rel="next" href="([^"]+)"', first)
    second = (await web.get(nxt.replace("&amp;", "&"))).text
    assert _breach_ids(second) == [
        f"lead_to_posthog:k{i:03}" for i in range(status.PAGE_SIZE, status.PAGE_SIZE + 5)
    ]
    assert 'rel="next"' not in second
    late = (await web.get("/breaches?kind=late")).text
    assert _breach_ids(late) == ["lead_to_posthog:done"]
    assert '<a href="/entities/lead_to_posthog/done">' in late
    everything = (await web.get("/breaches?flow=&kind=&status=")).text
    assert len(_breach_ids(everything)) == status.PAGE_SIZE
    bad = await web.get("/breaches?kind=slow")
    assert bad.status_code == 422
    assert "kind must be one of overdue, late, lost" in bad.text
    unknown = await web.get("/breaches?flow=nope")
    assert unknown.status_code == 404
    assert "unknown flow &#x27;nope&#x27;" in unknown.text


async def test_an_entity_page_shows_its_timeline_and_explanation(
    model: ReadModel, rec: Records, web: httpx.AsyncClient
) -> None:
    _seed(model, rec)
    r = await web.get("/entities/lead_to_posthog/late-1")
    assert r.status_code == 200
    view = (await web.get("/v1/entities/lead_to_posthog/late-1")).json()
    ex = (await web.get("/v1/entities/lead_to_posthog/late-1/explain")).json()
    page = Page(r.text)
    assert page.value("", "state")[0] == view["state"] == "late"
    assert html_escape(view["where"]) in r.text
    for line in ex["verdict"]:
        assert html_escape(line) in r.text
    lag = ex["decomposition"]["lag_ms"]
    assert page.value("", "decomposition.lag_ms") == (lag, status.fmt_ms(lag))
    assert page.value("", "decomposition.start_to_kafka_ms") == (None, "\N{EN DASH}")
    assert 'href="/entities/lead_to_posthog/late-1?kafka=1"' in r.text
    assert _refresh(r.text) == "on"
    for event in view["cycles"][0]["timeline"]:
        assert f'data-event="{event["kind"]}"' in r.text
    missing = await web.get("/entities/lead_to_posthog/never")
    assert missing.status_code == 404
    assert "no measurement or breach of lead_to_posthog:never" in missing.text


class FakeLookup:
    """Kafka timestamps for the explanation: the start 300 ms after it occurred."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls = 0

    async def records(
        self, flow: Flow, key: str, known: list[OutputSeen], window_ms: int
    ) -> tuple[list[InputSeen], list[OutputSeen], list[OutputSeen]]:
        self.calls += 1
        if self.fail:
            raise BrokerError("connection to Kafka at 127.0.0.1:9 refused")
        (breach,) = [o for o in known if o.topic == topics.BREACHES]
        assert breach.value is not None
        started = int(breach.value["started_at"])
        event_id = str(breach.value["start_event_id"])
        start = InputSeen(flow.start_topic, 0, 5, started + 300, None, "start", event_id, started)
        return [start], [o for o in known if o.topic == topics.BREACHES], []


async def test_with_kafka_the_explanation_fills_in_the_kafka_parts_and_stops_refreshing(
    model: ReadModel, rec: Records
) -> None:
    _seed(model, rec)
    lookup = FakeLookup()
    async with _client(model, Settings(), lookup) as c:
        r = await c.get("/entities/lead_to_posthog/stuck-1?kafka=1")
        assert lookup.calls == 1
        assert Page(r.text).value("", "decomposition.start_to_kafka_ms") == (300, "300 ms")
        assert _refresh(r.text) == "off"
        plain = await c.get("/entities/lead_to_posthog/stuck-1")
        assert lookup.calls == 1
        assert _refresh(plain.text) == "on"
    failing = FakeLookup(fail=True)
    async with _client(model, Settings(), failing) as c:
        r = await c.get("/entities/lead_to_posthog/stuck-1?kafka=1")
        assert r.status_code == 200
        assert "Kafka could not be read: connection to Kafka at 127.0.0.1:9 refused" in r.text
        assert "read them from Kafka" in r.text  # the read-model explanation instead


async def test_what_the_page_shows_is_escaped(
    model: ReadModel, rec: Records, web: httpx.AsyncClient
) -> None:
    key = '<img src=x onerror="alert(1)">'
    model.apply(topics.BREACHES, rec.breach(key))
    html = (await web.get("/breaches")).text
    assert key not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    page = await web.get("/entities/lead_to_posthog/" + key)
    assert page.status_code == 200
    assert key not in page.text


async def test_the_pages_say_when_kafka_is_not_answering(
    model: ReadModel, web: httpx.AsyncClient
) -> None:
    assert 'id="kafka-unreachable"' not in (await web.get("/")).text
    model.progress.heard(NOW - 42_000)
    model.progress.silent(NOW - 42_000, "kafka: unreachable since ...")
    for path in ("/", "/breaches"):
        page = (await web.get(path)).text
        assert 'id="kafka-unreachable"' in page
        assert "last state read, 42 s old" in page
