"""``GET /v1/entities/{flow}/{key}/explain``: an entity's verdict and where its time went.

Without ``inputs`` the answer comes from the read model alone (its measurements and
current breach record): the verdict, its arithmetic and the event-time part of the lag
decomposition. With ``inputs=true`` the API also reads, from Kafka, the input records at
the positions those records name and the entity's output records written around them (for
their Kafka timestamps), so every part of the decomposition is filled in, exactly as
``freshness explain`` computes it (:mod:`streams.replay.explain`). A Kafka that cannot be
reached answers 503 with a JSON error body.

``pages`` lists the alerts that name the entity, from the read model's alert ledger: the
current state of every ``freshness.alerts`` alert whose ``details.oldest`` names it (a
``stuck`` alert names its oldest overdue starts), with its version as the offset. The API
keeps only each alert's latest state, so a page that has since moved on to other entities
or resolved is not listed; ``freshness explain`` reads every state in its window.

The route is registered before ``/v1/entities/{flow}/{key}`` (whose key may contain ``/``),
so a key that itself ends in ``/explain`` cannot be asked for by its timeline.
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol

import orjson
from fastapi import APIRouter, Path, Query

from api.errors import NotFoundError, error_response
from api.models import EntityExplanation, ErrorBody
from api.readmodel import ReadModel
from streams import topics
from streams.alerting.records import encode_alert
from streams.core.clock import Clock, now_ms
from streams.core.model import Flow
from streams.errors import BrokerError
from streams.replay.explain import InputSeen, OutputSeen, build, names_entity
from streams.settings import Settings

DEFAULT_WINDOW_MS = 60_000


class EntityLookup(Protocol):
    """Reads an entity's records from Kafka (:class:`streams.replay.lookup.EntityRecords`)."""

    async def records(
        self, flow: Flow, key: str, known: list[OutputSeen], window_ms: int
    ) -> tuple[list[InputSeen], list[OutputSeen], list[OutputSeen]]: ...


def router(
    model: ReadModel,
    settings: Settings,
    lookup: EntityLookup | None = None,
    clock: Clock = now_ms,
) -> APIRouter:
    """The explain route over ``model``; ``lookup`` reads Kafka (default: ``settings``')."""
    if lookup is None:
        from streams.flows.config import load_flows
        from streams.replay.lookup import EntityRecords

        lookup = EntityRecords(settings, load_flows(settings.flows))
    found = lookup
    r = APIRouter(prefix="/v1")
    responses: dict[int | str, dict[str, Any]] = {
        404: {"model": ErrorBody, "description": "Unknown flow, or nothing known of the entity."},
        503: {"model": ErrorBody, "description": "inputs=true and Kafka cannot be read."},
    }

    @r.get(
        "/entities/{flow}/{key:path}/explain",
        response_model=EntityExplanation,
        responses=responses,
        summary="An entity's verdict with its arithmetic and its lag decomposition",
    )
    async def explain(
        flow: Annotated[str, Path(examples=["lead_to_posthog"])],
        key: Annotated[str, Path(examples=["lead-42"])],
        inputs: Annotated[
            bool, Query(description="Also read the input records (and timestamps) from Kafka.")
        ] = False,
        window_ms: Annotated[
            int,
            Query(
                ge=1_000,
                le=3_600_000,
                description="With inputs: how long after its input records the entity's "
                "output records are looked for.",
            ),
        ] = DEFAULT_WINDOW_MS,
    ) -> Any:
        try:
            return await explain_entity(
                model, flow, key, found if inputs else None, window_ms=window_ms, now=clock()
            )
        except BrokerError as exc:
            return error_response(503, "kafka_unavailable", str(exc))

    return r


async def explain_entity(
    model: ReadModel,
    flow: str,
    key: str,
    lookup: EntityLookup | None,
    *,
    window_ms: int = DEFAULT_WINDOW_MS,
    now: int,
) -> EntityExplanation:
    """The explanation of ``flow``/``key`` from the read model, and with ``lookup`` also
    from the entity's records in Kafka (the route's ``inputs=true``; the status page's
    entity page too). :class:`NotFoundError` when the read model knows nothing of it,
    :class:`BrokerError` when Kafka cannot be read."""
    f = model.require_flow(flow)
    known = _known(model, f, key)
    ins: list[InputSeen] = []
    breaches = [o for o in known if o.topic == topics.BREACHES]
    measurements = [o for o in known if o.topic == topics.MEASUREMENTS]
    if lookup is not None:
        ins, breaches, measurements = await lookup.records(f, key, known, window_ms)
    e = build(f, key, ins, breaches, measurements, now, _pages(model, f, key))
    return EntityExplanation.model_validate(e.to_json())


def _pages(model: ReadModel, flow: Flow, key: str) -> list[OutputSeen]:
    """The current alert states that name the entity, oldest version first."""
    out = []
    for state in model.alerts.states.values():
        value = orjson.loads(encode_alert(state)[1])
        if names_entity(value, flow.name, key):
            out.append(OutputSeen(topics.ALERTS, -1, state.event.version, None, value))
    return sorted(out, key=lambda o: o.offset)


def _known(model: ReadModel, flow: Flow, key: str) -> list[OutputSeen]:
    """The entity's records in the read model (no Kafka positions or timestamps)."""
    measurements = model.entities.get(flow.name, key)
    breach = model.breaches.get(f"{flow.name}:{key}")
    if not measurements and breach is None:
        raise NotFoundError(
            f"no measurement or breach of {flow.name}:{key} in the read model: it is unknown, "
            "still within its target, or older than the API's timeline cache; "
            "`freshness explain` scans Kafka for it"
        )
    out = [OutputSeen(topics.MEASUREMENTS, -1, -1, None, m) for m in measurements]
    if breach is not None:
        out.append(OutputSeen(topics.BREACHES, -1, -1, None, dict(breach)))
    return out
