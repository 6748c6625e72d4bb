"""The worker's direct sender: an undelivered record stops the worker (no broker)."""

from __future__ import annotations

import asyncio
from typing import Any

from streams.worker.adapters import Sender


class FakeProducer:
    def __init__(self) -> None:
        self.futures: list[asyncio.Future[Any]] = []

    async def send(self, *args: Any) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut


class FakeApp:
    def __init__(self) -> None:
        self.producer = FakeProducer()
        self.crashed: list[BaseException] = []

    async def crash(self, reason: BaseException) -> None:
        self.crashed.append(reason)


async def test_delivered_records_change_nothing_and_a_failed_one_crashes_once() -> None:
    app = FakeApp()
    sender = Sender(app)  # type: ignore[arg-type]
    await sender.send("t", b"k", b"v", 0)
    await sender.send("t", b"k", b"v", 1)
    await sender.send("t", b"k", b"v", 2)
    ok, bad, worse = app.producer.futures
    ok.set_result(object())
    await asyncio.sleep(0)
    assert app.crashed == []
    error = RuntimeError("MessageSizeTooLarge")
    bad.set_exception(error)
    worse.set_exception(RuntimeError("again"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert app.crashed == [error]
