"""The status rule of docs/api.md: breaching beats warning beats ok; every reason listed."""

from __future__ import annotations

from streams.slo import FlowHealth, Outcomes, Verdict, flow_status

FINE = Outcomes(on_time=1_000)


def health(**kw: object) -> FlowHealth:
    fields: dict[str, object] = {
        "target_ms": 5_000,
        "objective": 0.99,
        "last_1h": FINE,
        "last_5m": FINE,
        "as_of": 1_000_000,
    }
    fields.update(kw)
    return FlowHealth(**fields)  # type: ignore[arg-type]


def test_ok_when_nothing_holds() -> None:
    assert flow_status(health()) == Verdict("ok", ())


def test_windows_without_outcomes_say_nothing() -> None:
    assert flow_status(health(last_1h=Outcomes(), last_5m=Outcomes())).status == "ok"


def test_1h_ratio_below_objective_breaches() -> None:
    v = flow_status(health(last_1h=Outcomes(on_time=97, late=2, lost=1)))
    assert v == Verdict("breaching", ("1 h on-time ratio 0.9700 < objective 0.99",))


def test_an_open_breach_overdue_by_more_than_the_target_breaches() -> None:
    v = flow_status(health(open_breaches=2, oldest_open_deadline=1_000_000 - 5_001))
    assert v == Verdict(
        "breaching",
        ("an open breach is 5001 ms past its deadline (> target 5000 ms)", "2 open breaches"),
    )
    at_target = flow_status(health(open_breaches=1, oldest_open_deadline=1_000_000 - 5_000))
    assert at_target == Verdict("warning", ("1 open breach",))


def test_open_overdue_does_not_lower_the_on_time_ratio() -> None:
    assert flow_status(health(last_1h=Outcomes(on_time=100, overdue=50))).status == "ok"


def test_warnings() -> None:
    v = flow_status(
        health(
            last_5m=Outcomes(on_time=98, late=2),
            monitor_lag_ms=5_001,
            stale_partitions=(3, 5),
        )
    )
    assert v == Verdict(
        "warning",
        (
            "5 min on-time ratio 0.9800 < objective 0.99",
            "monitor lag 5001 ms > target 5000 ms",
            "stale statistics from partitions [3, 5]",
        ),
    )
    assert flow_status(health(monitor_lag_ms=5_000)).status == "ok"


def test_breaching_reasons_come_first_then_the_warnings() -> None:
    v = flow_status(
        health(last_1h=Outcomes(on_time=1, late=1), last_5m=Outcomes(late=1), open_breaches=1)
    )
    assert v.status == "breaching"
    assert v.reasons == (
        "1 h on-time ratio 0.5000 < objective 0.99",
        "5 min on-time ratio 0.0000 < objective 0.99",
        "1 open breach",
    )


def test_no_reference_time_means_no_age_judgement() -> None:
    v = flow_status(health(as_of=None, open_breaches=1, oldest_open_deadline=0))
    assert v == Verdict("warning", ("1 open breach",))
