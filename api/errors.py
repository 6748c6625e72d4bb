"""Errors the API raises on purpose, and their one mapping to HTTP answers.

The read model raises these (they are :class:`~streams.errors.FreshnessError`\\ s); only
:func:`install` knows about status codes. Every error answer has the
:class:`~api.models.ErrorBody` shape, including FastAPI's own 404/405/422, and an unexpected
exception: a 500 whose body carries an incident id and no trace; the trace is logged with
that id, server-side only.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from streams.errors import FreshnessError

log = logging.getLogger(__name__)


class NotFoundError(FreshnessError):
    """An unknown flow, breach or entity was asked for; check the name or id."""


class InvalidQueryError(FreshnessError):
    """A query parameter is well-typed but unusable (e.g. a foreign cursor)."""


def error_response(
    status: int,
    code: str,
    message: str,
    detail: list[dict[str, Any]] | None = None,
    incident: str | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message, "detail": detail}
    if incident is not None:
        error["incident"] = incident
    return JSONResponse({"error": error}, status_code=status)


_CODES = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the ``ErrorBody`` shape."""

    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        return error_response(404, "not_found", str(exc))

    async def invalid_query(_: Request, exc: Exception) -> JSONResponse:
        return error_response(422, "invalid_query", str(exc))

    async def validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        detail = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        return error_response(
            422, "invalid_query", "the request is not valid; see detail", jsonable_encoder(detail)
        )

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _CODES.get(exc.status_code, "http_error")
        response = error_response(exc.status_code, code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        incident = uuid.uuid4().hex[:16]
        log.error(
            "unexpected error, incident %s, answering %s %s",
            incident,
            request.method,
            request.url.path,
            exc_info=exc,
        )
        return error_response(
            500,
            "internal_error",
            f"an unexpected error happened; the server logged it as incident {incident}",
            incident=incident,
        )

    app.add_exception_handler(Exception, unexpected)
    app.add_exception_handler(NotFoundError, not_found)
    app.add_exception_handler(InvalidQueryError, invalid_query)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
