"""Bearer-token access control for ``/v1`` and ``/metrics``.

Open when no token is configured (the API binds to localhost by default). When
``FRESHNESS_API_TOKEN`` is set, a request passes only with ``Authorization: Bearer <token>``;
the comparison is constant-time (:func:`hmac.compare_digest` over the UTF-8 bytes) and every
refusal is the same 401, whatever was wrong, so it reveals nothing about the token.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

_bearer = HTTPBearer(auto_error=False, description="Required when FRESHNESS_API_TOKEN is set.")


def token_matches(expected: SecretStr, presented: str) -> bool:
    """Constant-time equality of the configured and the presented token."""
    return hmac.compare_digest(
        expected.get_secret_value().encode("utf-8"), presented.encode("utf-8")
    )


def unauthorized() -> HTTPException:
    return HTTPException(
        status_code=401,
        detail="missing or invalid bearer token",
        headers={"WWW-Authenticate": "Bearer"},
    )


def guard(token: SecretStr | None) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency enforcing ``token``.

    With no token (unset or empty) it is a no-op and declares no security scheme, so the
    OpenAPI document says what the server does: open when open, bearer-protected when set.
    """
    if token is None or not token.get_secret_value():

        async def open_access() -> None:
            return None

        return open_access

    async def check(
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    ) -> None:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise unauthorized()
        if not token_matches(token, credentials.credentials):
            raise unauthorized()

    return check
