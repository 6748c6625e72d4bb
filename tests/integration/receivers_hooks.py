"""Schemathesis hooks for the receivers (``SCHEMATHESIS_HOOKS=tests.integration.receivers_hooks``):
how to write an ``application/x-ndjson`` body, which schemathesis has no serializer for."""

from __future__ import annotations

import json
from typing import Any

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: Any, value: Any) -> bytes:
    """One JSON value per line for a list; anything else as one line. (json, not orjson:
    generated integers may exceed 64 bits.)"""
    if isinstance(value, list):
        return "".join(json.dumps(item) + "\n" for item in value).encode()
    if isinstance(value, str | bytes):
        return value.encode() if isinstance(value, str) else value
    return (json.dumps(value) + "\n").encode()
