"""The FastAPI application (DESIGN section 6): ``create_app(settings, read_model=None)``.

With no ``read_model`` the app builds one from the configured flows and, for its lifetime,
runs an :class:`~api.consumer.OutputConsumer` that fills it from Kafka. With a
``read_model`` given (tests, the end-to-end suite) nothing touches Kafka unless
``consume=True``. The app starts and answers ``/healthz`` whether or not Kafka is up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api import alerts, auth, errors, explain, receivers, status
from api.breaches import CURSOR_PATTERN, BreachFilter
from api.consumer import OutputConsumer
from api.limits import HeadLimits
from api.metrics import registry_for
from api.models import (
    BreachKind,
    BreachPage,
    BreachStatus,
    BreachView,
    EntityView,
    ErrorBody,
    FlowList,
    FlowView,
    Health,
    Readiness,
)
from api.readmodel import RECOMPUTE_MS, ReadModel
from streams.alerting.policy import AlertPolicy
from streams.kafka import KafkaFatalError
from streams.settings import Settings

_ERR_404: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Unknown flow, breach or entity."}
}
_ERR_422: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "Bad query parameter."}
}
_ERR_401: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Token required and missing or wrong."}
}
_METRICS_EX = 'freshness_pending{flow="lead_to_posthog"} 3.0\n'
_FLOW = Path(description="Flow name, e.g. `lead_to_posthog`.", examples=["lead_to_posthog"])


def build_read_model(settings: Settings) -> ReadModel:
    """A read model of the flows configured in ``settings`` (``FRESHNESS_FLOWS``)."""
    from streams.flows.config import load_flows

    return ReadModel(
        load_flows(settings.flows),
        entity_capacity=settings.api_timeline_entities,
        stats_interval_ms=settings.stats_interval_ms,
        recompute_ms=RECOMPUTE_MS,
    )


def _policies(settings: Settings) -> Mapping[str, AlertPolicy]:
    """The alert policies of the configured flows: ``/metrics`` exports their burn windows."""
    from streams.flows.config import load_config

    return load_config(settings.flows).policies


def create_app(
    settings: Settings,
    read_model: ReadModel | None = None,
    *,
    consume: bool | None = None,
    writer: receivers.RecordWriter | None = None,
    lookup: explain.EntityLookup | None = None,
    on_fatal: Callable[[KafkaFatalError], None] | None = None,
) -> FastAPI:
    """The API over ``read_model`` (built from settings when None).

    ``consume`` (default: ``read_model is None``) runs the Kafka consumer in the lifespan.
    When a receiver is enabled (``FRESHNESS_INGEST_TOKEN``, ``FRESHNESS_WEBHOOK_INGEST_SECRET``)
    the lifespan also runs ``writer`` (default: a :class:`~api.receivers.KafkaWriter`).
    ``lookup`` reads an entity's records for ``explain?inputs=true`` and the status page's
    ``?kafka=1`` (default: from Kafka, :class:`~streams.replay.lookup.EntityRecords`).
    ``on_fatal`` is called when Kafka refuses the consumer for good (``freshness api`` stops).
    """
    model = read_model if read_model is not None else build_read_model(settings)
    run_consumer = read_model is None if consume is None else consume
    ingest = None
    if receivers.enabled(settings):
        ingest = receivers.Receivers(settings, writer or receivers.KafkaWriter(settings))
    app = FastAPI(
        title="Funnel freshness monitor",
        version="1",
        description="Per-flow freshness, breaches and entity timelines, read from the "
        "monitor's output topics. Times are epoch milliseconds.",
        lifespan=_lifespan(settings, model, run_consumer, ingest, on_fatal),
    )
    app.state.read_model = model
    app.add_middleware(HeadLimits)
    errors.install(app)
    _add_routes(app, settings, model, ingest, lookup)
    return app


def _lifespan(
    settings: Settings,
    model: ReadModel,
    run_consumer: bool,
    ingest: receivers.Receivers | None,
    on_fatal: Callable[[KafkaFatalError], None] | None,
) -> Any:
    """Start the output consumer and the receivers' writer with the app; stop them after."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        consumer = OutputConsumer(settings, model, on_fatal=on_fatal) if run_consumer else None
        if consumer is not None:
            consumer.start()
        if ingest is not None:
            await ingest.writer.start()
        try:
            yield
        finally:
            if ingest is not None:
                await ingest.writer.stop()
            if consumer is not None:
                await consumer.stop()

    return lifespan


def _add_routes(
    app: FastAPI,
    settings: Settings,
    model: ReadModel,
    ingest: receivers.Receivers | None,
    lookup: explain.EntityLookup | None,
) -> None:
    guard = Depends(auth.guard(settings.api_token))
    _add_probes(app, model)
    # Before /v1's entity timeline, whose key may contain "/": .../{key}/explain is this.
    app.include_router(
        explain.router(model, settings, lookup), dependencies=[guard], responses=_ERR_401
    )
    app.include_router(_v1(model), dependencies=[guard])
    if ingest is not None:
        receivers.install(app)
        app.include_router(ingest.router())
    app.include_router(alerts.router(model), dependencies=[guard], responses=_ERR_401)
    # The status page (HTML at /, /breaches, /entities/...): behind the same read token.
    app.include_router(status.router(model, settings, lookup), dependencies=[guard])
    registry = registry_for(model, _policies(settings))

    @app.get(
        "/metrics",
        dependencies=[guard],
        response_class=Response,
        responses={200: {"content": {"text/plain": {"example": _METRICS_EX}}}, **_ERR_401},
        summary="Prometheus metrics",
    )
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _add_probes(app: FastAPI, model: ReadModel) -> None:
    @app.get("/healthz", response_model=Health, summary="Liveness: the process answers")
    async def healthz() -> Health:
        return Health()

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "Not caught up yet."}},
        summary="Readiness: the read model has caught up with the output topics",
    )
    async def readyz() -> JSONResponse:
        p = model.progress
        body = Readiness(
            ready=p.ready, waiting_for=list(p.waiting_for), records_applied=p.records_applied
        )
        return JSONResponse(body.model_dump(), status_code=200 if p.ready else 503)


def _v1(model: ReadModel) -> APIRouter:
    router = APIRouter(prefix="/v1", responses=_ERR_401)

    @router.get("/flows", response_model=FlowList, summary="Every flow's freshness")
    async def flows() -> FlowList:
        return model.flows_view()

    @router.get("/flows/{flow}", response_model=FlowView, responses=_ERR_404, summary="One flow")
    async def one_flow(flow: Annotated[str, _FLOW]) -> FlowView:
        return model.flow_view(flow)

    @router.get(
        "/breaches",
        response_model=BreachPage,
        responses={**_ERR_404, **_ERR_422},
        summary="Breaches, oldest deadline first, cursor-paginated",
    )
    async def breaches(
        flow: Annotated[str | None, Query(description="Only this flow (404 if unknown).")] = None,
        kind: Annotated[BreachKind | None, Query()] = None,
        status: Annotated[BreachStatus | None, Query()] = None,
        since: Annotated[
            int | None, Query(ge=0, description="deadline >= since (epoch ms).")
        ] = None,
        until: Annotated[
            int | None, Query(ge=0, description="deadline < until (epoch ms).")
        ] = None,
        cursor: Annotated[
            str | None,
            Query(pattern=CURSOR_PATTERN, description="next_cursor of the previous page."),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> BreachPage:
        flt = BreachFilter(flow=flow, kind=kind, status=status, since=since, until=until)
        return model.breaches_page(flt, cursor=cursor, limit=limit)

    @router.get(
        "/breaches/{breach_id:path}",
        response_model=BreachView,
        responses=_ERR_404,
        summary="One breach by id (`flow:key`)",
    )
    async def breach(
        breach_id: Annotated[str, Path(examples=["lead_to_posthog:lead-42"])],
    ) -> BreachView:
        return model.breach_view(breach_id)

    @router.get(
        "/entities/{flow}/{key:path}",
        response_model=EntityView,
        responses=_ERR_404,
        summary="An entity's timeline: where is it stuck",
    )
    async def entity(
        flow: Annotated[str, _FLOW], key: Annotated[str, Path(examples=["lead-42"])]
    ) -> EntityView:
        return model.entity_view(flow, key)

    return router
