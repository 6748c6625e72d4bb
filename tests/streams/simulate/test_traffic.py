"""The traffic planner: fractions, lags, timing rules, and records the real decoder accepts."""

from __future__ import annotations

from collections import Counter

import pytest

from streams.core.timeparse import format_event_time, parse_event_time
from streams.errors import InputError
from streams.flows import load_flows
from streams.pipeline.decoder import Decoder
from streams.simulate.traffic import (
    LOOKAHEAD_MS,
    MALFORMED_REASONS,
    MISSING_SLACK_MS,
    SKEW_MAX_MS,
    Fractions,
    Planned,
    Planner,
    TrafficConfig,
)

FLOWS = load_flows(None)
T0 = 1_776_941_217_000
FRACTIONS = Fractions(
    late=0.1, missing=0.05, out_of_order=0.1, skew=0.05, duplicate=0.1, malformed=0.03
)


def config(**kw: object) -> TrafficConfig:
    args: dict[str, object] = {
        "flows": FLOWS,
        "run_id": "r1",
        "rate": 2000.0,
        "fractions": FRACTIONS,
        "seed": 3,
    }
    args.update(kw)
    return TrafficConfig(**args)  # type: ignore[arg-type]


def drain(planner: Planner, until: int) -> list[Planned]:
    planner.plan_until(until)
    return planner.pop_due(2**62)


def test_case_fractions_are_honoured_for_a_seed() -> None:
    planner = Planner(config(), T0)
    drain(planner, T0 + 40_000)  # about 40 s of 2000 records/s
    cases = planner.planned_cases
    total = sum(cases.values())
    assert total > 30_000
    for case, share in (
        ("late", 0.1),
        ("missing", 0.05),
        ("out_of_order", 0.1),
        ("skew", 0.05),
        ("duplicate", 0.1),
        ("on_time", 0.6),
    ):
        sigma = (share * (1 - share) / total) ** 0.5
        assert abs(cases[case] / total - share) < 5 * sigma, (case, cases[case], total)
    records = total * (2 - 0.05 + 0.1) + planner.malformed_planned
    assert abs(planner.malformed_planned / records - 0.03) < 0.003
    assert abs(records / 40 - 2000) < 2000 * 0.03, "the record rate is --rate"


def test_same_seed_same_traffic_other_seed_other_traffic() -> None:
    def values(seed: int) -> list[tuple[int, str, bytes | None]]:
        return [
            (r.due, r.topic, r.value) for r in drain(Planner(config(seed=seed), T0), T0 + 5_000)
        ]

    assert values(1) == values(1)
    assert values(1) != values(2)


def test_lags_and_due_times_follow_the_case() -> None:
    planner = Planner(config(), T0)
    recs = drain(planner, T0 + 20_000)
    by_entity: dict[int, list[Planned]] = {}
    for r in recs:
        if r.entity is not None:
            by_entity.setdefault(r.entity.n, []).append(r)
    assert by_entity
    for group in by_entity.values():
        ent = group[0].entity
        assert ent is not None
        roles = {r.role: r for r in group}
        start, target = roles["start"], ent.flow.target_ms
        assert len(group) == ent.records
        if ent.case == "missing":
            assert ent.lag_ms is None
            assert set(roles) <= {"start", "dup_start"}
            assert start.due == ent.started_at
            continue
        assert ent.lag_ms is not None
        end = roles["end"]
        assert end.due == ent.started_at + ent.lag_ms, "a completion is produced when it happens"
        if ent.case == "late":
            assert ent.lag_ms > target
        elif ent.case == "skew":
            assert -SKEW_MAX_MS <= ent.lag_ms < 0
            assert end.due < start.due == ent.started_at
        else:
            assert 0 <= ent.lag_ms <= target
        if ent.case == "out_of_order":
            assert start.due > end.due, "the start is delivered after its completion"
            assert (start.due, start.seq) > (end.due, end.seq)
        elif ent.case != "skew":
            assert start.due == ent.started_at
        if ent.case == "duplicate":
            dup = next(r for r in group if r.role.startswith("dup_"))
            orig = roles[dup.role.removeprefix("dup_")]
            assert dup.value == orig.value
            assert dup.due > orig.due


def test_no_record_is_planned_already_due() -> None:
    """Planning runs LOOKAHEAD_MS ahead, so even a skewed completion is planned in time."""
    planner = Planner(config(), T0)
    now, seen = T0, -1
    while now < T0 + 10_000:
        planner.plan_until(now + LOOKAHEAD_MS)
        fresh = [r for r in planner.queue if r.seq > seen]
        assert all(r.due >= now for r in fresh)
        seen = max([seen, *(r.seq for r in fresh)])
        planner.pop_due(now)
        now += 7


def test_records_decode_as_planned() -> None:
    decoder = Decoder(FLOWS)
    recs = drain(Planner(config(), T0), T0 + 10_000)
    reasons = Counter[str]()
    for off, r in enumerate(recs):
        if r.role == "malformed":
            with pytest.raises(InputError) as err:
                decoder.decode(r.topic, 0, off, r.value)
            assert err.value.reason == r.reason
            assert b"sim-r1-bad-" in (r.value or b"")
            reasons[err.value.reason] += 1
            continue
        ent = r.entity
        assert ent is not None
        (ev,) = decoder.decode(r.topic, 0, off, r.value)
        assert (ev.flow, ev.key) == (ent.flow.name, ent.key)
        assert ev.key.startswith("sim-r1-")
        if r.role.endswith("start"):
            assert (ev.side, ev.occurred_at, ev.event_id) == (
                "start",
                ent.started_at,
                f"{ent.key}-s",
            )
        else:
            assert ent.lag_ms is not None
            assert (ev.side, ev.occurred_at) == ("end", ent.started_at + ent.lag_ms)
    assert set(reasons) == set(MALFORMED_REASONS)


def test_finite_run_plans_only_what_is_decided_before_the_end() -> None:
    end = T0 + 30_000
    planner = Planner(config(rate=500.0), T0, end)
    recs = drain(planner, end + 10**9)
    assert planner.exhausted()
    assert recs
    assert all(r.due < end for r in recs)
    for r in recs:
        ent = r.entity
        if ent is not None and ent.lag_ms is None:
            assert ent.deadline + MISSING_SLACK_MS < end
    assert planner.skipped > 0, "long flows thin out near the end"
    flows = Counter(r.entity.flow.name for r in recs if r.entity is not None and r.role == "start")
    assert flows["approval_to_notification"] > 0


@pytest.mark.parametrize(
    "fractions",
    [Fractions(late=1.5), Fractions(late=0.6, missing=0.6), Fractions(malformed=1.0)],
)
def test_bad_fractions_are_refused(fractions: Fractions) -> None:
    with pytest.raises(ValueError, match=r"must be|add up"):
        Planner(config(fractions=fractions), T0)


@pytest.mark.parametrize("ms", [0, 1, 999, T0, T0 + 1, 253_402_300_799_999])
def test_rfc3339_is_exact_to_the_millisecond(ms: int) -> None:
    assert parse_event_time(format_event_time(ms)) == ms
