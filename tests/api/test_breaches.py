"""Breach index: keyset pagination, stability while breaches arrive, filters."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.breaches import BreachFilter, BreachIndex, InvalidCursorError, decode_cursor, encode_cursor
from api.errors import InvalidQueryError, NotFoundError
from api.readmodel import ReadModel
from tests.api.records import NOW, Records


def walk(model: ReadModel, flt: BreachFilter, limit: int, between: Any = None) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page = model.breaches_page(flt, cursor=cursor, limit=limit)
        assert len(page.items) <= limit
        ids += [b.breach_id for b in page.items]
        if page.next_cursor is None:
            return ids
        assert len(page.items) == limit
        cursor = page.next_cursor
        if between is not None:
            between()


def seed(model: ReadModel, rec: Records, n: int, rng: random.Random) -> list[dict[str, Any]]:
    records = []
    for i in range(n):
        flow = rng.choice(["lead_to_posthog", "dlq_first_retry"])
        kind = rng.choice(["overdue", "late", "lost"])
        r = rec.breach(
            f"k{i}",
            flow=flow,
            kind=kind,
            started_at=NOW - rng.randint(0, 50) * 1000,  # many ties on the deadline
            detected_at=NOW - rng.randint(0, 600_000),
            completed_at=NOW if kind == "late" else None,
        )
        model.apply("freshness.breaches", r)
        records.append(r)
    return records


def test_walk_returns_every_breach_exactly_once_in_order(model: ReadModel, rec: Records) -> None:
    seed(model, rec, 250, random.Random(1))
    for limit in (1, 7, 100, 1000):
        ids = walk(model, BreachFilter(), limit)
        assert len(ids) == 250
        assert len(set(ids)) == 250
    page = model.breaches_page(BreachFilter(), cursor=None, limit=1000)
    keys = [(b.deadline, b.breach_id) for b in page.items]
    assert keys == sorted(keys)


def test_walk_while_breaches_arrive_and_change(model: ReadModel, rec: Records) -> None:
    rng = random.Random(2)
    existing = {r["breach_id"] for r in seed(model, rec, 120, rng)}
    counter = iter(range(10_000))
    added: list[str] = []

    def between() -> None:
        for _ in range(3):  # new breaches, some sorting before the cursor, some after
            i = next(counter)
            r = rec.breach(f"new{i}", started_at=NOW - rng.randint(0, 60) * 1000)
            model.apply("freshness.breaches", r)
            added.append(r["breach_id"])
        # an existing breach turns late (new detected_at, same deadline): it must not move
        victim = rng.choice(sorted(existing))
        current = model.breaches.get(victim)
        assert current is not None
        late = rec.breach(
            current["key"],
            flow=current["flow"],
            kind="late",
            started_at=current["started_at"],
            detected_at=NOW + 5_000,
            completed_at=NOW + 5_000,
        )
        model.apply("freshness.breaches", late)

    ids = walk(model, BreachFilter(), 10, between)
    assert len(ids) == len(set(ids)), "a breach appeared twice in one walk"
    assert existing <= set(ids), "a breach that existed before the walk was skipped"
    assert set(ids) <= existing | set(added)


def test_update_keeps_position(model: ReadModel, rec: Records) -> None:
    model.apply("freshness.breaches", rec.breach("b", started_at=NOW - 10))
    model.apply("freshness.breaches", rec.breach("a", started_at=NOW - 10))
    model.apply("freshness.breaches", rec.breach("c", started_at=NOW - 11))
    model.apply(
        "freshness.breaches",
        rec.breach("a", kind="late", started_at=NOW - 10, detected_at=NOW, completed_at=NOW),
    )
    items = model.breaches_page(BreachFilter(), cursor=None, limit=10).items
    assert [b.key for b in items] == ["c", "a", "b"]
    assert items[1].status == "closed"
    assert items[1].detected_at == NOW


def test_a_new_start_breaching_again_moves_the_breach(model: ReadModel, rec: Records) -> None:
    model.apply("freshness.breaches", rec.breach("a", kind="late", started_at=NOW - 99))
    model.apply("freshness.breaches", rec.breach("b", started_at=NOW - 50))
    model.apply("freshness.breaches", rec.breach("a", started_at=NOW, start_event_id="s2"))
    items = model.breaches_page(BreachFilter(), cursor=None, limit=10).items
    assert [(b.key, b.start_event_id) for b in items] == [("b", "s-b"), ("a", "s2")]
    assert model.flow_view("lead_to_posthog").open_breaches == 2


def test_tombstone_removes_a_breach(model: ReadModel, rec: Records) -> None:
    model.apply("freshness.breaches", rec.breach("a"))
    model.apply_raw("freshness.breaches", b"lead_to_posthog:a", None)
    assert model.breaches_page(BreachFilter(), cursor=None, limit=10).items == []
    with pytest.raises(NotFoundError):
        model.breach_view("lead_to_posthog:a")
    assert model.flow_view("lead_to_posthog").open_breaches == 0


FILTERS = st.builds(
    BreachFilter,
    flow=st.sampled_from([None, "lead_to_posthog", "dlq_first_retry"]),
    kind=st.sampled_from([None, "overdue", "late", "lost"]),
    status=st.sampled_from([None, "open", "closed"]),
    since=st.one_of(st.none(), st.integers(NOW - 50_000, NOW + 5_000)),
    until=st.one_of(st.none(), st.integers(NOW - 50_000, NOW + 5_001)),
)


@settings(max_examples=60, deadline=None)
@given(flt=FILTERS, limit=st.integers(1, 40), seed_=st.integers(0, 3))
def test_every_filter_narrows_to_exactly_the_matching_breaches(
    flt: BreachFilter, limit: int, seed_: int
) -> None:
    from tests.api.records import make_model

    model = make_model()
    records = seed(model, Records(), 80, random.Random(seed_))

    def matches(r: dict[str, Any]) -> bool:
        return (
            (flt.flow is None or r["flow"] == flt.flow)
            and (flt.kind is None or r["kind"] == flt.kind)
            and (flt.status is None or r["status"] == flt.status)
            and (flt.since is None or r["deadline"] >= flt.since)
            and (flt.until is None or r["deadline"] < flt.until)
        )

    want = sorted((r["deadline"], r["breach_id"]) for r in records if matches(r))
    got = walk(model, flt, limit)
    assert got == [b for _, b in want]


def test_cursor_round_trip_and_rejection() -> None:
    for key in ((123, "f:k"), (0, ""), (NOW, "lead:\u00e9\U0001f600/x")):
        assert decode_cursor(encode_cursor(key)) == key
    for bad in ("zz", "!!!", "12", "12.abc", "x.00", "1234567890123456.00", "12.0G"):
        with pytest.raises(InvalidCursorError):
            decode_cursor(bad)


def test_any_well_formed_cursor_is_a_position(model: ReadModel, rec: Records) -> None:
    for i in range(5):
        model.apply("freshness.breaches", rec.breach(f"k{i}", started_at=NOW + i))
    page = model.breaches_page(BreachFilter(), cursor=f"{NOW + 5_002}.ff00", limit=10)
    assert [b.key for b in page.items] == ["k3", "k4"]


def test_foreign_cursor_and_unknown_flow_filter_are_errors(model: ReadModel) -> None:
    with pytest.raises(InvalidQueryError):
        model.breaches_page(BreachFilter(), cursor="not-a-cursor", limit=5)
    with pytest.raises(NotFoundError):
        model.breaches_page(BreachFilter(flow="nope"), cursor=None, limit=5)


def test_index_open_breaches_per_flow() -> None:
    rec = Records()
    index = BreachIndex()
    index.apply("lead_to_posthog:a", rec.breach("a"))
    index.apply("lead_to_posthog:b", rec.breach("b"))
    index.apply("lead_to_posthog:b", rec.breach("b", kind="lost"))
    assert [r["key"] for r in index.open_for("lead_to_posthog")] == ["a"]
    assert index.open_for("dlq_first_retry") == []
