"""Fixtures of the API tests: a read model on a frozen clock, record builders, a client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from api.readmodel import ReadModel
from tests.api.records import Records, make_client, make_model


@pytest.fixture
def rec() -> Records:
    return Records()


@pytest.fixture
def model() -> ReadModel:
    return make_model()


@pytest.fixture
async def client(model: ReadModel) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(model) as c:
        yield c
