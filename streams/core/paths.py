"""Dotted field paths into JSON objects (``("payload", "lead", "id")``), read and written."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def get_path(obj: dict[str, Any], path: Sequence[str]) -> Any:
    """The value at ``path``, or None when any step is missing or not an object."""
    cur: Any = obj
    for part in path:
        if type(cur) is not dict:
            return None
        cur = cur.get(part)
    return cur


def set_path(obj: dict[str, Any], path: Sequence[str], value: object) -> None:
    """Set the value at ``path``, creating the objects on the way."""
    cur = obj
    for part in path[:-1]:
        nxt = cur.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ValueError(f"{'.'.join(path)}: {part!r} is not an object")
        cur = nxt
    cur[path[-1]] = value
