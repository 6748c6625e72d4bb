"""Error budget arithmetic over one window of outcomes (DESIGN section 9).

What is judged, per flow: **good** = on time; **bad** = late, lost, and overdue from the
moment it is declared (a missing completion burns budget at once; a retracted false
overdue stops counting, because the caller's open-breach count drops it).

* SLI = good / (good + bad); no outcomes, no SLI (``None``), never a made-up 100 %.
* error budget = 1 - objective (the objective is in (0, 1), as flows are validated).
* burn rate = (bad / (good + bad)) / error budget: 1.0 spends the budget exactly over the
  window, 14.4 spends a 30-day budget in 50 hours; 0.0 when there are no outcomes.
* budget remaining = 1 - burn rate, clipped to [0, 1]: 1.0 when nothing was spent (or
  nothing happened), 0.0 when the window spent its whole budget or more (how much more
  is the burn rate's to say).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Outcomes:
    """Counts of starts judged in one window; ``overdue`` is those open right now."""

    on_time: int = 0
    late: int = 0
    lost: int = 0
    overdue: int = 0

    def __post_init__(self) -> None:
        counts = (self.on_time, self.late, self.lost, self.overdue)
        if any(c < 0 for c in counts):
            raise ValueError(f"outcome counts cannot be negative, got {self}")

    @property
    def good(self) -> int:
        return self.on_time

    @property
    def bad(self) -> int:
        return self.late + self.lost + self.overdue

    @property
    def judged(self) -> int:
        return self.good + self.bad

    def sli(self) -> float | None:
        """good / (good + bad); ``None`` when nothing was judged."""
        return None if self.judged == 0 else self.good / self.judged

    def on_time_ratio(self) -> float | None:
        """on_time / (on_time + late + lost): decided outcomes only, the ratio the API
        shows and the status rule judges (an open overdue may still complete on time);
        ``None`` when nothing was decided."""
        decided = self.on_time + self.late + self.lost
        return None if decided == 0 else self.on_time / decided


def error_budget(objective: float) -> float:
    """The share of starts allowed to be bad: ``1 - objective``."""
    if not 0.0 < objective < 1.0:
        raise ValueError(f"objective must be between 0 and 1 (exclusive), got {objective!r}")
    return 1.0 - objective


def burn_rate(outcomes: Outcomes, objective: float) -> float:
    """How fast the window spends the error budget (1.0: exactly at the allowed pace)."""
    budget = error_budget(objective)
    if outcomes.judged == 0:
        return 0.0
    return outcomes.bad / outcomes.judged / budget


def budget_remaining(outcomes: Outcomes, objective: float) -> float:
    """The share of the window's error budget not spent: ``1 - burn rate`` in [0, 1]."""
    return min(1.0, max(0.0, 1.0 - burn_rate(outcomes, objective)))
