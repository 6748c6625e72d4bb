"""LagSketch: quantile accuracy, merging, negative lags, the JSON form, the empty sketch."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import orjson
import pytest
from ddsketch import DDSketch

from streams.stats.sketch import MAX_KEY, LagSketch

QS = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999)


def sketch_of(values: list[float]) -> LagSketch:
    s = LagSketch()
    for v in values:
        s.add(v)
    return s


def nearest_rank(values: list[float], q: float) -> float:
    """The exact nearest-rank quantile: the ceil(q * n)-th smallest value."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(Fraction(str(q)) * len(ordered))) - 1]


def lags(rng: random.Random, n: int) -> list[float]:
    return [rng.lognormvariate(7.5, 1.5) for _ in range(n)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_quantiles_are_within_1_percent_of_the_exact_nearest_rank(seed: int) -> None:
    rng = random.Random(seed)
    n = 10_001  # at n = 100k + 1, ddsketch's rank q * (n - 1) *is* the nearest rank
    values = lags(rng, n)
    s = sketch_of(values)
    for q in QS:
        assert math.floor(q * (n - 1)) == math.ceil(Fraction(str(q)) * n) - 1
        got, want = s.quantile(q), nearest_rank(values, q)
        assert got is not None
        assert abs(got - want) <= 0.01 * abs(want), (q, got, want)
    assert s.quantile(1.0) == max(values)
    assert s.count == n


def test_negative_lags_are_kept_by_magnitude_and_ranked_below_zero() -> None:
    rng = random.Random(9)
    values = [-rng.uniform(1, 5_000) for _ in range(3_000)] + [0.0] * 1_000
    values += lags(rng, 6_001)
    s = sketch_of(values)
    assert sum(s.bins.neg.values()) == 3_000
    assert s.bins.zero == 1_000
    for q in QS:
        got, want = s.quantile(q), nearest_rank(values, q)
        assert got is not None
        assert abs(got - want) <= 0.01 * abs(want), (q, got, want)
    lowest = s.quantile(0.0)
    assert lowest is not None
    assert abs(lowest - min(values)) <= 0.01 * abs(min(values))
    assert s.min == min(values)
    assert s.quantile(0.35) == 0.0  # ranks 3000..3999 are the zeros


def test_quantiles_are_ddsketchs_clamped_to_the_exact_bounds() -> None:
    rng = random.Random(4)
    values = [*lags(rng, 777), -3.0, -4_000.0]
    s, dd = sketch_of(values), DDSketch(0.01)
    for v in values:
        dd.add(v)
    for q in (*QS, 0.0):
        want = dd.get_quantile_value(q)
        assert want is not None
        assert s.quantile(q) == min(max(want, min(values)), max(values))


def test_merge_is_associative_commutative_and_equals_one_sketch_of_everything() -> None:
    rng = random.Random(5)
    parts = [lags(rng, 300), [-v for v in lags(rng, 20)], [0.0, 1.0], lags(rng, 1)]
    a, b, c, d = (sketch_of(p) for p in parts)
    left = sketch_of(parts[0])
    left.merge(b)
    left.merge(c)  # (a + b) + c
    bc = sketch_of(parts[1])
    bc.merge(c)
    right = sketch_of(parts[0])
    right.merge(bc)  # a + (b + c)
    swapped = sketch_of(parts[2])
    swapped.merge(b)
    swapped.merge(a)  # c + b + a
    assert left == right == swapped == sketch_of(parts[0] + parts[1] + parts[2])
    left.merge(d)
    assert left == sketch_of([v for p in parts for v in p])


def test_json_round_trip_keeps_content_and_bytes() -> None:
    rng = random.Random(6)
    s = sketch_of([*lags(rng, 500), -12.0, 0.0, 0.0, 7])
    raw = orjson.dumps(s.to_json())
    back = LagSketch.from_json(orjson.loads(raw))
    assert back == s
    assert orjson.dumps(back.to_json()) == raw
    assert back.max == s.max
    assert back.min == -12.0


def test_json_form_is_the_one_workers_have_always_written() -> None:
    s = sketch_of([6_400, -35, 100])  # bins in first-seen order; integer bounds stay integers
    assert orjson.dumps(s.to_json()) == (  # what the hand-written LagSketch before wrote
        b'{"pos":{"439":1,"231":1},"neg":{"178":1},"zero":0,"count":3,"min":-35,"max":6400}'
    )


def test_empty_sketch() -> None:
    s = LagSketch()
    assert s.quantile(0.5) is None
    assert s.quantiles((0.5, 1.0)) == [None, None]
    assert s.count == 0
    data = s.to_json()
    assert data == {"pos": {}, "neg": {}, "zero": 0, "count": 0, "min": None, "max": None}
    assert LagSketch.from_json(data) == s
    full = sketch_of([5.0])
    full.merge(s)
    assert full == sketch_of([5.0])
    s.merge(sketch_of([5.0]))
    assert s == sketch_of([5.0])
    assert LagSketch().bins.cumulative_counts([1.0, 2.0]) == [0, 0]


def test_bucket_counts_are_exact_up_to_1_percent_around_each_edge() -> None:
    rng = random.Random(8)
    values = [*lags(rng, 5_000), -50.0, 0.0]
    s = sketch_of(values)
    edges = [0.0, 500.0, 1_000.0, 1_800.0, 5_000.0, 20_000.0]
    for edge, got in zip(edges, s.bins.cumulative_counts(edges), strict=True):
        low = sum(1 for v in values if v <= edge - 0.01 * abs(edge))
        high = sum(1 for v in values if v <= edge + 0.01 * abs(edge))
        assert low <= got <= high, (edge, low, got, high)
    total = sum(values)
    assert abs(s.bins.approx_sum() - total) <= 0.01 * sum(abs(v) for v in values)


def test_quantile_outside_0_1_is_refused() -> None:
    with pytest.raises(ValueError, match="within"):
        sketch_of([1.0]).quantile(1.5)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([], "not a JSON object"),
        ({"pos": {}, "neg": {}, "zero": 0, "count": 0, "min": None}, "'max' is missing"),
        ({"pos": {"x": 1}, "neg": {}, "zero": 0, "count": 1, "min": 1, "max": 1}, "integer"),
        ({"pos": {"+5": 1}, "neg": {}, "zero": 0, "count": 1, "min": 1, "max": 1}, "integer"),
        ({"pos": {"1": 0}, "neg": {}, "zero": 0, "count": 0, "min": None, "max": None}, ">= 1"),
        ({"pos": {"1": 2}, "neg": {}, "zero": 0, "count": 1, "min": 1, "max": 1}, "sum"),
        ({"pos": {}, "neg": {}, "zero": 1, "count": 1, "min": None, "max": 0}, "bounds"),
        ({"pos": {}, "neg": {}, "zero": 1, "count": 1, "min": 2, "max": 1}, "bounds"),
        ({"pos": {}, "neg": {}, "zero": 0, "count": 0, "min": 1, "max": 1}, "empty"),
        ({"pos": {}, "neg": {}, "zero": True, "count": 1, "min": 0, "max": 0}, "integer"),
        (
            {"pos": {str(MAX_KEY + 1): 1}, "neg": {}, "zero": 0, "count": 1, "min": 1, "max": 1},
            "maps no float",
        ),
    ],
)
def test_from_json_refuses_what_to_json_never_writes(data: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LagSketch.from_json(data)
