"""/healthz and /readyz: readiness follows the database, with no restart of the app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.integration.conftest import make_settings
from tests.integration.tcp_proxy import TcpProxy
from todo_api.main import create_app


@pytest.fixture
async def proxied(database_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, TcpProxy]]:
    proxy = TcpProxy(database_url)
    await proxy.start()
    app = create_app(make_settings(db_connect_timeout_s=1.0), database_url=proxy.url)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        yield client, proxy
    await proxy.stop()


async def test_liveness_answers_without_touching_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readiness_is_200_while_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_readiness_turns_503_when_the_database_goes_and_200_when_it_returns(
    proxied: tuple[httpx.AsyncClient, TcpProxy],
) -> None:
    client, proxy = proxied
    assert (await client.get("/readyz")).status_code == 200

    proxy.cut()
    started = time.monotonic()
    down = await client.get("/readyz")
    assert time.monotonic() - started < 5, "readiness must answer within a bounded time"
    assert down.status_code == 503
    assert down.headers["content-type"] == "application/problem+json"
    assert int(down.headers["retry-after"]) >= 1
    body = down.json()
    assert body["code"] == "service_unavailable"
    assert body["status"] == 503
    assert "asyncpg" not in down.text
    assert "Traceback" not in down.text

    proxy.restore()
    deadline = time.monotonic() + 1.0
    while (up := await client.get("/readyz")).status_code != 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert up.status_code == 200, "the app must recover by itself once the database is back"
