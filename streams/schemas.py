"""Where the JSON Schemas live, and how code loads them (they are the single source).

In a source checkout the schemas are the repository's ``schemas/`` directory; in an installed
wheel they are ``streams/_schemas`` (the wheel build force-includes ``schemas/`` there).
:func:`schema_dir` finds whichever exists, so code never hard-codes a path. Loading is meant
for start-up (compile once), not for the per-event path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from streams.errors import ConfigError

_HERE = Path(__file__).resolve()
_CANDIDATES = (_HERE.parents[1] / "schemas", _HERE.parent / "_schemas")
_MARKER = Path("output") / "measurement.schema.json"


def schema_dir() -> Path:
    """The directory holding ``input/`` and ``output/`` schemas.

    Prefers the checkout's ``schemas/`` and falls back to the packaged ``streams/_schemas``;
    a candidate counts only if it holds ``output/measurement.schema.json``, so an unrelated
    ``schemas`` directory next to an installed package is never picked up.
    """
    for candidate in _CANDIDATES:
        if (candidate / _MARKER).is_file():
            return candidate
    raise ConfigError(
        "JSON schemas not found (looked in "
        + ", ".join(str(c) for c in _CANDIDATES)
        + "); reinstall the package or run from a source checkout"
    )


def load_schema(relpath: str) -> dict[str, Any]:
    """The schema at ``relpath`` under :func:`schema_dir`, e.g. ``"output/breach.schema.json"``.

    Returns a fresh dict on every call (callers may mutate it). Raises :class:`ConfigError`
    when the file is missing or not a JSON object.
    """
    path = schema_dir() / relpath
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"cannot load schema {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"schema {path} is not a JSON object")
    return data


def input_schema_path(topic: str) -> Path:
    """Where the input schema of ``topic`` is (or would be): ``input/<topic>.schema.json``."""
    return schema_dir() / "input" / f"{topic}.schema.json"
