"""What replay and explain print on a terminal: the numbers of the result, nothing else."""

from __future__ import annotations

import io

from rich.console import Console

from streams.replay.console import Ui
from streams.replay.diff import Difference, DiffReport
from streams.replay.explain import build
from tests.streams.replay.kit import LEAD, T0, Log, replay
from tests.streams.replay.test_explain import alert, breach, end, measurement, start


def ui() -> tuple[Ui, io.StringIO]:
    buf = io.StringIO()
    return Ui(quiet=True, out=Console(file=buf, width=200, highlight=False)), buf


def test_the_explanation_shows_the_verdict_and_every_part() -> None:
    inputs = [start(T0 + 300), end(T0 + 7_450, T0 + 7_400)]
    versions = [breach(T0 + 5_600, "overdue", 1), breach(T0 + 7_580, "late", 2, lag=7_400)]
    m = measurement(T0 + 7_570, 7_400)
    e = build(LEAD, "k", inputs, versions, [m], now=T0 + 60_000, pages=[alert("k")])
    out, buf = ui()
    out.explanation(e)
    text = buf.getvalue()
    assert "lead_to_posthog:k (start k-s): late" in text
    assert "late: lag 7400 ms > target 5000 ms by 2400 ms" in text
    for number in ("300 ms", "7400 ms", "50 ms", "120 ms", "7570 ms"):
        assert number in text, number
    assert "most of the time: the completion side" in text
    assert "funnel.lead.captured[1]@7" in text
    assert "breach overdue open" in text
    assert "measurement: lag 7400 ms, late" in text
    assert "pages that name it" in text
    assert f"app/{LEAD.name}/stuck" in text


def test_the_summary_table_and_the_differences() -> None:
    log = Log()
    log.start(LEAD, "a", T0)
    log.end(LEAD, "a", T0 + 6_500)
    log.start(LEAD, "b", T0 + 1)
    result = replay(log, T0, T0 + 60_000)
    out, buf = ui()
    out.summary(result, 0.5)
    report = DiffReport(compared=2)
    report.differences.append(
        Difference(
            "extra", f"{LEAD.name}:b", "b-s", "breach", replay={"kind": "overdue", "status": "open"}
        )
    )
    out.diff(report)
    text = buf.getvalue()
    row = next(line for line in text.splitlines() if LEAD.name in line and "│" in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    assert cells[:8] == [LEAD.name, "5.00s", "2", "0", "1", "1", "0", "0"]
    assert cells[-1] == "6.50s"  # the max lag
    assert "3 input records read (3 in the range) in 0.50 s: 6 records/s" in text
    assert (
        "extra     lead_to_posthog:b (start b-s): replay has breach (overdue, open); live none"
        in text
    )
    assert "diff: 2 starts compared, 1 difference(s)" in text
