"""The one wall clock of the project, and the type every clock argument has.

Code whose behaviour depends on the time takes a :data:`Clock` (a function returning epoch
milliseconds) as an argument and defaults it to :func:`now_ms`; tests pass a frozen or a
stepping clock instead, so a deadline boundary can be hit exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]
"""Returns the current time as integer epoch milliseconds."""


def now_ms() -> int:
    """The wall clock in epoch milliseconds."""
    return time.time_ns() // 1_000_000
