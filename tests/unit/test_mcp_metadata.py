"""/mcp's protected-resource metadata (RFC 9728): where its URLs come from, and who may cache it."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.routing import Route

from tests.unit.http.backend import FakeBackend
from todo_api.adapters.mcp.http import METADATA_PATH, McpHttp, McpHttpOptions


def client_for(public_url: str | None) -> httpx.AsyncClient:
    mcp = McpHttp(FakeBackend().use_cases, McpHttpOptions(allowed_hosts=["*"], public_url=public_url))
    app = Starlette(routes=[Route(METADATA_PATH, mcp.metadata)])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_without_a_public_url_the_metadata_names_the_request_host_and_is_never_cached() -> None:
    async with client_for(None) as http:
        response = await http.get(METADATA_PATH, headers={"Host": "attacker.example"})

    assert response.status_code == 200
    assert response.json()["resource"] == "http://attacker.example/mcp"
    assert response.headers["cache-control"] == "no-store"


async def test_with_a_public_url_the_metadata_ignores_the_host_and_may_be_cached() -> None:
    async with client_for("https://api.example.com/") as http:
        response = await http.get(METADATA_PATH, headers={"Host": "attacker.example"})

    assert response.json()["resource"] == "https://api.example.com/mcp"
    assert response.headers["cache-control"] == "public, max-age=3600"
