"""A Faust app with one RocksDB table, run as a worker process by
``test_faust_rocksdb_recovery.py`` (``python faust_table_app.py worker -l warn``).

Configured by environment: ``FT_BOOTSTRAP``, ``FT_APP_ID``, ``FT_TOPIC``, ``FT_DATADIR``,
``FT_MODE`` (``write`` or ``recover``) and ``FT_DUMP`` (a file path).

Records on ``FT_TOPIC`` are JSON objects:
- ``{"op": "put", "key": k, "value": v}``: in ``write`` mode the agent sets ``table[k] = v``;
  in ``recover`` mode it only counts the record, so a recovering worker can fill its table
  from nowhere but the changelog topic.
- ``{"op": "dump"}``: write ``{"items": {...}, "ignored_puts": n}`` (the whole table) to
  ``FT_DUMP`` atomically. Faust processes no record before table recovery has finished, so
  a dump written by a recovering worker shows what it recovered.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import faust

PARTITIONS = 4

env = os.environ
app = faust.App(
    env["FT_APP_ID"],
    broker=f"kafka://{env['FT_BOOTSTRAP']}",
    store="rocksdb://",
    datadir=env["FT_DATADIR"],
    web_enabled=False,
    topic_partitions=PARTITIONS,
    topic_replication_factor=1,
    broker_commit_every=1,
    key_serializer="json",
    value_serializer="json",
)
commands = app.topic(env["FT_TOPIC"], key_serializer="raw", value_serializer="json")
table = app.Table(
    "kv",
    default=int,
    partitions=PARTITIONS,
    key_type=str,
    value_type=int,
)
ignored_puts = 0


def dump(path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"items": dict(table.items()), "ignored_puts": ignored_puts}))
    tmp.replace(path)


@app.agent(commands)
async def apply(stream: Any) -> None:
    global ignored_puts
    async for record in stream:
        if record["op"] == "put":
            if env["FT_MODE"] == "write":
                table[record["key"]] = record["value"]
            else:
                ignored_puts += 1
        elif record["op"] == "dump":
            dump(Path(env["FT_DUMP"]))


if __name__ == "__main__":
    app.main()
