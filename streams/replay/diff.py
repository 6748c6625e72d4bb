"""``--diff``: the replay's verdicts against what the live monitor holds for the same starts.

Pure: the caller reads the live ``freshness.measurements``, ``freshness.breaches`` and
``freshness.alerts`` records (:class:`LiveRecord`) and :func:`compare` judges them against a
:class:`~streams.replay.engine.ReplayResult`.

**The unit compared** is one start: ``(flow:key, start_event_id)``. A live record speaks
for a start in the replay's scope by the same rule the replay uses: its ``start_source``
or its ``end_source`` lies in the range of its partition. A live start whose completion is
in the range but whose start lies before the replay's lookback is not compared (the replay
could not see it); it is counted in ``outside_lookback``.

**What the live monitor said as of the range's end.** The live monitor went on reading
after the range, so its final state may rest on records the replay never read. Before
comparing, the live state of each start is cut at the range's end, by position: a live
completion whose ``end_source`` lies at or past the end of the range did not exist at that
moment, so the start was then ``lost`` if ``started_at + give_up_after`` lay behind the
replay's final watermark of the completion topic, else ``overdue`` if its deadline did,
else still pending (no record). The same rule turns a live ``lost`` whose give-up lies past
the range's end back into ``overdue``.

**Equality.** A measurement matches when every field is equal except ``out_of_order``: it
says whether the completion was *read* before its start, which depends on how fetches
interleaved partitions (the replay reads in Kafka-time order). A breach matches when every
field is equal except ``detected_at``: it is the watermark at which the breach was declared
(live, the wall clock minus the grace at the worker's tick; replayed, the Kafka time minus
the grace at the replay's sweep, or the range's end), and for ``late`` it is the
completion's time unless the start had been declared overdue first, which depends on
whether a sweep fell between reading the two. Kind, status, times, lag, target, event ids
and source positions must all be equal. A retracted breach (tombstone) equals no breach.

**Not yet judged.** A replayed ``overdue`` the live monitor has no record of is a
difference, unless its deadline lies within ``judge_delay_ms`` (the worker's watermark
grace plus one tick) of the range's end: a caught-up live monitor declares it only that
much later, so it may simply not have happened yet. Such starts are counted in
``not_yet_judged``.

**Pages.** Every start a live page named (a firing ``freshness.alerts`` state lists its
oldest overdue starts in ``details.oldest``: key and deadline) must be one the replay
judged page-worthy: a breach of that key with that deadline (overdue, late or lost). One the
replay judged on time is a difference (``record`` "page", kind ``missing``: the replay has
no breach to back the page): the answer to "was that page real?". A named start the replay
holds no verdict for with that deadline (another cycle of the key, a start outside the
range, or a ``--flows`` file with another target) is not compared; it is counted in
``pages_unmatched``. Burn-rate pages count starts and name none, so they are not compared;
whether the replay *would have* paged is a question of the alert policy over its windows,
which the range alone does not hold (``docs/replay.md``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from streams import topics
from streams.core.model import Flow
from streams.pipeline import codec
from streams.replay.engine import ReplayResult, Span
from streams.replay.merge import TopicPartition

Record = dict[str, Any]
StartId = tuple[str, str]
"""(breach id ``flow:key``, start_event_id)."""

IGNORED_MEASUREMENT_FIELDS = frozenset({"out_of_order"})
IGNORED_BREACH_FIELDS = frozenset({"detected_at"})


@dataclass(frozen=True, slots=True)
class LiveRecord:
    """One record of a live output topic (``value`` None: a tombstone)."""

    topic: str
    key: str
    value: Record | None
    partition: int
    offset: int
    timestamp: int = -1


@dataclass(frozen=True, slots=True)
class Difference:
    kind: Literal["missing", "extra", "different"]
    """missing: live has it, the replay not; extra: the other way round."""
    breach_id: str
    start_event_id: str
    record: Literal["measurement", "breach", "page"]
    field: str | None = None
    live: Any = None
    replay: Any = None

    def line(self) -> str:
        """One line for the terminal, naming the entity."""
        where = f"{self.breach_id} (start {self.start_event_id})"
        if self.record == "page":
            verdict = _brief(self.replay)
            return f"unbacked  {where}: {_brief(self.live)}; the replay judges it {verdict}"
        if self.kind == "different":
            return (
                f"different {where}: {self.record}.{self.field}: live {_show(self.live)}, "
                f"replay {_show(self.replay)}"
            )
        if self.kind == "missing":
            return f"missing   {where}: live has {self.record} {_brief(self.live)}; replay none"
        return f"extra     {where}: replay has {self.record} {_brief(self.replay)}; live none"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "breach_id": self.breach_id,
            "start_event_id": self.start_event_id,
            "record": self.record,
            "field": self.field,
            "live": self.live,
            "replay": self.replay,
        }


@dataclass(slots=True)
class DiffReport:
    compared: int = 0
    """Starts compared."""
    differences: list[Difference] = field(default_factory=list)
    outside_lookback: int = 0
    not_yet_judged: int = 0
    pages_checked: int = 0
    """Starts named by live pages that the replay judged too."""
    pages_unmatched: int = 0


@dataclass(slots=True)
class _Start:
    replay_m: Record | None = None
    replay_b: Record | None = None
    live_m: Record | None = None
    live_b: Record | None = None


def compare(
    result: ReplayResult,
    spans: Mapping[TopicPartition, Span],
    live: Iterable[LiveRecord],
    *,
    judge_delay_ms: int,
) -> DiffReport:
    """Every difference between ``result`` and the ``live`` records (module docstring)."""
    flows = {f.name: f for f in result.flows}
    report = DiffReport()
    starts = _replayed(result)
    for sid, (m, b) in _live_states(live, flows).items():
        if not (_speaks_for_range(m, spans) or _speaks_for_range(b, spans)):
            continue
        if _before_lookback(m, spans) or _before_lookback(b, spans):
            report.outside_lookback += 1
            continue
        entry = starts.setdefault(sid, _Start())
        entry.live_m, entry.live_b = m, b
    for sid in sorted(starts):
        entry = starts[sid]
        flow = flows[sid[0].split(":", 1)[0]]
        want_m, want_b = _as_of_end(entry, flow, result, spans)
        if want_b is None and _not_yet_judged(entry, want_m, result.to_ms, judge_delay_ms):
            report.not_yet_judged += 1
            continue
        report.compared += 1
        report.differences += _differences(sid, "measurement", want_m, entry.replay_m)
        report.differences += _differences(sid, "breach", want_b, entry.replay_b)
    _check_pages(result, live, report)
    return report


@dataclass(frozen=True, slots=True)
class _Page:
    """One start a firing live alert state named."""

    alert_id: str
    version: int
    breach_id: str
    deadline: int

    def to_json(self) -> dict[str, Any]:
        return {"alert_id": self.alert_id, "version": self.version, "deadline": self.deadline}


def _pages(live: Iterable[LiveRecord], flows: Iterable[str]) -> list[_Page]:
    """The starts named by the firing ``freshness.alerts`` states of ``flows``, each once
    (the first state that named it)."""
    names = set(flows)
    seen: dict[tuple[str, int], _Page] = {}
    for rec in sorted(live, key=lambda r: (r.partition, r.offset)):
        value = rec.value
        if rec.topic != topics.ALERTS or value is None or value.get("status") != "firing":
            continue
        flow = value.get("flow")
        details = value.get("details")
        oldest = details.get("oldest") if isinstance(details, dict) else None
        if flow not in names or not isinstance(oldest, list):
            continue
        for entry in oldest:
            if not isinstance(entry, dict):
                continue
            key, deadline = entry.get("key"), entry.get("deadline")
            if isinstance(key, str) and isinstance(deadline, int):
                page = _Page(rec.key, rec.offset, f"{flow}:{key}", deadline)
                seen.setdefault((page.breach_id, deadline), page)
    return list(seen.values())


def _check_pages(result: ReplayResult, live: Iterable[LiveRecord], report: DiffReport) -> None:
    for page in _pages(live, (f.name for f in result.flows)):
        b = result.breaches.get(page.breach_id)
        m = result.measurements.get(page.breach_id)
        if b is not None and b.deadline == page.deadline:
            report.pages_checked += 1
        elif m is not None and m.started_at + m.target_ms == page.deadline:
            report.pages_checked += 1
            verdict = {"on_time": m.on_time, "lag_ms": m.lag_ms, "target_ms": m.target_ms}
            report.differences.append(
                Difference(
                    "missing",
                    page.breach_id,
                    m.start_event_id,
                    "page",
                    live=page.to_json(),
                    replay=verdict,
                )
            )
        else:
            report.pages_unmatched += 1


def _replayed(result: ReplayResult) -> dict[StartId, _Start]:
    starts: dict[StartId, _Start] = {}
    for key, m in result.measurements.items():
        rec = orjson.loads(codec.measurement_kv(m)[1])
        starts.setdefault((key, m.start_event_id), _Start()).replay_m = rec
    for bid, b in result.breaches.items():
        rec = orjson.loads(codec.breach_kv(b)[1])
        starts.setdefault((bid, b.start_event_id), _Start()).replay_b = rec
    return starts


def _live_states(
    live: Iterable[LiveRecord], flows: Mapping[str, Flow]
) -> dict[StartId, tuple[Record | None, Record | None]]:
    """The final live measurement and breach of every start of ``flows``, in log order per
    partition; a tombstone deletes the breach of the start that was current for its key."""
    measurements: dict[StartId, Record] = {}
    breaches: dict[StartId, Record | None] = {}
    current: dict[str, StartId] = {}
    ordered = sorted(live, key=lambda r: (r.topic, r.partition, r.offset))
    for rec in ordered:
        if rec.key.split(":", 1)[0] not in flows:
            continue
        value = rec.value
        if rec.topic == topics.MEASUREMENTS and value is not None:
            measurements[(rec.key, str(value["start_event_id"]))] = value
        elif rec.topic == topics.BREACHES:
            if value is not None:
                sid = (rec.key, str(value["start_event_id"]))
                breaches[sid] = value
                current[rec.key] = sid
            elif rec.key in current:
                breaches[current[rec.key]] = None
    out: dict[StartId, tuple[Record | None, Record | None]] = {}
    for sid in measurements.keys() | breaches.keys():
        out[sid] = (measurements.get(sid), breaches.get(sid))
    return out


def _position(src: Any) -> tuple[TopicPartition, int] | None:
    if not isinstance(src, dict):
        return None
    return (str(src["topic"]), int(src["partition"])), int(src["offset"])


def _in_range(src: Any, spans: Mapping[TopicPartition, Span]) -> bool:
    pos = _position(src)
    span = None if pos is None else spans.get(pos[0])
    return span is not None and pos is not None and span.in_range(pos[1])


def _speaks_for_range(rec: Record | None, spans: Mapping[TopicPartition, Span]) -> bool:
    if rec is None:
        return False
    return _in_range(rec.get("start_source"), spans) or _in_range(rec.get("end_source"), spans)


def _before_lookback(rec: Record | None, spans: Mapping[TopicPartition, Span]) -> bool:
    pos = None if rec is None else _position(rec.get("start_source"))
    span = None if pos is None else spans.get(pos[0])
    return span is not None and pos is not None and pos[1] < span.read_from


def _past_end(src: Any, spans: Mapping[TopicPartition, Span]) -> bool:
    pos = _position(src)
    span = None if pos is None else spans.get(pos[0])
    return span is not None and pos is not None and pos[1] >= span.end


def _as_of_end(
    entry: _Start, flow: Flow, result: ReplayResult, spans: Mapping[TopicPartition, Span]
) -> tuple[Record | None, Record | None]:
    """The live measurement and breach of the start as they stood at the range's end."""
    m, b = entry.live_m, entry.live_b
    completed_later = m is not None and _past_end(m.get("end_source"), spans)
    if b is not None and _past_end(b.get("end_source"), spans):
        completed_later = True
    lost_later = b is not None and b["kind"] == "lost"
    if not (completed_later or lost_later):
        return m, b
    base = b if b is not None else m
    assert base is not None
    started = int(base["started_at"])
    wm = result.watermarks.get(flow.end_topic)
    if wm is None or started + flow.target_ms >= wm:
        return None, None
    lost = started + flow.give_up_after_ms < wm
    kind, status = ("lost", "closed") if lost else ("overdue", "open")
    if b is not None and b["kind"] == kind:
        return None, b
    breach = {
        "breach_id": f"{flow.name}:{base['key']}",
        "flow": flow.name,
        "key": base["key"],
        "kind": kind,
        "status": status,
        "started_at": started,
        "deadline": started + int(base["target_ms"]),
        "detected_at": None,
        "completed_at": None,
        "lag_ms": None,
        "target_ms": base["target_ms"],
        "start_event_id": base["start_event_id"],
        "start_source": base.get("start_source"),
        "end_source": None,
    }
    return None, breach


def _not_yet_judged(entry: _Start, want_m: Record | None, to_ms: int, delay_ms: int) -> bool:
    rb = entry.replay_b
    if want_m is not None or entry.live_b is not None or rb is None or rb["kind"] != "overdue":
        return False
    return int(rb["deadline"]) >= to_ms - delay_ms


def _differences(
    sid: StartId,
    what: Literal["measurement", "breach"],
    live: Record | None,
    replay: Record | None,
) -> list[Difference]:
    bid, start = sid
    if live is None and replay is None:
        return []
    if replay is None:
        return [Difference("missing", bid, start, what, live=live)]
    if live is None:
        return [Difference("extra", bid, start, what, replay=replay)]
    ignored = IGNORED_MEASUREMENT_FIELDS if what == "measurement" else IGNORED_BREACH_FIELDS
    names = sorted((live.keys() | replay.keys()) - ignored)
    return [
        Difference("different", bid, start, what, name, live.get(name), replay.get(name))
        for name in names
        if live.get(name) != replay.get(name)
    ]


def _show(value: Any) -> str:
    return orjson.dumps(value).decode() if isinstance(value, dict | list) else str(value)


def _brief(rec: Any) -> str:
    if not isinstance(rec, dict):
        return ""
    if "alert_id" in rec:
        return f"page {rec['alert_id']} (version {rec['version']}) named it overdue"
    if "kind" in rec:
        return f"({rec['kind']}, {rec['status']})"
    verdict = "on time" if rec.get("on_time") else "late"
    return f"(lag {rec.get('lag_ms')} ms, {verdict})"
