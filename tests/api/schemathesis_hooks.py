"""schemathesis hooks (``SCHEMATHESIS_HOOKS=tests.api.schemathesis_hooks``): how to send the
receivers' ``application/x-ndjson`` bodies, which schemathesis has no serializer for (its
schema is an array of records; on the wire, one JSON record per line)."""

from __future__ import annotations

import json
from typing import Any

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: Any, value: Any) -> bytes:
    """An array as one record per line; anything else (a negative case) as one line. The
    standard library's encoder, as it writes integers of any size (orjson refuses > 64 bits)."""
    items = value if isinstance(value, list) else [value]
    return "".join(json.dumps(item) + "\n" for item in items).encode()
