"""Field checks shared by the stats decoders: each returns the value or raises ``ValueError``.

The messages name the field and what was found, so a bad record can be told apart from a
record of another kind in a log line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def mapping(data: object, what: str) -> Mapping[str, Any]:
    """``data`` itself when it is a JSON object."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} is not a JSON object (got {type(data).__name__})")
    return data


def field(data: Mapping[str, Any], name: str) -> Any:
    """The value of a required field (``null`` is a value)."""
    try:
        return data[name]
    except KeyError:
        raise ValueError(f"field {name!r} is missing") from None


def integer(data: Mapping[str, Any], name: str, *, minimum: int | None = 0) -> int:
    """A required integer field (JSON booleans are refused), at least ``minimum``."""
    value = field(data, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"field {name!r} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"field {name!r} must be >= {minimum}, got {value}")
    return value


def optional_integer(data: Mapping[str, Any], name: str) -> int | None:
    """A required field that is an integer >= 0 or ``null``."""
    if field(data, name) is None:
        return None
    return integer(data, name)


def optional_number(data: Mapping[str, Any], name: str) -> float | None:
    """A required field that is a JSON number or ``null`` (an integer stays an ``int``)."""
    value = field(data, name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"field {name!r} must be a number or null, got {value!r}")
    return value


def string(data: Mapping[str, Any], name: str) -> str:
    """A required non-empty string field."""
    value = field(data, name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"field {name!r} must be a non-empty string, got {value!r}")
    return value
