"""The status page (DESIGN section 13): server-rendered HTML over the read model.

Routes, mounted by :func:`api.app.create_app` behind the same read-token guard as ``/v1``:

* ``GET /``: one row per flow: status and its reasons, on-time ratio (1 h) against the
  objective, error budget left, p95 lag against target over 5 min, 1 h and 24 h with a
  sparkline of the last hour (p95 per minute), open breaches, pending starts;
* ``GET /breaches``: ``/v1/breaches`` with its flow, kind and status filters, in its order
  and with its cursor pages; each breach links to its entity;
* ``GET /entities/{flow}/{key}``: the entity's timeline (``/v1/entities/{flow}/{key}``).

Guarantees. Every number is the one the JSON API answers from the same read model at the
same moment: the pages call the same :class:`~api.readmodel.ReadModel` views and format
with :func:`fmt_ms` and :func:`fmt_ratio` only; each number also carries its raw value in
``data-value`` (``data-field`` names its path in the JSON view). The pages load nothing
from anywhere: CSS and the refresh script are inline, allowed by their hashes in a
Content-Security-Policy that refuses every other source. The script re-fetches the page
every :data:`REFRESH_MS` and swaps its ``#live`` part; the filter form sits outside it, so
a refresh never resets a choice being made.

Access: behind the read token like ``/v1`` (``FRESHNESS_API_TOKEN``). A browser reaches the
pages through a reverse proxy that authenticates people its own way and adds
``Authorization: Bearer <token>`` upstream (``docs/operations.md``, "Status page"); the
refresh requests are same-origin, so the proxy adds it to them too. No token is ever put
in a page, a cookie or a URL.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from importlib import resources
from string import Template
from typing import Annotated, Any, Final
from urllib.parse import quote, urlencode

import orjson
from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse

from api.alerts import alert_list
from api.breaches import CURSOR_PATTERN, BreachFilter
from api.errors import InvalidQueryError, NotFoundError
from api.explain import EntityLookup, explain_entity
from api.models import (
    AlertView,
    BreachView,
    EntityCycle,
    EntityExplanation,
    EntityView,
    FlowView,
    WindowView,
)
from api.readmodel import ReadModel
from streams.errors import BrokerError
from streams.settings import Settings
from streams.stats.records import MINUTE_MS

REFRESH_MS: Final = 2000
"""How often the page re-fetches itself (the script's ``PERIOD_MS``)."""
SPARK_MINUTES: Final = 60
PAGE_SIZE: Final = 50
RESOLVED_SHOWN: Final = 10
"""Resolved alerts listed under the firing ones (newest first)."""
WINDOWS: Final = (("last_5m", "5 min"), ("last_1h", "1 h"), ("last_24h", "24 h"))
KINDS: Final = ("overdue", "late", "lost")
STATUSES: Final = ("open", "closed")
DASH: Final = "\N{EN DASH}"


def _asset(name: str) -> str:
    return resources.files("api").joinpath("templates", name).read_text(encoding="utf-8")


def _csp_hash(text: str) -> str:
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
    return f"'sha256-{digest}'"


_SHELL: Final = Template(_asset("page.html"))
_STYLE: Final = _asset("status.css")
_SCRIPT: Final = _asset("status.js")
CSP: Final = (
    f"default-src 'none'; style-src {_csp_hash(_STYLE)}; script-src {_csp_hash(_SCRIPT)}; "
    "connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors 'none' for browsers without CSP level 2
    "Referrer-Policy": "no-referrer",
}
_NAV: Final = (("/", "Flows", "flows"), ("/breaches", "Breaches", "breaches"))


# ---- formatting (the one place numbers become text) ------------------------------------


def fmt_ms(ms: float | None) -> str:
    """A lag or age: ``812 ms``, ``3.90 s``, ``5.2 min``, ``1.5 h``; a dash for none."""
    if ms is None:
        return DASH
    size = abs(ms)
    if size < 1000:
        return f"{ms:.0f} ms"
    if size < 60_000:
        return f"{ms / 1000:.2f} s"
    if size < 3_600_000:
        return f"{ms / 60_000:.1f} min"
    return f"{ms / 3_600_000:.1f} h"


def fmt_target(ms: int) -> str:
    """A configured duration in its round unit: ``5 s``, ``5 min``, ``250 ms``."""
    if ms >= 60_000 and ms % 60_000 == 0:
        return f"{ms // 60_000} min"
    if ms >= 1000 and ms % 1000 == 0:
        return f"{ms // 1000} s"
    return f"{ms} ms"


def fmt_ratio(ratio: float | None) -> str:
    """``0.99238`` -> ``99.24 %``; a dash for none."""
    return DASH if ratio is None else f"{ratio * 100:.2f} %"


def fmt_time(ms: int | None) -> str:
    """Epoch ms as UTC, to the millisecond: ``2026-01-01 00:00:05.300Z``."""
    if ms is None:
        return DASH
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def fmt_clock(ms: int | None) -> str:
    """Epoch ms as the UTC time of day: ``00:00:05Z``."""
    return DASH if ms is None else fmt_time(ms)[11:19] + "Z"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(field: str, value: float | None, text: str, css: str = "") -> str:
    """A number with its JSON path and raw value, for people and for tests alike."""
    return _field(field, value, _e(text), css)


def _field(field: str, value: object, inner: str, css: str = "") -> str:
    """``inner`` (HTML) tagged with the JSON path of what it shows and its value as JSON."""
    cls = f' class="{css}"' if css else ""
    raw = orjson.dumps(value).decode()
    return f'<span data-field="{_e(field)}" data-value="{_e(raw)}"{cls}>{inner}</span>'


def _badge(word: str) -> str:
    return _badge_text(word, word.replace("_", " "))


def _badge_text(css: str, text: str) -> str:
    return f'<span class="badge {_e(css)}">{_e(text)}</span>'


def entity_href(flow: str, key: str) -> str:
    return f"/entities/{quote(flow, safe='')}/{quote(key, safe='')}"


# ---- the flows page --------------------------------------------------------------------


def p95_by_minute(model: ReadModel, flow: str, minutes: int = SPARK_MINUTES) -> list[float | None]:
    """The p95 lag of each of the last ``minutes`` minutes ending with the flow's reference
    minute (the one ``/v1/flows`` windows end with); ``None`` for a minute with no lag."""
    stats = model.stats.get(flow)
    if stats is None:
        return []
    as_of = stats.as_of()
    ref = (model.clock() if as_of is None else as_of) // MINUTE_MS
    out: list[float | None] = []
    for minute in range(ref - minutes + 1, ref + 1):
        res = stats.window(minute, 1)
        out.append(res.sketch.quantiles((0.95,))[0] if res.tally.count else None)
    return out


def sparkline(points: Sequence[float | None], target_ms: int) -> str:
    """An inline SVG of ``points`` (ms) with the target as a dashed line; gaps stay gaps."""
    seen = [p for p in points if p is not None]
    if not seen:
        return '<span class="none">no lags this hour</span>'
    width, height = 150.0, 34.0
    top = max(target_ms * 1.5, *seen)
    step = (width - 4) / max(len(points) - 1, 1)

    def y(v: float) -> float:
        return round(height - 2 - max(v, 0.0) / top * (height - 4), 1)

    lines, run = [], []
    for i, p in enumerate([*points, None]):
        if p is not None:
            run.append(f"{round(2 + i * step, 1)},{y(p)}")
        elif run:
            lines.append(run)
            run = []
    polys = "".join(
        f'<polyline points="{" ".join(r)}" fill="none" stroke="#0969da" stroke-width="1.5"/>'
        if len(r) > 1
        else f'<circle cx="{r[0].split(",")[0]}" cy="{r[0].split(",")[1]}" r="1.5" fill="#0969da"/>'
        for r in lines
    )
    label = (
        f"p95 lag per minute, last hour: latest {fmt_ms(seen[-1])}, target {fmt_target(target_ms)}"
    )
    return (
        f'<svg class="spark" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="{_e(label)}"><title>{_e(label)}</title>'
        f'<line x1="0" x2="{width:.0f}" y1="{y(target_ms)}" y2="{y(target_ms)}" '
        f'stroke="#cf222e" stroke-dasharray="3 3" stroke-width="1"/>{polys}</svg>'
    )


def _lag_cell(view: FlowView, key: str, win: WindowView) -> str:
    p95 = win.lag_ms.p95
    css = "" if p95 is None else ("over" if p95 > view.target_ms else "within")
    text = _num(f"windows.{key}.lag_ms.p95", p95, fmt_ms(p95), css)
    return f'<td class="num">{text}</td>'


def _ratio_cell(view: FlowView) -> str:
    ratio = view.windows.last_1h.on_time_ratio
    css = "" if ratio is None else ("over" if ratio < view.objective else "within")
    shown = _num("windows.last_1h.on_time_ratio", ratio, fmt_ratio(ratio), css)
    objective = _num("objective", view.objective, fmt_ratio(view.objective))
    return f'<td class="num">{shown}<span class="sub">objective {objective}</span></td>'


def _budget_cell(view: FlowView) -> str:
    """The flow's error budget left over the last 24 h (the view's ``error_budget``)."""
    budget = view.error_budget
    if budget is None or budget.good + budget.bad == 0:
        return f'<td class="num">{_num("error_budget.remaining_ratio", None, DASH)}</td>'
    left = budget.remaining_ratio
    shown = _num("error_budget.remaining_ratio", left, fmt_ratio(left), "over" if left <= 0 else "")
    burn = _num("error_budget.burn_rate", budget.burn_rate, f"{budget.burn_rate:.2f}x")
    return f'<td class="num">{shown}<span class="sub">burn {burn}</span></td>'


def _alerts_cell(view: FlowView) -> str:
    names = view.alerts_firing
    shown = "".join(_badge_text("firing", a) for a in names) or '<span class="none">none</span>'
    return f"<td>{_field('alerts_firing', names, shown)}</td>"


def _flow_rows(view: FlowView, spark: Sequence[float | None]) -> str:
    """The flow's row, and under it a row with the reasons for its status (if any)."""
    name = _e(view.name)
    breaches = urlencode({"flow": view.name, "status": "open"})
    opened = _num("open_breaches", view.open_breaches, str(view.open_breaches))
    cells = [
        f'<td><strong>{name}</strong><span class="sub">target {fmt_target(view.target_ms)}'
        f' · <span title="{_e(fmt_time(view.as_of))}">as of {_e(fmt_clock(view.as_of))}'
        "</span></span></td>",
        f"<td>{_field('status', view.status, _badge(view.status))}</td>",
        _ratio_cell(view),
        _budget_cell(view),
        *(_lag_cell(view, key, getattr(view.windows, key)) for key, _ in WINDOWS),
        f"<td>{sparkline(spark, view.target_ms)}</td>",
        f'<td class="num"><a href="/breaches?{_e(breaches)}">{opened}</a></td>',
        f'<td class="num">{_num("pending", view.pending, str(view.pending))}</td>',
        _alerts_cell(view),
    ]
    row = f'<tr class="flow" data-flow="{name}">{"".join(cells)}</tr>'
    if not view.status_reasons:
        return row
    why = " · ".join(_e(r) for r in view.status_reasons)
    return f'{row}<tr class="why" data-reasons="{name}"><td></td><td colspan="11">{why}</td></tr>'


def _alert_item(alert: AlertView) -> str:
    sinks = ", ".join(f"{d.sink}: {d.state.replace('_', ' ')}" for d in alert.deliveries)
    return (
        f'<li data-alert="{_e(alert.alert_id)}">{_badge_text(alert.status, alert.alert)} '
        f"<strong>{_e(alert.flow)}</strong> {_badge(alert.severity)} "
        f"since {_e(fmt_time(alert.since))}: {_e(alert.summary)}"
        f'<span class="sub">{_e(sinks) or "no sink routed"}</span></li>'
    )


def render_alerts(model: ReadModel) -> str:
    """Firing alerts, then those resolved in the last 24 h (``GET /v1/alerts``)."""
    alerts = alert_list(model.alerts, model.clock()).alerts
    firing = [a for a in alerts if a.status == "firing"]
    resolved = [a for a in alerts if a.status != "firing"][:RESOLVED_SHOWN]
    css = "panel firing" if firing else "panel"
    head = f"{len(firing)} firing" if firing else "No alert is firing"
    items = "".join(_alert_item(a) for a in [*firing, *resolved])
    listed = f'<ul class="alerts">{items}</ul>' if items else ""
    return f'<section id="alerts" class="{css}"><h2>Alerts: {head}</h2>{listed}</section>'


def render_flows(model: ReadModel) -> str:
    """The body of ``/``: the flows table, then the alerts."""
    views = model.flows_view().flows
    heads = ["Flow", "Status", "On time (1 h)", "Budget left (24 h)"]
    heads += [f"p95 lag {label}" for _, label in WINDOWS]
    heads += ["Last hour (p95/min)", "Open breaches", "Pending", "Alerts"]
    numeric = {2, 3, 4, 5, 6, 8, 9}
    th = "".join(
        f"<th{' class=num' if i in numeric else ''}>{_e(h)}</th>" for i, h in enumerate(heads)
    )
    rows = "".join(_flow_rows(v, p95_by_minute(model, v.name)) for v in views)
    return (
        f'<h1>Flows</h1><table id="flows"><thead><tr>{th}</tr></thead><tbody>{rows}</tbody>'
        f"</table>{render_alerts(model)}"
    )


# ---- the breaches page -----------------------------------------------------------------


def _select(name: str, options: Iterable[str], chosen: str | None) -> str:
    opts = [f'<option value=""{"" if chosen else " selected"}>all</option>']
    opts += [
        f'<option value="{_e(o)}"{" selected" if o == chosen else ""}>{_e(o)}</option>'
        for o in options
    ]
    return f'<label>{_e(name)}<select name="{_e(name)}">{"".join(opts)}</select></label>'


def render_filters(model: ReadModel, flt: BreachFilter) -> str:
    """The filter form of ``/breaches`` (outside the refreshed part)."""
    return (
        '<div class="controls"><form class="filters" method="get" action="/breaches">'
        f"{_select('flow', model.flows, flt.flow)}{_select('kind', KINDS, flt.kind)}"
        f'{_select("status", STATUSES, flt.status)}<button type="submit">Filter</button>'
        "</form></div>"
    )


def _breach_row(b: BreachView) -> str:
    late = b.lag_ms is not None and b.lag_ms > b.target_ms
    cells = [
        f'<td><a href="{_e(entity_href(b.flow, b.key))}">{_e(b.breach_id)}</a></td>',
        f"<td>{_e(b.flow)}</td><td>{_badge(b.kind)}</td><td>{_badge(b.status)}</td>",
        f'<td class="num">{_e(fmt_time(b.started_at))}</td>',
        f'<td class="num">{_e(fmt_time(b.deadline))}</td>',
        f'<td class="num">{_e(fmt_time(b.detected_at))}</td>',
        f'<td class="num{" over" if late else ""}">{_e(fmt_ms(b.lag_ms))}</td>',
        f'<td class="num">{_e(fmt_target(b.target_ms))}</td>',
    ]
    return f'<tr data-breach="{_e(b.breach_id)}">{"".join(cells)}</tr>'


def render_breaches(model: ReadModel, flt: BreachFilter, cursor: str | None) -> str:
    """The body of ``/breaches``: one page of ``/v1/breaches`` with the same filters."""
    page = model.breaches_page(flt, cursor=cursor, limit=PAGE_SIZE)
    heads = ("Breach", "Flow", "Kind", "Status", "Started", "Deadline", "Detected", "Lag")
    th = "".join(f"<th>{h}</th>" for h in (*heads, "Target"))
    rows = "".join(_breach_row(b) for b in page.items)
    if not rows:
        rows = '<tr><td colspan="9" class="none">no breach matches</td></tr>'
    query = {k: v for k, v in (("flow", flt.flow), ("kind", flt.kind), ("status", flt.status)) if v}
    pager = ['<a href="/breaches?' + _e(urlencode(query)) + '">first page</a>'] if cursor else []
    if page.next_cursor is not None:
        nxt = urlencode({**query, "cursor": page.next_cursor})
        pager.append(f'<a rel="next" href="/breaches?{_e(nxt)}">next page</a>')
    return (
        '<h1>Breaches</h1><p class="sub">oldest deadline first, as <code>/v1/breaches</code>'
        f'</p><table id="breaches"><thead><tr>{th}</tr></thead><tbody>{rows}</tbody></table>'
        f'<div class="pager">{" · ".join(pager)}</div>'
    )


# ---- the entity page -------------------------------------------------------------------


def timeline_svg(c: EntityCycle, as_of: int | None) -> str:
    """Start to completion (or to ``as_of`` while overdue) on one axis, the deadline marked:
    the part within target green, the part past it red."""
    end = c.completed_at if c.completed_at is not None else (as_of or c.deadline)
    lo, hi = min(c.started_at, end), max(end, c.deadline)
    span = max(hi - lo, 1)

    def x(at: int) -> float:
        return round(10 + (at - lo) / span * 880, 1)

    start, dl, stop = x(c.started_at), x(c.deadline), x(end)
    red = (
        f'<rect x="{dl}" y="22" width="{round(stop - dl, 1)}" height="12" fill="#cf222e"/>'
        if end > c.deadline
        else ""
    )
    done = "completed" if c.completed_at is not None else "now (still open)"
    label = f"started {fmt_time(c.started_at)}; deadline {fmt_time(c.deadline)}; {done}"
    return (
        f'<svg class="timeline" viewBox="0 0 900 70" role="img" aria-label="{_e(label)}">'
        '<line x1="10" x2="890" y1="28" y2="28" stroke="#d0d7de"/>'
        f'<rect x="{start}" y="22" width="{round(min(stop, dl) - start, 1)}" height="12" '
        f'fill="#1a7f37"/>{red}'
        f'<line x1="{dl}" x2="{dl}" y1="14" y2="42" stroke="#1f2328" stroke-dasharray="3 2"/>'
        f"{_svg_label(dl, 56, 'deadline')}{_svg_label(start, 12, 'start')}"
        f"{_svg_label(stop, 12, done)}</svg>"
    )


def _svg_label(x: float, y: int, text: str) -> str:
    """A label at ``x`` that stays inside the 900-wide axis (anchored by the nearer edge)."""
    anchor = "start" if x < 120 else ("end" if x > 780 else "middle")
    return f'<text x="{x}" y="{y}" font-size="11" text-anchor="{anchor}">{_e(text)}</text>'


def _events_table(c: EntityCycle) -> str:
    rows = []
    for ev in c.timeline:
        src = (
            ""
            if ev.source is None
            else f"{ev.source.topic}[{ev.source.partition}]@{ev.source.offset}"
        )
        rows.append(
            f'<tr data-event="{_e(ev.kind)}"><td class="num">{_e(fmt_time(ev.at))}</td>'
            f'<td class="num">{_e(fmt_ms(ev.at - c.started_at))}</td><td>{_e(ev.kind)}</td>'
            f"<td>{_e(ev.event_id or '')}</td><td><code>{_e(src)}</code></td>"
            f"<td>{_e(ev.note)}</td></tr>"
        )
    th = "".join(f"<th>{h}</th>" for h in ("At", "Since start", "What", "Event", "Where", "Note"))
    return (
        f'<table class="events"><thead><tr>{th}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _cycle(c: EntityCycle, as_of: int | None) -> str:
    facts = (
        ("lag", _num("lag_ms", c.lag_ms, fmt_ms(c.lag_ms))),
        ("deadline", _e(fmt_time(c.deadline))),
        ("start event", _e(c.start_event_id)),
        ("completion event", _e(c.end_event_id or DASH)),
    )
    flags = [f for f, on in (("clock skew", c.clock_skew), ("out of order", c.out_of_order)) if on]
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    return (
        f'<section class="cycle" data-state="{_e(c.state)}"><h2>Started '
        f"{_e(fmt_time(c.started_at))} {_badge(c.state)}</h2>"
        f'<dl class="facts">{dl}</dl>'
        + (f'<p class="sub">{_e(", ".join(flags))}</p>' if flags else "")
        + f"{timeline_svg(c, as_of)}{_events_table(c)}</section>"
    )


_PARTS: Final = (
    ("start_to_kafka_ms", "start occurred -> start in Kafka"),
    ("lag_ms", "start occurred -> completion occurred (judged against the target)"),
    ("completion_to_kafka_ms", "completion occurred -> completion in Kafka"),
    ("monitor_ms", "-> the monitor's verdict in Kafka"),
)
_MOMENTS: Final = (
    ("started_at", "start occurred"),
    ("start_in_kafka", "start in Kafka"),
    ("deadline", "deadline"),
    ("completed_at", "completion occurred"),
    ("completion_in_kafka", "completion in Kafka"),
    ("verdict_at", "verdict in Kafka"),
)


def _part_row(name: str, label: str, ms: int | None, widest: int, slowest: bool) -> str:
    width = 0 if ms is None or widest <= 0 else max(1, round(max(ms, 0) / widest * 300))
    fill = "#cf222e" if slowest else "#0969da"
    bar = (
        f'<svg class="part" viewBox="0 0 300 10" role="presentation">'
        f'<rect width="{width}" height="10" fill="{fill}"/></svg>'
    )
    cell = _num(f"decomposition.{name}", ms, fmt_ms(ms), "over" if slowest else "")
    return (
        f'<tr data-part="{name}"><td>{_e(label)}</td><td class="num">{cell}</td><td>{bar}</td></tr>'
    )


def render_explanation(ex: EntityExplanation, *, with_kafka: bool, href: str) -> str:
    """The verdict's arithmetic and where the time went (``/v1/entities/.../explain``)."""
    d = ex.decomposition
    parts = [(n, label, getattr(d, n)) for n, label in _PARTS]
    widest = max((ms for _, _, ms in parts if ms is not None), default=0)
    rows = "".join(_part_row(n, label, ms, widest, n == d.slowest) for n, label, ms in parts)
    moments = "".join(
        f"<dt>{_e(label)}</dt><dd>{_e(fmt_time(getattr(d, n)))}</dd>" for n, label in _MOMENTS
    )
    verdict = "".join(f"<li><code>{_e(line)}</code></li>" for line in ex.verdict)
    notes = "".join(f"<li>{_e(n)}</li>" for n in ex.notes)
    more = (
        "Kafka timestamps read from the entity's records."
        if with_kafka
        else f'Kafka timestamps are not in the read model: <a href="{_e(href)}?kafka=1">read '
        "them from Kafka</a> to fill in every part."
    )
    return (
        f'<section id="explain"><h2>Lag decomposition</h2><ul class="verdict">{verdict}</ul>'
        f'<table class="parts"><tbody>{rows}</tbody></table><p class="sub">{more}</p>'
        f'<dl class="facts">{moments}</dl>'
        + (f'<ul class="reasons">{notes}</ul>' if notes else "")
        + "</section>"
    )


def render_entity(
    model: ReadModel, flow: str, key: str, explanation: EntityExplanation | None, with_kafka: bool
) -> str:
    """The body of ``/entities/{flow}/{key}``: its explanation, then its cycles."""
    view: EntityView = model.entity_view(flow, key)
    stats = model.stats.get(flow)
    as_of = None if stats is None else stats.as_of()
    href = entity_href(flow, key)
    explained = (
        ""
        if explanation is None
        else render_explanation(explanation, with_kafka=with_kafka, href=href)
    )
    cycles = "".join(_cycle(c, as_of) for c in view.cycles)
    return (
        f"<h1>{_e(view.flow)} / {_e(view.key)} {_field('state', view.state, _badge(view.state))}"
        "</h1>"
        f'<p class="where" data-field="where">{_e(view.where)}</p>'
        f'<p class="sub">target {fmt_target(view.target_ms)} · {len(view.cycles)} '
        f"cycle{'s' if len(view.cycles) != 1 else ''}, newest first · "
        f'<a href="/v1{_e(href)}">JSON</a> · <a href="/v1{_e(href)}/explain">explain JSON</a></p>'
        f"{explained}{cycles}"
    )


# ---- pages and routes ------------------------------------------------------------------


def page(
    model: ReadModel,
    title: str,
    here: str,
    body: str,
    *,
    controls: str = "",
    status: int = 200,
    refresh: bool = True,
) -> HTMLResponse:
    """The whole document: shell, navigation, inline style and script, security headers.
    ``refresh`` False marks ``#live`` so that the script leaves it alone."""
    nav = "".join(
        f'<a href="{href}"{" class=here" if key == here else ""}>{label}</a>'
        for href, label, key in _NAV
    )
    text = _SHELL.substitute(
        title=_e(title),
        nav=nav,
        controls=controls,
        body=_blind_notice(model) + body,
        rendered_at=str(model.clock()),
        refresh="on" if refresh else "off",
        style=_STYLE,
        script=_SCRIPT,
    )
    return HTMLResponse(text, status_code=status, headers=_HEADERS)


def _blind_notice(model: ReadModel) -> str:
    """While Kafka is silent, a notice that the page is the last state read (empty else)."""
    source = model.source_view(model.clock())
    if source.connected:
        return ""
    seconds = source.stale_for_ms // 1000
    return (
        '<p class="panel firing" id="kafka-unreachable">Kafka is not answering: this is the '
        f"last state read, {seconds} s old.</p>"
    )


def _problem(model: ReadModel, exc: Exception, here: str) -> HTMLResponse:
    status = 404 if isinstance(exc, NotFoundError) else 422
    title = "Not found" if status == 404 else "Bad request"
    body = f'<h1>{title}</h1><p class="where">{_e(exc)}</p>'
    return page(model, title, here, body, status=status, refresh=False)


def _choice(value: str | None, allowed: Iterable[str], name: str) -> str | None:
    if not value:
        return None
    if value not in allowed:
        raise InvalidQueryError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


_ROOT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "The status page."},
    # JSON, as every refusal: no "model" here, which FastAPI would document as HTML.
    401: {
        "description": "Token required and missing or wrong.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    },
}
"""What ``/`` answers, as its OpenAPI entry documents it."""


def router(model: ReadModel, settings: Settings, lookup: EntityLookup | None = None) -> APIRouter:
    """The status pages over ``model`` (HTML; only ``/`` is in the OpenAPI document, so the
    fuzzer reaches the page; its query-driven siblings are not). ``lookup``
    reads an entity's records from Kafka for its page's ``?kafka=1`` (default: from
    ``settings``, made on first use)."""
    r = APIRouter(default_response_class=HTMLResponse)
    found: list[EntityLookup] = [] if lookup is None else [lookup]

    def kafka() -> EntityLookup:
        if not found:
            from streams.flows.config import load_flows
            from streams.replay.lookup import EntityRecords

            found.append(EntityRecords(settings, load_flows(settings.flows)))
        return found[0]

    @r.get(
        "/",
        response_class=HTMLResponse,
        responses=_ROOT_RESPONSES,
        summary="The status page (HTML): every flow's status, budget, lag and alerts",
    )
    async def flows() -> HTMLResponse:
        return page(model, "Flows", "flows", render_flows(model))

    @r.get("/breaches", include_in_schema=False)
    async def breaches(
        flow: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        cursor: Annotated[str | None, Query(pattern=CURSOR_PATTERN)] = None,
    ) -> HTMLResponse:
        try:
            flt = BreachFilter(
                flow=flow or None,
                kind=_choice(kind, KINDS, "kind"),
                status=_choice(status, STATUSES, "status"),
            )
            body = render_breaches(model, flt, cursor)
        except (NotFoundError, InvalidQueryError) as exc:
            return _problem(model, exc, "breaches")
        controls = render_filters(model, flt)
        return page(model, "Breaches", "breaches", body, controls=controls)

    @r.get("/entities/{flow}/{key:path}", include_in_schema=False)
    async def entity(
        flow: Annotated[str, Path()],
        key: Annotated[str, Path()],
        kafka_: Annotated[bool, Query(alias="kafka")] = False,
    ) -> HTMLResponse:
        return await _entity_page(model, flow, key, kafka() if kafka_ else None)

    return r


async def _entity_page(
    model: ReadModel, flow: str, key: str, lookup: EntityLookup | None
) -> HTMLResponse:
    """The entity's page; with ``lookup`` (``?kafka=1``) its explanation reads Kafka, and the
    page does not refresh itself (each refresh would read Kafka again)."""
    note = ""
    try:
        try:
            explanation = await explain_entity(model, flow, key, lookup, now=model.clock())
        except BrokerError as exc:
            note = f'<p class="panel firing">Kafka could not be read: {_e(exc)}</p>'
            explanation = await explain_entity(model, flow, key, None, now=model.clock())
        body = render_entity(model, flow, key, explanation, lookup is not None and not note)
    except NotFoundError as exc:
        return _problem(model, exc, "")
    return page(model, f"{flow} / {key}", "", note + body, refresh=lookup is None)
