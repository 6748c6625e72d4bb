"""Receivers: input records from outside Kafka, validated and written to the input topics.

* ``POST /v1/events/{topic}`` (enabled by ``FRESHNESS_INGEST_TOKEN``; ``Authorization:
  Bearer <token>``) takes one JSON record, a JSON array of records, or NDJSON
  (``Content-Type: application/x-ndjson``), at most ``FRESHNESS_INGEST_MAX_RECORDS``
  records and ``FRESHNESS_INGEST_MAX_BYTES`` bytes (413 beyond). Every record is judged
  exactly as the worker will judge it: the same compiled schemas, key and time checks and
  future-time guard (:class:`~streams.pipeline.ingest.Ingest` over the flows'
  :class:`~streams.pipeline.decoder.Decoder`). One bad record and nothing is written: 422
  names each (``index`` from 0 among the records, ``reason`` as the quarantine would say
  it, ``message``). Otherwise all are written (key: the entity) and 202 comes only after
  Kafka acknowledged every one with acks=all.
* ``POST /v1/webhooks/posthog`` (enabled by ``FRESHNESS_WEBHOOK_INGEST_SECRET``, sent by the
  PostHog webhook destination in the ``X-Freshness-Webhook-Secret`` header, compared in
  constant time) takes the destination's payload (the default template's ``{"event":
  {...}, "person": {...}}``, or the event itself), maps its link properties
  (``funnel_source``, ``funnel_source_id``) to a ``funnel.posthog.ingested`` record with
  ``stage: "delivered"`` and ``occurred_at`` = the moment the request arrived (never the
  event's ``timestamp``: that is when the app captured it), and answers 202 once Kafka
  acknowledged it. An event without the link is answered 202 with nothing written, so
  PostHog does not retry it.

Both answer 401 without the right credential (403 for the read token
``FRESHNESS_API_TOKEN``, which cannot write) and write nothing; 503 with ``Retry-After``
when Kafka is unreachable or does not acknowledge within ``FRESHNESS_INGEST_ACK_TIMEOUT_MS``
(then some records may have been written: retry the same request, the monitor ignores the
repeated ``event_id`` s, which is what makes a retried POST harmless). Only the receivers
that are enabled exist (and appear in ``/openapi.json``); the API makes a Kafka producer
only when one is.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Sequence
from typing import Annotated, Any, Protocol

import orjson
from aiokafka.partitioner import DefaultPartitioner
from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.auth import token_matches
from api.errors import error_response
from api.models import ErrorBody, EventsAccepted, WebhookAccepted
from streams import topics
from streams.connectors.posthog import LinkError, completion_of
from streams.core.clock import Clock, now_ms
from streams.errors import FreshnessError
from streams.flows.config import load_flows
from streams.kafka import new_producer
from streams.pipeline.decoder import Decoder
from streams.pipeline.ingest import Ingest
from streams.settings import Settings

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Freshness-Webhook-Secret"
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})
MAX_WRITE_BYTES = 1_000_000
"""Largest record written (value and key): Kafka's default ``message.max.bytes`` is
1,048,588 for the whole batch, so a record near the decoder's 1 MiB limit would be refused
by the broker after others of its request were written."""
RETRY_AFTER_S = 1
_PARTITIONER = DefaultPartitioner()

Record = tuple[bytes | None, bytes]

_bearer = HTTPBearer(
    auto_error=False, scheme_name="IngestToken", description="FRESHNESS_INGEST_TOKEN."
)
_secret = APIKeyHeader(
    name=SECRET_HEADER,
    auto_error=False,
    scheme_name="WebhookSecret",
    description="FRESHNESS_WEBHOOK_INGEST_SECRET, set in the PostHog destination's headers.",
)
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
Secret = Annotated[str | None, Depends(_secret)]


class ReceiverError(FreshnessError):
    """A request a receiver refuses; rendered with the :class:`~api.models.ErrorBody` shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: list[dict[str, object]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.detail = detail
        self.headers = headers or {}


class WriterUnavailable(FreshnessError):
    """Kafka did not acknowledge the records (unreachable, or too slow)."""


class RecordWriter(Protocol):
    """Writes records to an input topic; ``write`` returns once every one is acknowledged
    and raises :class:`WriterUnavailable` otherwise."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def write(self, topic: str, records: Sequence[Record]) -> None: ...


class KafkaWriter:
    """An idempotent aiokafka producer (acks=all) that connects in the background, so the
    API starts, and answers 503, while Kafka is down."""

    def __init__(self, settings: Settings, *, retry_s: float = 1.0) -> None:
        self.settings = settings
        self.timeout_s = settings.ingest_ack_timeout_ms / 1000
        self.retry_s = retry_s
        self._producer: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name="freshness-receiver-producer")

    async def _connect(self) -> None:
        while True:
            producer = new_producer(
                self.settings,
                acks="all",
                enable_idempotence=True,
                max_request_size=4 * MAX_WRITE_BYTES,
                client_id="freshness-receivers",
            )
            try:
                await producer.start()
            except Exception as exc:
                log.warning("receivers: Kafka not reachable yet (%r); retrying", exc)
                with contextlib.suppress(Exception):
                    await producer.stop()
                await asyncio.sleep(self.retry_s)
                continue
            self._producer = producer
            return

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._producer is not None:
            await self._producer.stop()

    async def write(self, topic: str, records: Sequence[Record]) -> None:
        producer = self._producer
        if producer is None:
            raise WriterUnavailable(f"Kafka at {self.settings.kafka_bootstrap} is not reachable")
        try:
            await asyncio.wait_for(self._send(producer, topic, records), self.timeout_s)
        except TimeoutError:
            raise WriterUnavailable(
                f"Kafka did not acknowledge within {self.timeout_s:g} s "
                "(FRESHNESS_INGEST_ACK_TIMEOUT_MS)"
            ) from None
        except Exception as exc:
            log.warning("receivers: write to %s failed: %r", topic, exc)
            raise WriterUnavailable(f"Kafka did not acknowledge: {exc!r}") from exc

    @staticmethod
    async def _send(producer: Any, topic: str, records: Sequence[Record]) -> None:
        """One batch per partition (the producer's own partitioner on the key, so a record
        lands where ``producer.send`` would put it): a fifth of the cost of a send each."""
        partitions = sorted(await producer.partitions_for(topic))
        batches: dict[int, Any] = {}
        futures = []
        for key, value in records:
            p = _PARTITIONER(key, partitions, partitions)
            batch = batches.get(p)
            if batch is None:
                batch = batches[p] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:  # full
                futures.append(await producer.send_batch(batch, topic, partition=p))
                batch = batches[p] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        for p, batch in batches.items():
            futures.append(await producer.send_batch(batch, topic, partition=p))
        await asyncio.gather(*futures)


def enabled(settings: Settings) -> bool:
    """Whether any receiver is configured (and so whether the API needs a producer)."""
    return _set(settings.ingest_token) or _set(settings.webhook_ingest_secret)


def _set(secret: Any) -> bool:
    return secret is not None and bool(secret.get_secret_value())


def install(app: FastAPI) -> None:
    """Render :class:`ReceiverError` with the API's error body."""

    async def refused(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ReceiverError)
        response = error_response(exc.status, exc.code, exc.message, exc.detail)
        response.headers.update(exc.headers)
        return response

    app.add_exception_handler(ReceiverError, refused)


class Receivers:
    """The receivers of one API process: its flows' decoder and one writer."""

    def __init__(self, settings: Settings, writer: RecordWriter, clock: Clock = now_ms) -> None:
        self.settings = settings
        self.writer = writer
        self.clock = clock
        self.decoder = Decoder(load_flows(settings.flows))
        self.ingest = Ingest(self.decoder, 1, max_future_skew_ms=settings.max_future_skew_ms)

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/v1", tags=["receivers"])
        if _set(self.settings.ingest_token):
            self._add_events(router)
        if _set(self.settings.webhook_ingest_secret):
            self._add_webhook(router)
        return router

    # -- POST /v1/events/{topic} ------------------------------------------------------------

    def _add_events(self, router: APIRouter) -> None:
        topic_param = Path(
            description="An input topic of the configured flows.",
            json_schema_extra={"enum": list(self.decoder.topics)},
        )

        @router.post(
            "/events/{topic}",
            status_code=202,
            response_model=EventsAccepted,
            responses=_responses(400, 401, 403, 404, 413, 415, 422, 503),
            openapi_extra=_events_body(self.settings.ingest_max_records),
            summary="Write input records (one, an array, or NDJSON) to a topic",
        )
        async def events(
            request: Request, credentials: Bearer, topic: str = topic_param
        ) -> EventsAccepted:
            self._check_token(credentials)
            if topic not in self.decoder.topics:
                raise ReceiverError(
                    404,
                    "not_found",
                    f"no configured flow reads topic {topic!r}; "
                    f"topics: {', '.join(self.decoder.topics)}",
                )
            body = await _read_body(request, self.settings.ingest_max_bytes)
            raws = _split(body, request.headers.get("content-type", ""))
            _check_count(len(raws), self.settings.ingest_max_records)
            records, matched, unmatched = self._judge(topic, raws)
            await self._write(topic, records)
            return EventsAccepted(
                topic=topic, records=len(raws), events=matched, unmatched=unmatched
            )

    def _check_token(self, credentials: HTTPAuthorizationCredentials | None) -> None:
        token = self.settings.ingest_token
        assert token is not None
        if credentials is not None and credentials.scheme.lower() == "bearer":
            presented = credentials.credentials
            if token_matches(token, presented):
                return
            read = self.settings.api_token
            if read is not None and read.get_secret_value() and token_matches(read, presented):
                raise ReceiverError(
                    403, "forbidden", "the read token cannot write; use FRESHNESS_INGEST_TOKEN"
                )
        raise ReceiverError(
            401,
            "unauthorized",
            "missing or invalid ingest token (Authorization: Bearer <FRESHNESS_INGEST_TOKEN>)",
            headers={"WWW-Authenticate": "Bearer"},
        )

    def _judge(self, topic: str, raws: Sequence[bytes]) -> tuple[list[Record], int, int]:
        """The records to write (key, value), their flow events and unmatched count; raises
        422 naming every record the worker would quarantine."""
        now = self.clock()
        result = self.ingest.process(((topic, 0, i, now, raw) for i, raw in enumerate(raws)), now)
        bad = {
            int(str(rec["offset"])): (str(rec["reason"]), str(rec["detail"]))
            for _, rec in result.quarantine
        }
        for i, raw in enumerate(raws):
            if i not in bad and len(raw) > MAX_WRITE_BYTES:
                bad[i] = (
                    "too_large",
                    f"{len(raw)} bytes; a receiver writes at most {MAX_WRITE_BYTES}",
                )
        if bad:
            detail: list[dict[str, object]] = [
                {"index": i, "reason": reason, "message": message}
                for i, (reason, message) in sorted(bad.items())
            ]
            raise ReceiverError(
                422,
                "invalid_records",
                f"{len(bad)} of {len(raws)} records are not valid; nothing was written",
                detail,
            )
        events = result.batches.get(0, [])
        keys: dict[int, bytes] = {}
        for ev in events:
            keys.setdefault(ev.offset, ev.key.encode())
        return [(keys.get(i), raw) for i, raw in enumerate(raws)], len(events), result.unmatched

    async def _write(self, topic: str, records: Sequence[Record]) -> None:
        try:
            await self.writer.write(topic, records)
        except WriterUnavailable as exc:
            raise ReceiverError(
                503,
                "kafka_unavailable",
                f"{exc}; nothing is acknowledged, retry the request",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            ) from None

    # -- POST /v1/webhooks/posthog ----------------------------------------------------------

    def _add_webhook(self, router: APIRouter) -> None:
        @router.post(
            "/webhooks/posthog",
            status_code=202,
            response_model=WebhookAccepted,
            responses=_responses(400, 401, 413, 422, 503),
            openapi_extra=_webhook_body(),
            summary="PostHog webhook destination: a delivered completion",
        )
        async def posthog_webhook(request: Request, secret: Secret) -> WebhookAccepted:
            received = self.clock()
            self._check_secret(secret)
            body = await _read_body(request, self.settings.ingest_max_bytes)
            event = _destination_event(body)
            try:
                completion = completion_of(event, "delivered", received)
            except LinkError as exc:
                raise _invalid(str(exc)) from None
            if completion is None:
                return WebhookAccepted(written=0, ignored="the event carries no funnel link")
            raw = completion.encode()
            self._judge(topics.POSTHOG_INGESTED, [raw])
            await self._write(topics.POSTHOG_INGESTED, [(completion.key, raw)])
            return WebhookAccepted(written=1, event_id=completion.event_id, occurred_at=received)

    def _check_secret(self, presented: str | None) -> None:
        secret = self.settings.webhook_ingest_secret
        assert secret is not None
        expected = secret.get_secret_value().encode()
        if not hmac.compare_digest(expected, (presented or "").encode()):
            raise ReceiverError(401, "unauthorized", f"missing or wrong {SECRET_HEADER} header")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(f"{declared} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(f"more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _split(body: bytes, content_type: str) -> list[bytes]:
    """The raw records of a body: NDJSON lines, the elements of a JSON array, or the body."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media in NDJSON_TYPES:
        return [line for line in (raw.strip() for raw in body.split(b"\n")) if line]
    if media not in ("", "application/json"):
        raise ReceiverError(
            415,
            "unsupported_media_type",
            f"send application/json (a record or an array) or application/x-ndjson, not {media!r}",
        )
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ReceiverError(
            422,
            "invalid_records",
            "the body is not JSON; nothing was written",
            [{"index": None, "reason": "not_json", "message": str(exc)}],
        ) from None
    if isinstance(value, list):
        return [orjson.dumps(item) for item in value]
    return [body.strip()]


def _check_count(n: int, most: int) -> None:
    if n == 0:
        raise ReceiverError(422, "invalid_records", "the request holds no record")
    if n > most:
        raise _too_large(f"{n} records; at most {most} per request (FRESHNESS_INGEST_MAX_RECORDS)")


def _destination_event(body: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _invalid(f"the body is not JSON: {exc}") from None
    if isinstance(payload, dict) and isinstance(payload.get("event"), dict):
        event: dict[str, Any] = payload["event"]
        return event
    if isinstance(payload, dict) and "uuid" in payload:
        return payload
    raise _invalid(
        'expected the destination\'s {"event": {...}} (the default body) or the event itself'
    )


def _invalid(message: str) -> ReceiverError:
    return ReceiverError(422, "invalid_payload", message)


def _too_large(what: str) -> ReceiverError:
    return ReceiverError(413, "payload_too_large", f"the request is too large: {what}")


_DESCRIPTIONS = {
    400: "Unreadable request.",
    401: "Credential missing or wrong; nothing was written.",
    403: "The read token cannot write.",
    404: "No configured flow reads this topic.",
    413: "Over FRESHNESS_INGEST_MAX_BYTES or FRESHNESS_INGEST_MAX_RECORDS.",
    415: "Neither JSON nor NDJSON.",
    422: "Bad records (detail: index, reason, message each); nothing was written.",
    503: "Kafka unreachable or not acknowledging; retry (see Retry-After).",
}


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: {"model": ErrorBody, "description": _DESCRIPTIONS[c]} for c in codes}


def _events_body(most: int) -> dict[str, Any]:
    record = {"type": "object", "additionalProperties": True}
    example = {
        "event_id": "notif-ack-5531",
        "occurred_at": "2026-04-23T10:41:12.250Z",
        "approval_id": "APR-5531",
        "channel": "slack",
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            record,
                            {"type": "array", "items": record, "minItems": 1, "maxItems": most},
                        ]
                    },
                    "example": example,
                },
                "application/x-ndjson": {
                    "schema": {
                        "type": "array",
                        "items": record,
                        "minItems": 1,
                        "maxItems": most,
                        "description": "One JSON record per line.",
                    },
                    "example": [example],
                },
            },
        }
    }


def _webhook_body() -> dict[str, Any]:
    example = {
        "event": {
            "uuid": "0192f2c1-8f8e-7a55-bf3c-1d0f5b9c2e11",
            "event": "lead captured",
            "distinct_id": "L-20260423-0042",
            "properties": {"funnel_source": "lead.captured", "funnel_source_id": "L-20260423-0042"},
            "timestamp": "2026-04-23T10:46:57.123Z",
        },
        "person": {"properties": {}},
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object", "additionalProperties": True},
                    "example": example,
                }
            },
        },
    }
