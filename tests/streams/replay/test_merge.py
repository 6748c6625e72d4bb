"""TimeMerge: slices of Kafka time in an order that depends on the records alone."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.pipeline.ingest import InputRecord
from streams.replay.merge import TimeMerge

A, B = ("a", 0), ("b", 0)


def rec(tp: tuple[str, int], offset: int, ts: int) -> InputRecord:
    return (tp[0], tp[1], offset, ts, None)


def drain(merge: TimeMerge) -> list[tuple[int, list[tuple[str, int]]]]:
    return [(until, [(r[0], r[2]) for r in recs]) for until, recs in merge.ready()]


def test_a_slice_waits_until_every_open_partition_has_passed_it() -> None:
    m = TimeMerge([A, B], 100)
    m.add(A, [rec(A, 0, 50), rec(A, 1, 150)])
    assert drain(m) == []  # B has not been read at all yet
    m.add(B, [rec(B, 0, 120)])
    assert drain(m) == [(100, [("a", 0)])]
    m.close(B)
    assert drain(m) == []  # A may still add to slice 200
    m.close(A)
    assert drain(m) == [(200, [("b", 0), ("a", 1)])]  # by time within the slice
    assert m.done()


def test_a_producer_whose_clock_goes_back_never_reorders_its_partition() -> None:
    m = TimeMerge([A], 100)
    m.add(A, [rec(A, 0, 250), rec(A, 1, 10), rec(A, 2, 260)])
    m.close(A)
    assert drain(m) == [(300, [("a", 0), ("a", 1), ("a", 2)])]


def test_ties_keep_the_partition_order_given() -> None:
    m = TimeMerge([B, A], 100)
    m.add(A, [rec(A, 0, 5)])
    m.add(B, [rec(B, 0, 5)])
    m.close(A)
    m.close(B)
    assert drain(m) == [(100, [("b", 0), ("a", 0)])]


def test_ahead_names_partitions_past_the_slowest() -> None:
    m = TimeMerge([A, B], 100)
    m.add(A, [rec(A, 0, 950)])
    m.add(B, [rec(B, 0, 120)])
    assert m.ahead(A)
    assert not m.ahead(B)
    assert m.buffered(A) == 1


def test_nothing_is_added_after_close_and_the_interval_is_positive() -> None:
    m = TimeMerge([A], 100)
    m.close(A)
    with pytest.raises(ValueError, match="closed"):
        m.add(A, [rec(A, 0, 1)])
    with pytest.raises(ValueError, match="positive"):
        TimeMerge([A], 0)


@settings(max_examples=60, deadline=None)
@given(
    times=st.lists(st.lists(st.integers(0, 2_000), max_size=30), min_size=1, max_size=4),
    seed=st.integers(0, 10_000),
)
def test_the_output_does_not_depend_on_how_fetches_interleave(
    times: list[list[int]], seed: int
) -> None:
    tps = [(f"t{i}", 0) for i in range(len(times))]
    parts = {
        tp: [rec(tp, o, ts) for o, ts in enumerate(ts_list)]
        for tp, ts_list in zip(tps, times, strict=True)
    }

    def run(rng: random.Random | None) -> list[tuple[int, list[tuple[str, int]]]]:
        m = TimeMerge(tps, 100)
        queues = {tp: list(rs) for tp, rs in parts.items()}
        out = []
        for tp, q in queues.items():
            if not q:
                m.close(tp)
        while any(queues.values()):
            live = [tp for tp, q in queues.items() if q]
            tp = rng.choice(live) if rng else live[0]
            n = rng.randint(1, 7) if rng else len(queues[tp])
            m.add(tp, queues[tp][:n])
            del queues[tp][:n]
            if not queues[tp]:
                m.close(tp)
            out += drain(m)
        out += drain(m)
        assert m.done()
        return out

    reference = run(None)
    assert run(random.Random(seed)) == reference
    flat = [r for _, rs in reference for r in rs]
    assert len(flat) == sum(len(v) for v in times)  # every record once
    for tp, rs in parts.items():  # offsets in order within each partition
        assert [o for t, o in flat if t == tp[0]] == [r[2] for r in rs]
    ends = [until for until, _ in reference]
    assert ends == sorted(set(ends))
