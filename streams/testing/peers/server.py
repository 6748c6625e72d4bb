"""The base of the local HTTP peers: an ``aiohttp.web`` server on 127.0.0.1 (a free port
the OS picks) that runs in the caller's own event loop, records every request with its
arrival time on an injected clock, and can be told to answer differently on cue.

Why aiohttp in the same loop (not a thread with ``http.server``): the peers serve async
tests, aiohttp is already a runtime dependency, and one loop means a scripted slow answer is
just an ``asyncio.sleep`` and a test's virtual clock is read without locks. The price: a
test that blocks the loop blocks its peer too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web

from streams.core.clock import Clock, now_ms


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the peer saw it; ``status`` is what the peer answered."""

    arrived_at: int
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass(frozen=True, slots=True)
class Answer:
    """A response: status, body and headers."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of_json(cls, status: int, value: object, **headers: str) -> Answer:
        merged = {"Content-Type": "application/json", **headers}
        return cls(status, orjson.dumps(value), merged)


@dataclass(slots=True)
class Cue:
    """A scripted answer for the next ``times`` matching requests.

    ``answer`` ``None`` means the peer's normal answer (useful with ``delay_s`` for a slow
    peer). ``when`` picks the requests it applies to (all, by default).
    """

    answer: Answer | None
    times: int = 1
    delay_s: float = 0.0
    when: Callable[[bytes], bool] | None = None


class LocalPeer:
    """Subclasses implement :meth:`answer`. Use as ``async with Peer(...) as peer:``."""

    def __init__(self, clock: Clock = now_ms) -> None:
        self.clock = clock
        self.requests: list[RecordedRequest] = []
        self._cues: list[Cue] = []
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` once started."""
        return f"http://127.0.0.1:{self._port}"

    def cue(
        self,
        answer: Answer | None,
        *,
        times: int = 1,
        delay_s: float = 0.0,
        when: Callable[[bytes], bool] | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with ``answer`` after ``delay_s``."""
        self._cues.append(Cue(answer, times, delay_s, when))

    def clear_cues(self) -> None:
        self._cues.clear()

    async def answer(self, request: web.Request, body: bytes) -> Answer:
        """The peer's normal answer to a request (its API)."""
        raise NotImplementedError

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop listening; :meth:`start` again listens on the same port."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _take_cue(self, body: bytes) -> Cue | None:
        for cue in self._cues:
            if cue.when is None or cue.when(body):
                cue.times -= 1
                if cue.times <= 0:
                    self._cues.remove(cue)
                return cue
        return None

    async def _handle(self, request: web.Request) -> web.Response:
        arrived = self.clock()
        body = await request.read()
        cue = self._take_cue(body)
        if cue is not None and cue.delay_s:
            await asyncio.sleep(cue.delay_s)
        if cue is not None and cue.answer is not None:
            answer = cue.answer
        else:
            answer = await self.answer(request, body)
        headers = {k.lower(): v for k, v in request.headers.items()}
        record = RecordedRequest(
            arrived, request.method, request.path, headers, body, answer.status
        )
        self.requests.append(record)
        return web.Response(status=answer.status, body=answer.body, headers=dict(answer.headers))
