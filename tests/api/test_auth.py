"""Bearer-token access: open by default; with a token, /v1 and /metrics need it."""

from __future__ import annotations

import hmac

import pytest
from pydantic import SecretStr

from api import auth
from api.readmodel import ReadModel
from streams.settings import Settings
from tests.api.records import make_client

TOKEN = "s3cret-token"
PROTECTED = ("/v1/flows", "/v1/breaches", "/v1/flows/lead_to_posthog", "/metrics")


@pytest.mark.parametrize("token", [None, ""])
async def test_open_without_a_token(model: ReadModel, token: str | None) -> None:
    settings = Settings(api_token=None if token is None else SecretStr(token))
    async with make_client(model, settings) as client:
        for path in PROTECTED:
            assert (await client.get(path)).status_code == 200, path
        spec = (await client.get("/openapi.json")).json()
        assert "securitySchemes" not in spec.get("components", {})


@pytest.mark.parametrize(
    "header",
    [
        None,
        f"Basic {TOKEN}",
        "Bearer wrong",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        "Bearer ",
        "Bearer",
        "Bearer \u00e9t\u00e9".encode("latin-1"),
    ],
)
async def test_every_refusal_is_the_same_401(model: ReadModel, header: str | bytes | None) -> None:
    settings = Settings(api_token=SecretStr(TOKEN))
    headers: dict[str, str | bytes] = {} if header is None else {"Authorization": header}
    async with make_client(model, settings) as client:
        bodies = set()
        for path in PROTECTED:
            r = await client.get(path, headers=headers)
            assert r.status_code == 401, (path, header)
            assert r.headers["www-authenticate"] == "Bearer"
            bodies.add(r.text)
        assert bodies == {
            '{"error":{"code":"unauthorized","message":"missing or invalid bearer token",'
            '"detail":null}}'
        }
        assert TOKEN not in bodies.pop()


async def test_the_right_token_passes_and_probes_stay_open(model: ReadModel) -> None:
    settings = Settings(api_token=SecretStr(TOKEN))
    async with make_client(model, settings) as client:
        for path in PROTECTED:
            r = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 200, path
        for path in ("/healthz", "/readyz", "/openapi.json"):
            assert (await client.get(path)).status_code == 200, path
        spec = (await client.get("/openapi.json")).json()
        assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


async def test_comparison_is_constant_time(
    model: ReadModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    settings = Settings(api_token=SecretStr(TOKEN))
    async with make_client(model, settings) as client:
        await client.get("/v1/flows", headers={"Authorization": "Bearer nope"})
        await client.get("/v1/flows", headers={"Authorization": f"Bearer {TOKEN}"})
    assert calls == [(TOKEN.encode(), b"nope"), (TOKEN.encode(), TOKEN.encode())]
