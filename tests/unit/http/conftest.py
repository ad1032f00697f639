"""The real HTTP app over the real use cases on in-memory fakes: no database, milliseconds a test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.unit.http.backend import FakeBackend
from todo_api.adapters.http.app import HttpOptions, create_http_app

ADA, BOB = "Ada0" + "a" * 28, "Bob0" + "b" * 28
ADA_TOKEN, BOB_TOKEN = "ada-token", "bob-token"
ADA_EMAIL, ADA_PASSWORD = "ada@example.com", "correct horse battery staple"
PEER = ("203.0.113.7", 50_000)  # the address every test request comes from, unless it says otherwise


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def client_of(app: FastAPI, peer: tuple[str, int] = PEER) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=peer), base_url="http://test")


@pytest.fixture
def backend() -> FakeBackend:
    backend = FakeBackend()
    backend.add_user(ADA, token=ADA_TOKEN, email=ADA_EMAIL, password=ADA_PASSWORD)
    backend.add_user(BOB, token=BOB_TOKEN, email="bob@example.com")
    return backend


@pytest.fixture
def options() -> HttpOptions:
    return HttpOptions(cursor_key="k" * 40)


@pytest.fixture
def app(backend: FakeBackend, options: HttpOptions) -> FastAPI:
    return create_http_app(backend.use_cases, options)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(app) as http:
        yield http
