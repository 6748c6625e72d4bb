"""API hardening: distinct read and ingest tokens, weak secrets refused in production, no trace
in any answer (a 500 carries an incident id, the trace goes to the log), security headers on
the HTML pages, and uvicorn's own refusals (an over-long request line or header) in the API's
JSON error shape from a real server."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from api.app import create_app
from api.limits import MAX_HEAD_BYTES, MAX_TARGET_BYTES
from api.readmodel import ReadModel
from streams.errors import ConfigError
from streams.settings import Settings, load_settings, weak_api_secrets
from tests.api.records import make_client, make_model

STRONG = "Zr8q1x0C3-ky7LmVh2Wd"
OTHER = "p0Tq8Hs2nB6-vXe1Jc4M"


# ---- tokens and secrets ---------------------------------------------------------------


def test_the_read_and_the_ingest_token_must_differ() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(api_token=STRONG, ingest_token=STRONG)
    message = str(err.value)
    assert "FRESHNESS_API_TOKEN and FRESHNESS_INGEST_TOKEN are the same value" in message
    assert "\n" not in message
    assert STRONG not in message  # a refusal never echoes the secret
    load_settings(api_token=STRONG, ingest_token=OTHER)


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("api_token", "changeme", "is a placeholder"),
        ("ingest_token", "Secret", "is a placeholder"),
        ("webhook_ingest_secret", "<token>", "is a placeholder"),
        ("api_token", "...", "is a placeholder"),
        ("api_token", "a" * 32, "is a placeholder"),
        ("ingest_token", "short-but-ok1", "has 13 characters (at least 16)"),
    ],
)
def test_production_refuses_placeholders_and_short_secrets(
    variable: str, value: str, why: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env="production", **{variable: value})
    message = str(err.value)
    assert f"FRESHNESS_{variable.upper()} {why}" in message
    assert "\n" not in message
    if len(value) >= 8:
        assert value not in message  # a refusal never echoes the secret
    # development accepts the same value and only reports it (a start-up warning)
    dev = load_settings(env="development", **{variable: value})
    assert any(f"FRESHNESS_{variable.upper()} {why}" in line for line in weak_api_secrets(dev))


def test_production_accepts_strong_distinct_secrets() -> None:
    s = load_settings(
        env="production", api_token=STRONG, ingest_token=OTHER, webhook_ingest_secret=STRONG[::-1]
    )
    assert weak_api_secrets(s) == []


# ---- no trace in any answer -----------------------------------------------------------


class Exploding(ReadModel):
    def flows_view(self) -> object:  # type: ignore[override]
        raise RuntimeError("boom: /srv/secret/path line 42")


async def test_an_unexpected_error_is_a_json_500_with_an_incident_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    base = make_model()
    model = Exploding(base.flows.values(), clock=base.clock)
    model.progress.mark_caught_up()
    # As uvicorn does: the app's answer is sent, and the exception still reaches the server.
    transport = httpx.ASGITransport(app=create_app(Settings(), model), raise_app_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="api.errors"):
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            r = await client.get("/v1/flows")
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert error["code"] == "internal_error"
    assert "boom" not in r.text
    assert "Traceback" not in r.text
    assert "/srv/secret" not in r.text
    logged = [rec for rec in caplog.records if error["incident"] in rec.getMessage()]
    assert len(logged) == 1
    assert logged[0].exc_info is not None  # the trace is in the server's log, with the id


# ---- security headers -----------------------------------------------------------------


async def test_the_status_page_sends_the_security_headers() -> None:
    async with make_client(make_model()) as client:
        r = await client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"


# ---- uvicorn's own refusals, from a real server ---------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def demo_url() -> Iterator[str]:
    """``python -m api.demo`` (the server ``freshness api`` runs: the same uvicorn config)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRESHNESS_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.demo", "--port", str(port), "--breaches", "10"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def raw_request(url: str, *pieces: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``pieces`` as is, each in its own write; the status, headers and body answered."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        for piece in pieces:
            s.sendall(piece)
            time.sleep(0.05)  # separate reads on the server: h11 sees an incomplete head
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    header_block, _, body = rest.partition(b"\r\n\r\n")
    headers = {}
    for line in header_block.split(b"\r\n"):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


CLOSE = b"Host: a\r\nConnection: close\r\n"
FLOWS = b"GET /v1/flows HTTP/1.1\r\n"


@pytest.mark.parametrize(
    ("pieces", "status", "code"),
    [
        (
            [b"GET /v1/flows?" + b"x" * MAX_TARGET_BYTES + b" HTTP/1.1\r\n" + CLOSE + b"\r\n"],
            414,
            "uri_too_long",
        ),
        (
            [
                b"GET /v1/flows HTTP/1.1\r\n"
                + CLOSE
                + b"X-Big: "
                + b"y" * MAX_HEAD_BYTES
                + b"\r\n\r\n"
            ],
            431,
            "headers_too_large",
        ),
        (
            [
                b"GET /v1/flows?" + b"x" * (MAX_HEAD_BYTES + 1024),
                b" HTTP/1.1\r\n" + CLOSE + b"\r\n",
            ],
            400,
            "bad_request",
        ),
        ([b"GET /v1/flows HTTP/1.1\r\n" + CLOSE + b"Bad Header\r\n\r\n"], 400, "bad_request"),
    ],
    ids=["long request line", "long header", "long head in pieces (h11)", "malformed (h11)"],
)
def test_an_oversized_or_malformed_head_gets_the_json_error_shape(
    demo_url: str, pieces: list[bytes], status: int, code: str
) -> None:
    answered, headers, body = raw_request(demo_url, *pieces)
    assert answered == status
    assert headers["content-type"] == "application/json"
    assert "server" not in headers
    assert orjson.loads(body)["error"]["code"] == code


def test_a_request_just_under_the_limits_is_served(demo_url: str) -> None:
    query = b"x" * (MAX_TARGET_BYTES - 100)
    header = b"X-Big: " + b"y" * (MAX_HEAD_BYTES - 200) + b"\r\n"
    answered, headers, _ = raw_request(
        demo_url, b"GET /healthz?" + query + b" HTTP/1.1\r\n" + CLOSE + header + b"\r\n"
    )
    assert answered == 200
    assert headers["content-type"] == "application/json"
