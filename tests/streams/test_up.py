"""The live view of ``freshness up`` (no processes: rendering only)."""

from __future__ import annotations

from streams.up import render


def flow(name: str, ratio: float | None, p95: float | None, status: str) -> dict[str, object]:
    return {
        "name": name,
        "target_ms": 5_000,
        "open_breaches": 3,
        "pending": 12,
        "status": status,
        "windows": {"last_5m": {"on_time_ratio": ratio, "lag_ms": {"p95": p95}}},
    }


def test_render_shows_each_flow_with_ratio_p95_and_status() -> None:
    text = render(
        {
            "flows": [
                flow("lead_to_posthog", 0.9875, 4_200.0, "warning"),
                flow("x", None, None, "ok"),
            ]
        },
        "http://127.0.0.1:8000",
    )
    assert "API http://127.0.0.1:8000" in text
    row = next(line for line in text.splitlines() if line.startswith("lead_to_posthog"))
    assert row.split() == ["lead_to_posthog", "5.00s", "98.75%", "4.20s", "3", "12", "warning"]
    empty = next(line for line in text.splitlines() if line.startswith("x "))
    assert empty.split() == ["x", "5.00s", "-", "-", "3", "12", "ok"]


def test_render_before_the_api_answers_says_so() -> None:
    text = render(None, "http://127.0.0.1:8000", "waiting for the API: ConnectError")
    assert text.rstrip().endswith("waiting for the API: ConnectError")
