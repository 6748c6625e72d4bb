"""SLI, error budget, burn rate and budget remaining, against numbers worked out by hand."""

from __future__ import annotations

import pytest

from streams.slo import Outcomes, budget_remaining, burn_rate, error_budget


def test_30_late_of_100_at_99_percent_burns_30_times_the_budget() -> None:
    o = Outcomes(on_time=70, late=30)
    assert o.sli() == pytest.approx(0.70)
    assert error_budget(0.99) == pytest.approx(0.01)
    assert burn_rate(o, 0.99) == pytest.approx(30.0)
    assert budget_remaining(o, 0.99) == 0.0  # clipped: spent 30 times over


def test_bad_is_late_lost_and_open_overdue() -> None:
    o = Outcomes(on_time=990, late=4, lost=3, overdue=3)  # 10 bad of 1000
    assert (o.good, o.bad, o.judged) == (990, 10, 1000)
    assert o.sli() == pytest.approx(0.99)
    assert burn_rate(o, 0.99) == pytest.approx(1.0)  # exactly at the allowed pace
    assert budget_remaining(o, 0.99) == pytest.approx(0.0)
    assert o.on_time_ratio() == pytest.approx(990 / 997)  # decided outcomes only


def test_half_the_budget_spent() -> None:
    o = Outcomes(on_time=1_995, lost=5)  # 0.25 % bad against a 0.5 % budget
    assert burn_rate(o, 0.995) == pytest.approx(0.5)
    assert budget_remaining(o, 0.995) == pytest.approx(0.5)


def test_page_fast_threshold_of_the_default_policy() -> None:
    # 14.4 x a 1 % budget = 14.4 % bad: 144 of 1000
    o = Outcomes(on_time=856, late=100, overdue=44)
    assert burn_rate(o, 0.99) == pytest.approx(14.4)


def test_no_outcomes_burn_nothing() -> None:
    o = Outcomes()
    assert o.sli() is None
    assert o.on_time_ratio() is None
    assert burn_rate(o, 0.99) == 0.0
    assert budget_remaining(o, 0.99) == 1.0
    only_overdue = Outcomes(overdue=2)
    assert only_overdue.on_time_ratio() is None
    assert only_overdue.sli() == 0.0
    assert burn_rate(only_overdue, 0.9) == pytest.approx(10.0)


def test_nothing_bad_leaves_the_whole_budget() -> None:
    assert budget_remaining(Outcomes(on_time=5), 0.99) == 1.0
    assert burn_rate(Outcomes(on_time=5), 0.99) == 0.0


@pytest.mark.parametrize("objective", [0.0, 1.0, -0.5, 1.5])
def test_objective_must_be_strictly_between_0_and_1(objective: float) -> None:
    with pytest.raises(ValueError, match="objective"):
        burn_rate(Outcomes(on_time=1), objective)


def test_counts_cannot_be_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        Outcomes(late=-1)
