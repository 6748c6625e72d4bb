"""A mergeable lag sketch (DDSketch log mapping, 1 % relative accuracy) with a JSON form.

Workers publish one sketch per (flow, partition, minute); the API merges any set of them
and reads quantiles whose relative error is at most ``RELATIVE_ACCURACY`` (exact ``max``).
Merging is commutative and associative, so the answer does not depend on which worker
owned a partition or in what order records were read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ddsketch.mapping import LogarithmicMapping

RELATIVE_ACCURACY = 0.01
_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
_MIN_POSITIVE = _MAPPING.min_possible


@dataclass(slots=True)
class LagSketch:
    """Lag values in milliseconds; negative lags (clock skew) are kept in their own bins."""

    pos: dict[int, int] = field(default_factory=dict)
    neg: dict[int, int] = field(default_factory=dict)
    zero: int = 0
    count: int = 0
    min: float | None = None
    max: float | None = None

    def add(self, value: float) -> None:
        if value > _MIN_POSITIVE:
            k = _MAPPING.key(value)
            self.pos[k] = self.pos.get(k, 0) + 1
        elif value < -_MIN_POSITIVE:
            k = _MAPPING.key(-value)
            self.neg[k] = self.neg.get(k, 0) + 1
        else:
            self.zero += 1
        self.count += 1
        self.min = value if self.min is None or value < self.min else self.min
        self.max = value if self.max is None or value > self.max else self.max

    def merge(self, other: LagSketch) -> None:
        for k, c in other.pos.items():
            self.pos[k] = self.pos.get(k, 0) + c
        for k, c in other.neg.items():
            self.neg[k] = self.neg.get(k, 0) + c
        self.zero += other.zero
        self.count += other.count
        if other.min is not None:
            self.min = other.min if self.min is None else min(self.min, other.min)
        if other.max is not None:
            self.max = other.max if self.max is None else max(self.max, other.max)

    def quantile(self, q: float) -> float | None:
        """The value at quantile ``q`` (0..1), within 1 % relative error; None when empty."""
        if self.count == 0:
            return None
        if q >= 1.0:
            return self.max
        rank = q * (self.count - 1)
        seen = 0
        for k in sorted(self.neg, reverse=True):
            seen += self.neg[k]
            if seen > rank:
                return self._clamp(-_MAPPING.value(k))
        seen += self.zero
        if seen > rank:
            return 0.0
        for k in sorted(self.pos):
            seen += self.pos[k]
            if seen > rank:
                return self._clamp(_MAPPING.value(k))
        return self.max

    def _clamp(self, v: float) -> float:
        assert self.min is not None
        assert self.max is not None
        return min(max(v, self.min), self.max)

    def to_json(self) -> dict[str, Any]:
        return {
            "pos": {str(k): c for k, c in self.pos.items()},
            "neg": {str(k): c for k, c in self.neg.items()},
            "zero": self.zero,
            "count": self.count,
            "min": self.min,
            "max": self.max,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LagSketch:
        return cls(
            pos={int(k): int(c) for k, c in data.get("pos", {}).items()},
            neg={int(k): int(c) for k, c in data.get("neg", {}).items()},
            zero=int(data.get("zero", 0)),
            count=int(data.get("count", 0)),
            min=data.get("min"),
            max=data.get("max"),
        )
