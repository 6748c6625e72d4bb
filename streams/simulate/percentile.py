"""The one percentile definition of the tools that measure the monitor from outside:
``freshness score`` (detection delays), ``freshness simulate`` (produce delays) and the
benchmarks (request latencies, detection delays).

Nearest rank: the ``q`` percentile of ``n`` values is the smallest value such that at least
``q * n`` of the values are at or below it, i.e. the value of rank ``ceil(q * n)`` (at
least 1) in ascending order. It is always one of the values, never an interpolation.
(The monitor's own lag quantiles come from sketches, :mod:`streams.stats`, not from here.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TypeVar

Number = TypeVar("Number", int, float)


def percentile(values: Iterable[Number], q: float) -> Number | None:
    """The nearest-rank ``q`` percentile (``0 <= q <= 1``) of ``values``; None when empty.

    ``q * n`` is rounded to 9 decimals before the ceiling, so a float product such as
    ``0.07 * 100 = 7.000000000000001`` still gives rank 7.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"a percentile's q must be in [0, 1], got {q}")
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(round(q * len(ordered), 9)))
    return ordered[min(rank, len(ordered)) - 1]
