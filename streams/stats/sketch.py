"""Mergeable lag sketches on ddsketch's logarithmic mapping, with our exact JSON form.

Workers publish one sketch per (flow, partition, minute); the API merges any set of them
and reads quantiles whose relative error is at most ``RELATIVE_ACCURACY`` (``max`` exact).
Merging is commutative and associative (bin counts are integer sums), so the answer does
not depend on which worker owned a partition or in what order records were read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ddsketch.ddsketch import BaseDDSketch
from ddsketch.mapping import LogarithmicMapping
from ddsketch.store import DenseStore

from streams.stats import _checks

RELATIVE_ACCURACY = 0.01
MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
"""The one value <-> bin mapping of every sketch (ddsketch's, gamma = 1.01 / 0.99)."""

_MIN_POSITIVE = MAPPING.min_possible
MIN_KEY = MAPPING.key(MAPPING.min_possible)
MAX_KEY = MAPPING.key(MAPPING.max_possible)
"""Bin keys outside ``[MIN_KEY, MAX_KEY]`` map no float: a decoder refuses them."""


@dataclass(slots=True)
class Bins:
    """Exact integer counts of values per bin of :data:`MAPPING`.

    ``pos`` holds positive values, ``neg`` negative ones by magnitude, ``zero`` the values
    too close to 0 for the mapping; ``count`` is their total. Arithmetic is exact and signed
    (:meth:`add` with ``sign=-1`` takes a record back out); a bin whose count reaches 0 is
    removed, so two equal contents compare equal whatever their history.
    """

    pos: dict[int, int] = field(default_factory=dict)
    neg: dict[int, int] = field(default_factory=dict)
    zero: int = 0
    count: int = 0

    def add_value(self, value: float) -> None:
        if value > _MIN_POSITIVE:
            k = MAPPING.key(value)
            self.pos[k] = self.pos.get(k, 0) + 1
        elif value < -_MIN_POSITIVE:
            k = MAPPING.key(-value)
            self.neg[k] = self.neg.get(k, 0) + 1
        else:
            self.zero += 1
        self.count += 1

    def add(self, other: Bins, sign: int = 1) -> None:
        """Add (``sign=1``) or subtract (``sign=-1``) every count of ``other``."""
        _add_map(self.pos, other.pos, sign)
        _add_map(self.neg, other.neg, sign)
        self.zero += sign * other.zero
        self.count += sign * other.count

    def copy(self) -> Bins:
        return Bins(dict(self.pos), dict(self.neg), self.zero, self.count)

    def excess(self, new: Bins) -> tuple[Bins, bool]:
        """What the per-bin maximum of this and ``new`` adds to this (every count > 0), and
        whether ``new`` is below this in some bin."""
        delta = Bins()
        below = _excess(self.pos, new.pos, delta.pos)
        below = _excess(self.neg, new.neg, delta.neg) or below
        delta.zero = max(0, new.zero - self.zero)
        delta.count = delta.zero + sum(delta.pos.values()) + sum(delta.neg.values())
        return delta, below or new.zero < self.zero

    def cumulative_counts(self, edges_ms: Sequence[float]) -> list[int]:
        """For each edge (ascending), the count of values whose bin's value is <= the edge:
        Prometheus ``le`` buckets, exact up to the mapping's 1 % around each edge."""
        values = self._valued()
        out: list[int] = []
        i, acc = 0, 0
        for edge in edges_ms:
            while i < len(values) and values[i][0] <= edge:
                acc += values[i][1]
                i += 1
            out.append(acc)
        return out

    def approx_sum(self) -> float:
        """The sum of the values, each taken as its bin's value (within 1 % of the exact)."""
        return sum(v * c for v, c in self._valued())

    def ddsketch(self) -> BaseDDSketch:
        """A ddsketch holding these counts (as float weights, in dense stores)."""
        store, negative = DenseStore(), DenseStore()
        for k, c in self.pos.items():
            store.add(k, c)
        for k, c in self.neg.items():
            negative.add(k, c)
        return BaseDDSketch(MAPPING, store, negative, self.zero)

    def _valued(self) -> list[tuple[float, int]]:
        values = [(-MAPPING.value(k), c) for k, c in self.neg.items()]
        values += [(MAPPING.value(k), c) for k, c in self.pos.items()]
        values.append((0.0, self.zero))
        values.sort()
        return values


def _add_map(into: dict[int, int], src: Mapping[int, int], sign: int) -> None:
    for k, c in src.items():
        v = into.get(k, 0) + sign * c
        if v:
            into[k] = v
        else:
            into.pop(k, None)


def _excess(old: Mapping[int, int], new: Mapping[int, int], into: dict[int, int]) -> bool:
    below, shared = False, 0
    for k, c in new.items():
        before = old.get(k)
        if before is None:
            into[k] = c
            continue
        shared += 1
        if c > before:
            into[k] = c - before
        elif c < before:
            below = True
    return below or shared < len(old)


@dataclass(slots=True)
class LagSketch:
    """Lag values in milliseconds: a DDSketch (1 % relative accuracy) with exact min and max.

    Built on ddsketch 3.0.1 where its API fits: :data:`MAPPING` is its ``LogarithmicMapping``
    (which bin a value falls in, what value a bin stands for), and :meth:`quantiles` is its
    ``BaseDDSketch.get_quantile_value`` rank rule, run on a ddsketch built from our bins.

    Ours, because ddsketch cannot do it:

    * **subtract**: a replaced or deleted window record must come back out of the sums of
      the API's windows; ``BaseDDSketch.add`` refuses a weight <= 0 and its stores never
      shrink. Our :class:`Bins` are signed, exact integer counts.
    * **a JSON form**: ddsketch serializes only to protobuf (``ddsketch.pb``, which needs
      the ``protobuf`` package and is not our wire format). :meth:`to_json` writes sparse
      ``{bin: count}`` maps in first-seen order, the bytes workers have always written.
    * **exact min and max**: ddsketch tracks them privately (``_min``, ``_max``; no public
      accessor) and its constructor resets them, so they cannot be restored from a record.
      Ours are kept, quantiles are clamped to them, and quantile 1 is the exact max.
    * **histogram buckets**: ddsketch has no count of values below a bound
      (:meth:`Bins.cumulative_counts`).
    * **equality and integer counts**: its dense stores hold float weights and do not
      compare by content; a window restored from the table must equal the one saved.

    Negative lags (clock skew) are kept by magnitude in ``bins.neg``.
    """

    bins: Bins = field(default_factory=Bins)
    min: float | None = None
    max: float | None = None

    @property
    def count(self) -> int:
        return self.bins.count

    def add(self, value: float) -> None:
        self.bins.add_value(value)
        if self.min is None or value < self.min:
            self.min = value
        if self.max is None or value > self.max:
            self.max = value

    def merge(self, other: LagSketch) -> None:
        """Add every value of ``other``; merging is commutative and associative."""
        self.bins.add(other.bins)
        if other.min is not None and (self.min is None or other.min < self.min):
            self.min = other.min
        if other.max is not None and (self.max is None or other.max > self.max):
            self.max = other.max

    def quantile(self, q: float) -> float | None:
        """The value at quantile ``q`` (0..1), within 1 % relative error; None when empty."""
        return self.quantiles((q,))[0]

    def quantiles(self, qs: Sequence[float]) -> list[float | None]:
        """:meth:`quantile` of each of ``qs``, the ddsketch built once."""
        if any(not 0.0 <= q <= 1.0 for q in qs):
            raise ValueError(f"quantiles must be within [0, 1], got {list(qs)}")
        if self.count == 0 or self.min is None or self.max is None:
            return [None for _ in qs]
        lo, hi = self.min, self.max
        sketch = self.bins.ddsketch()
        out: list[float | None] = []
        for q in qs:
            value = hi if q >= 1.0 else sketch.get_quantile_value(q)
            out.append(None if value is None else min(max(float(value), lo), hi))
        return out

    def to_json(self) -> dict[str, Any]:
        b = self.bins
        return {
            "pos": {str(k): c for k, c in b.pos.items()},
            "neg": {str(k): c for k, c in b.neg.items()},
            "zero": b.zero,
            "count": b.count,
            "min": self.min,
            "max": self.max,
        }

    @classmethod
    def from_json(cls, data: object) -> LagSketch:
        """The sketch :meth:`to_json` wrote; ``ValueError`` for anything else, including
        a count that disagrees with the bins or bounds that disagree with the count."""
        obj = _checks.mapping(data, "sketch")
        bins = Bins(
            _bin_map(obj, "pos"),
            _bin_map(obj, "neg"),
            _checks.integer(obj, "zero"),
            _checks.integer(obj, "count"),
        )
        lo, hi = _checks.optional_number(obj, "min"), _checks.optional_number(obj, "max")
        if bins.count != bins.zero + sum(bins.pos.values()) + sum(bins.neg.values()):
            raise ValueError(f"sketch count {bins.count} is not the sum of its bins")
        if bins.count and (lo is None or hi is None or lo > hi):
            raise ValueError(f"sketch of {bins.count} values has bounds {lo!r}..{hi!r}")
        if not bins.count and (lo is not None or hi is not None):
            raise ValueError("an empty sketch has bounds")
        return cls(bins, lo, hi)


def _bin_map(data: Mapping[str, Any], name: str) -> dict[int, int]:
    """A ``{bin: count}`` map as :meth:`LagSketch.to_json` writes it: canonical integer
    keys within the mapping's range, integer counts >= 1."""
    raw = _checks.mapping(_checks.field(data, name), f"sketch field {name!r}")
    out: dict[int, int] = {}
    for key, count in raw.items():
        try:
            k = int(key)
        except (TypeError, ValueError):
            k = None
        if k is None or str(k) != key:
            raise ValueError(f"sketch field {name!r}: bin {key!r} is not an integer")
        if not MIN_KEY <= k <= MAX_KEY:
            raise ValueError(f"sketch field {name!r}: bin {k} maps no float value")
        if type(count) is not int or count < 1:
            raise ValueError(f"sketch field {name!r}: bin {k} has count {count!r}, not >= 1")
        out[k] = count
    return out
