"""Service level rules of a flow, shared by the API and the alerter (DESIGN section 9).

* :mod:`streams.slo.budget`: outcome counts of a window, the SLI, error budget, burn rate
  and the budget remaining;
* :mod:`streams.slo.status`: the ok / warning / breaching rule of ``docs/api.md``.

Pure and standard library only: counts in, numbers and verdicts out; no clock, no I/O.
"""

from streams.slo.budget import Outcomes, budget_remaining, burn_rate, error_budget
from streams.slo.status import FlowHealth, Status, Verdict, flow_status

__all__ = [
    "FlowHealth",
    "Outcomes",
    "Status",
    "Verdict",
    "budget_remaining",
    "burn_rate",
    "error_budget",
    "flow_status",
]
