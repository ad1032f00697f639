"""Every header a client reads is declared on the responses that carry it, and the server sends
nothing of the kind the document does not declare."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.unit.http.conftest import ADA_TOKEN, bearer

READ_BY_CLIENTS = ("x-request-id", "etag", "location", "link", "retry-after", "idempotent-replayed", "www-authenticate")


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    openapi: dict[str, Any] = (await client.get("/openapi.json")).json()
    return openapi


def declared(document: dict[str, Any], operation_id: str, status: int) -> set[str]:
    for item in document["paths"].values():
        for operation in item.values():
            if operation.get("operationId") == operation_id:
                response = operation["responses"][str(status)]
                return {name.lower() for name in response.get("headers", {})}
    raise KeyError(operation_id)


def sent(response: httpx.Response) -> set[str]:
    return {name for name in READ_BY_CLIENTS if name in response.headers}


async def test_every_response_of_every_operation_declares_x_request_id(document: dict[str, Any]) -> None:
    missing = [
        (operation.get("operationId"), status)
        for item in document["paths"].values()
        for operation in item.values()
        for status, response in operation["responses"].items()
        if "X-Request-ID" not in response.get("headers", {})
    ]
    assert missing == []


async def test_the_headers_are_components_with_a_description(document: dict[str, Any]) -> None:
    headers = document["components"]["headers"]
    assert {name.lower() for name in headers} == set(READ_BY_CLIENTS)
    assert all(header["description"] and header["schema"] for header in headers.values())


async def test_what_the_task_routes_send_is_what_they_declare(
    client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    auth = bearer(ADA_TOKEN)
    seen: list[tuple[str, httpx.Response]] = []
    created = await client.post("/api/me/tasks", json={"title": "A"}, headers=auth | {"Idempotency-Key": "k-1"})
    seen.append(("createTask", created))
    seen.append(
        (
            "createTask",
            await client.post("/api/me/tasks", json={"title": "A"}, headers=auth | {"Idempotency-Key": "k-1"}),
        )
    )
    await client.post("/api/me/tasks", json={"title": "B"}, headers=auth)
    task = created.headers["location"]
    seen.append(("getTask", await client.get(task, headers=auth)))
    seen.append(("getTask", await client.get(task, headers=auth | {"If-None-Match": created.headers["etag"]})))
    seen.append(("updateTask", await client.patch(task, json={"title": "C"}, headers=auth)))
    seen.append(("updateTask", await client.patch(task, json={"title": "D"}, headers=auth | {"If-Match": '"1"'})))
    seen.append(("listTasks", await client.get("/api/me/tasks?limit=1", headers=auth)))
    seen.append(("listTasks", await client.get("/api/me/tasks")))
    seen.append(("createList", await client.post("/api/me/lists", json={"name": "Errands"}, headers=auth)))

    statuses = [response.status_code for _, response in seen]
    assert statuses == [201, 201, 200, 304, 200, 412, 200, 401, 201]
    assert seen[1][1].headers["idempotent-replayed"] == "true"
    assert "link" in seen[6][1].headers
    for operation_id, response in seen:
        assert sent(response) <= declared(document, operation_id, response.status_code), (operation_id, response)


async def test_following_link_does_not_repeat_include_total(client: httpx.AsyncClient) -> None:
    auth = bearer(ADA_TOKEN)
    for title in ("A", "B", "C"):
        await client.post("/api/me/tasks", json={"title": title}, headers=auth)

    first = await client.get("/api/me/tasks?limit=1&include_total=true&status=pending", headers=auth)
    link = first.headers["link"]
    second = await client.get(link[1 : link.index(">")], headers=auth)

    assert first.json()["meta"]["total"] == 3
    assert "include_total" not in link
    assert "status=pending" in link
    assert second.json()["meta"]["total"] is None
