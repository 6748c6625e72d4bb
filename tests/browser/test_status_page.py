"""The status page in Debian's Chromium against a live stack (broker, worker, alerter,
Alertmanager, API) fed the scripted scenario: the numbers on the page are /v1/flows', the
alerts are /v1/alerts', the page refreshes itself, a breach leads to its entity page, whose
lag decomposition reads Kafka on request; nothing is loaded from anywhere else, nothing
goes wrong in the console, a browser without the proxy's header gets only a 401, and
screenshots of what it showed go to the test's directory (``docs/img/`` with
``FRESHNESS_UPDATE_SCREENSHOTS=1``)."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Request

from api.status import fmt_ms, fmt_ratio
from tests.browser.conftest import Stack

pytestmark = pytest.mark.integration

VIEWPORT = {"width": 1440, "height": 900}
SHOWN = (
    "windows.last_5m.lag_ms.p95",
    "windows.last_1h.lag_ms.p95",
    "windows.last_24h.lag_ms.p95",
    "windows.last_1h.on_time_ratio",
    "objective",
    "error_budget.remaining_ratio",
    "error_budget.burn_rate",
    "open_breaches",
    "pending",
    "status",
    "alerts_firing",
)


def _at(view: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        if view is None:
            return None
        view = view[part]
    return view


def _expected(flows: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    out = {}
    for f in flows:
        for path in SHOWN:
            out[(f["name"], path)] = _at(f, path)
        budget = f["error_budget"]
        if budget["good"] + budget["bad"] == 0:  # shown as a dash: nothing judged in 24 h
            out[(f["name"], "error_budget.remaining_ratio")] = None
    return out


async def _on_page(page: Page) -> dict[tuple[str, str], tuple[Any, str]]:
    """(flow, field) -> (data-value, text) of every tagged number in the flows table."""
    cells = await page.eval_on_selector_all(
        "tr.flow [data-field]",
        "els => els.map(e => [e.closest('tr').dataset.flow, e.dataset.field,"
        " e.dataset.value, e.textContent])",
    )
    return {(f, k): (orjson.loads(v), t) for f, k, v, t in cells}


def _formatted(path: str, value: Any) -> str | None:
    if path.endswith("p95"):
        return fmt_ms(value)
    if path.endswith(("ratio", "objective")):
        return fmt_ratio(value)
    if path in ("open_breaches", "pending"):
        return str(value)
    return None


async def _wait_settled(stack: Stack, timeout_s: float = 120) -> list[dict[str, Any]]:
    """/v1/flows once the scenario is all in (every measured start counted, every missing
    one an open breach) and an alert fires: the stack has judged everything."""
    sc = stack.scenario
    measured = len(sc.measurements())
    missing = sum(1 for e in sc.expected.values() if e.outcome == "missing")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        flows = stack.get("/v1/flows")["flows"]
        counted = sum(f["windows"]["last_24h"]["count"] for f in flows)
        opened = sum(f["open_breaches"] for f in flows)
        firing = [a for a in stack.get("/v1/alerts")["alerts"] if a["status"] == "firing"]
        if counted == measured and opened == missing and firing:
            return flows
        await asyncio.sleep(1)
    pytest.fail(f"not settled: {counted}/{measured} measured, {opened}/{missing} open, {firing}")


async def _compare_flows(stack: Stack, page: Page) -> list[dict[str, Any]]:
    """The page's numbers equal /v1/flows' (read before and after the page, equal both
    times, so no update falls between the two reads)."""
    for _ in range(5):
        before = stack.get("/v1/flows")["flows"]
        await page.reload()
        shown = await _on_page(page)
        after = stack.get("/v1/flows")["flows"]
        if _expected(before) == _expected(after):
            break
    want = _expected(after)
    assert {k: v for k, (v, _) in shown.items()} == want
    for (flow, path), (value, text) in shown.items():
        formatted = _formatted(path, value)
        if formatted is not None:
            assert text == formatted, (flow, path, value, text)
    return after


async def test_the_status_page_shows_the_live_stack(
    stack: Stack, browser: Browser, screenshots: Path
) -> None:
    await _wait_settled(stack)
    origin = urlsplit(stack.url).netloc
    context = await browser.new_context(
        viewport=VIEWPORT, extra_http_headers={"Authorization": f"Bearer {stack.token}"}
    )
    requests: list[str] = []
    problems: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    page = await context.new_page()
    page.on("console", lambda m: _console(m, problems))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: _failed(r, problems))

    await page.goto(f"{stack.url}/")
    flows = await _compare_flows(stack, page)
    assert {f["status"] for f in flows} == {"breaching"}  # a third of the starts breach
    await _check_alerts(stack, page)
    await _check_refresh(page)
    await page.screenshot(path=screenshots / "status-flows.png", full_page=True)

    # follow a breach: flow row -> its open breaches -> the first one -> its entity page
    row = page.locator('tr.flow[data-flow="lead_to_posthog"]')
    await row.locator('[data-field="open_breaches"]').click()
    await page.wait_for_url("**/breaches?flow=lead_to_posthog&status=open")
    want = stack.get("/v1/breaches", flow="lead_to_posthog", status="open", limit=50)["items"]
    ids = await page.eval_on_selector_all(
        "tr[data-breach]", "els => els.map(e => e.dataset.breach)"
    )
    assert ids == [b["breach_id"] for b in want]
    await page.screenshot(path=screenshots / "status-breaches.png", full_page=True)
    first = want[0]
    await page.locator(f'tr[data-breach="{first["breach_id"]}"] a').click()
    await page.wait_for_url(f"**/entities/lead_to_posthog/{first['key']}")
    entity = stack.get(f"/v1/entities/lead_to_posthog/{first['key']}")
    assert await page.locator('h1 [data-field="state"]').get_attribute("data-value") == '"overdue"'
    where = await page.locator('[data-field="where"]').inner_text()
    assert _ageless(where) == _ageless(entity["where"])  # the age grows between the reads
    assert "ms past its deadline" in where
    kinds = await page.eval_on_selector_all(
        "tr[data-event]", "els => els.map(e => e.dataset.event)"
    )
    assert kinds == [e["kind"] for e in entity["cycles"][0]["timeline"]]

    # the decomposition with Kafka's timestamps: the start's time to Kafka is filled in
    await page.get_by_text("read them from Kafka").click()
    await page.wait_for_url("**?kafka=1")
    explained = stack.get(f"/v1/entities/lead_to_posthog/{first['key']}/explain", inputs="true")
    to_kafka = explained["decomposition"]["start_to_kafka_ms"]
    assert to_kafka is not None
    part = page.locator('[data-field="decomposition.start_to_kafka_ms"]')
    assert orjson.loads(await part.get_attribute("data-value") or "null") == to_kafka
    assert await page.locator("#refresh-state").inner_text() == "not refreshed automatically"
    await page.screenshot(path=screenshots / "status-entity.png", full_page=True)

    foreign = [u for u in requests if urlsplit(u).netloc not in (origin, "")]
    assert foreign == [], foreign
    assert problems == [], problems
    await context.close()

    # without the proxy's header there is no page, only the API's 401
    bare = await browser.new_context()
    answer = await (await bare.new_page()).goto(f"{stack.url}/")
    assert answer is not None
    assert answer.status == 401
    assert "Funnel freshness" not in await answer.text()
    await bare.close()


async def _check_alerts(stack: Stack, page: Page) -> None:
    """The alerts panel lists what /v1/alerts lists, firing ones first."""
    want = [a["alert_id"] for a in stack.get("/v1/alerts")["alerts"]][:20]
    shown = await page.eval_on_selector_all("#alerts li", "els => els.map(e => e.dataset.alert)")
    firing = [a for a in stack.get("/v1/alerts")["alerts"] if a["status"] == "firing"]
    assert shown[: len(firing)] == [a["alert_id"] for a in firing]
    assert set(shown) <= set(want) | {a["alert_id"] for a in firing}
    assert f"{len(firing)} firing" in await page.locator("#alerts h2").inner_text()


async def _check_refresh(page: Page) -> None:
    """Without a reload the page fetches itself again within a few seconds (polled from
    here: the page's CSP refuses the eval that ``wait_for_function`` needs)."""
    first = await page.locator("#live").get_attribute("data-rendered-at")
    for _ in range(50):
        await asyncio.sleep(0.2)
        if await page.locator("#live").get_attribute("data-rendered-at") != first:
            break
    else:
        pytest.fail("the page did not refresh itself within 10 s")
    assert (await page.locator("#refresh-state").inner_text()).startswith("updated ")


def _ageless(where: str) -> str:
    return re.sub(r"\d+ ms past its deadline", "N ms past its deadline", where)


def _console(message: ConsoleMessage, problems: list[str]) -> None:
    if message.type in ("error", "warning"):
        problems.append(f"console {message.type}: {message.text}")


def _failed(request: Request, problems: list[str]) -> None:
    problems.append(f"request failed: {request.url} {request.failure}")
