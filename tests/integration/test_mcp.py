"""/mcp driven by the official MCP SDK's own client over HTTP, against two live server processes on
one database: the same tokens, isolation, validation and errors as the REST API, and any replica
answers any call (the transport is stateless)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from tests.integration.conftest import TEST_SECRET
from tests.integration.live_server import PYTHON, LiveServer, free_port, live_server, server_env
from tests.integration.tasks_support import User, sign_up

CONTRACT_TOOLS = {"add_task", "list_tasks", "complete_task", "delete_task", "update_task"}


@pytest.fixture(scope="module")
def servers(database_url: str) -> Iterator[tuple[LiveServer, LiveServer]]:
    root = Path(tempfile.mkdtemp(prefix="todo-mcp-"))
    try:
        with ExitStack() as stack:
            started = []
            for name in ("a", "b"):
                env = server_env(
                    PORT=str(free_port()),
                    DATABASE_URL=database_url,
                    SECRET_KEY=TEST_SECRET,
                    BCRYPT_COST="4",
                    RUN_WORKERS="false",
                    LOG_FORMAT="json",
                    THROTTLE_SIGNUP_PER_ADDRESS="100000",
                )
                started.append(stack.enter_context(live_server(env, log_path=root / f"server-{name}.log")))
            yield started[0], started[1]
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def user(servers: tuple[LiveServer, LiveServer]) -> User:
    async with httpx.AsyncClient(base_url=servers[0].base_url) as http:
        return await sign_up(http)


@asynccontextmanager
async def mcp_client(url: str, token: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


def token_of(user: User) -> str:
    return user.headers["Authorization"].removeprefix("Bearer ")


def structured(result: CallToolResult) -> Any:
    assert not result.is_error, result.content
    content = result.structured_content
    assert content is not None
    return content.get("result", content) if set(content) == {"result"} else content


def error_of(result: CallToolResult) -> dict[str, Any]:
    assert result.is_error
    assert result.structured_content is not None
    text = result.content[0]
    assert text.type == "text"
    assert json.loads(text.text) == result.structured_content  # the model reads the same as a program
    error: dict[str, Any] = result.structured_content
    return error


async def test_lists_the_contract_tools_with_input_and_output_schemas(
    servers: tuple[LiveServer, LiveServer], user: User
) -> None:
    async with mcp_client(f"{servers[0].base_url}/mcp", token_of(user)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) >= CONTRACT_TOOLS
    assert {"get_task", "list_lists", "move_task"} <= set(tools)
    add = tools["add_task"]
    assert add.description
    assert set(add.input_schema["required"]) == {"user_id", "title"}
    assert {"user_id", "title", "description"} <= set(add.input_schema["properties"])
    assert add.output_schema is not None
    assert set(add.output_schema["properties"]) == {"task_id", "status", "title"}
    status = tools["list_tasks"].input_schema["properties"]["status"]
    assert status["enum"] == ["all", "pending", "completed"]
    assert set(tools["update_task"].input_schema["required"]) == {"user_id", "task_id"}


async def test_each_contract_tool_works_and_writes_what_rest_then_shows(
    servers: tuple[LiveServer, LiveServer], user: User
) -> None:
    async with mcp_client(f"{servers[0].base_url}/mcp", token_of(user)) as client:
        added = structured(await client.call_tool("add_task", {"user_id": "me", "title": "Buy milk"}))
        assert added == {"task_id": added["task_id"], "status": "pending", "title": "Buy milk"}
        other = structured(
            await client.call_tool("add_task", {"user_id": user.id, "title": "Dentist", "description": "at 9"})
        )
        updated = structured(
            await client.call_tool(
                "update_task", {"user_id": "me", "task_id": added["task_id"], "title": "Buy oat milk"}
            )
        )
        assert updated == {"task_id": added["task_id"], "status": "pending", "title": "Buy oat milk"}
        done = structured(await client.call_tool("complete_task", {"user_id": "me", "task_id": other["task_id"]}))
        assert done["status"] == "completed"
        pending = structured(await client.call_tool("list_tasks", {"user_id": "me", "status": "pending"}))
        assert pending == [{"task_id": added["task_id"], "status": "pending", "title": "Buy oat milk"}]
        completed = structured(await client.call_tool("list_tasks", {"user_id": "me", "status": "completed"}))
        assert [task["task_id"] for task in completed] == [other["task_id"]]
        every = structured(await client.call_tool("list_tasks", {"user_id": "me"}))
        assert {task["task_id"] for task in every} == {added["task_id"], other["task_id"]}
        deleted = structured(await client.call_tool("delete_task", {"user_id": "me", "task_id": other["task_id"]}))
        assert deleted == {"task_id": other["task_id"], "status": "deleted", "title": "Dentist"}
    async with httpx.AsyncClient(base_url=servers[0].base_url) as http:
        shown = (await http.get("/api/me/tasks", headers=user.headers)).json()["data"]
    assert [(task["id"], task["title"], task["completed"]) for task in shown] == [
        (added["task_id"], "Buy oat milk", False)
    ]


async def test_the_other_tools_reach_details_filters_and_lists(
    servers: tuple[LiveServer, LiveServer], user: User
) -> None:
    async with mcp_client(f"{servers[0].base_url}/mcp", token_of(user)) as client:
        created = structured(await client.call_tool("create_list", {"user_id": "me", "name": "Errands"}))
        task = structured(
            await client.call_tool(
                "add_task",
                {
                    "user_id": "me",
                    "title": "Post office",
                    "priority": "high",
                    "tags": ["Town"],
                    "due_at": "2026-01-02T10:00:00Z",
                    "list_id": created["list_id"],
                },
            )
        )
        details = structured(await client.call_tool("get_task", {"user_id": "me", "task_id": task["task_id"]}))
        assert (details["priority"], details["tags"], details["list_id"]) == ("high", ["town"], created["list_id"])
        high = structured(await client.call_tool("list_tasks", {"user_id": "me", "priority": "high", "tag": "town"}))
        assert [found["task_id"] for found in high] == [task["task_id"]]
        none = structured(await client.call_tool("list_tasks", {"user_id": "me", "search": "nothing like it"}))
        assert none == []
        lists = structured(await client.call_tool("list_lists", {"user_id": "me"}))
        assert [(found["name"], found["open_count"]) for found in lists] == [("Inbox", 0), ("Errands", 1)]
        inbox = lists[0]["list_id"]
        moved = structured(
            await client.call_tool("move_task", {"user_id": "me", "task_id": task["task_id"], "list_id": inbox})
        )
        assert moved["task_id"] == task["task_id"]
        after = structured(await client.call_tool("get_task", {"user_id": "me", "task_id": task["task_id"]}))
        assert after["list_id"] == inbox


async def test_without_a_token_401_names_metadata_that_answers(servers: tuple[LiveServer, LiveServer]) -> None:
    async with httpx.AsyncClient(base_url=servers[0].base_url) as http:
        response = await http.post(
            "/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream"},
        )
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "missing_token"  # as REST answers
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("Bearer resource_metadata=")
        metadata_url = challenge.split('resource_metadata="', 1)[1].split('"', 1)[0]
        assert metadata_url == f"{servers[0].base_url}/.well-known/oauth-protected-resource"
        metadata = await http.get(metadata_url)
        assert metadata.status_code == 200
        assert metadata.json()["resource"] == f"{servers[0].base_url}/mcp"
        assert metadata.json()["authorization_servers"] == ["todo-api"]
        assert (await http.get("/.well-known/oauth-protected-resource/mcp")).json() == metadata.json()
        bad = await http.post("/mcp", json={}, headers={"Authorization": "Bearer not-a-token"})
        assert bad.status_code == 401
        assert 'error="invalid_token"' in bad.headers["www-authenticate"]


async def test_the_sdk_client_without_a_token_fails_to_connect(servers: tuple[LiveServer, LiveServer]) -> None:
    with pytest.raises(Exception):  # noqa: B017, PT011 - the SDK's own error for an HTTP 401
        async with mcp_client(f"{servers[0].base_url}/mcp", None) as client:
            await client.list_tools()


async def test_another_users_id_is_a_tool_error_and_reveals_nothing(
    servers: tuple[LiveServer, LiveServer], user: User
) -> None:
    async with httpx.AsyncClient(base_url=servers[0].base_url) as http:
        other = await sign_up(http)
    async with mcp_client(f"{servers[0].base_url}/mcp", token_of(other)) as client:
        theirs = structured(await client.call_tool("add_task", {"user_id": "me", "title": "Private"}))
    async with mcp_client(f"{servers[0].base_url}/mcp", token_of(user)) as client:
        listed = await client.call_tool("list_tasks", {"user_id": other.id})
        assert error_of(listed) == {"code": "not_your_tasks", "message": "You can only reach your own tasks."}
        completed = await client.call_tool("complete_task", {"user_id": other.id, "task_id": theirs["task_id"]})
        assert error_of(completed)["code"] == "not_your_tasks"
        own_path = await client.call_tool("complete_task", {"user_id": "me", "task_id": theirs["task_id"]})
        assert error_of(own_path) == {"code": "task_not_found", "message": f"Task {theirs['task_id']} was not found."}


async def test_invalid_arguments_are_tool_errors_with_the_rest_codes(
    servers: tuple[LiveServer, LiveServer], user: User
) -> None:
    async with mcp_client(f"{servers[0].base_url}/mcp", token_of(user)) as client:
        missing = error_of(await client.call_tool("add_task", {"user_id": "me"}))
        assert missing["code"] == "validation_failed"
        assert [error["loc"] for error in missing["errors"]] == [["title"]]
        blank = error_of(await client.call_tool("add_task", {"user_id": "me", "title": "   "}))
        assert blank == {"code": "invalid_title", "message": "A title may not be blank."}
        status = error_of(await client.call_tool("list_tasks", {"user_id": "me", "status": "done"}))
        assert status["code"] == "validation_failed"
        naive = error_of(await client.call_tool("add_task", {"user_id": "me", "title": "x", "due_at": "2026-01-01"}))
        assert naive["code"] == "validation_failed"
        unknown = error_of(await client.call_tool("drop_database", {}))
        assert unknown["code"] == "unknown_tool"
        assert "add_task" in unknown["message"]
        gone = error_of(await client.call_tool("delete_task", {"user_id": "me", "task_id": 999_999}))
        assert gone["code"] == "task_not_found"


async def test_one_client_is_answered_by_either_server(servers: tuple[LiveServer, LiveServer], user: User) -> None:
    """No session lives in a process: what one server wrote, the other lists, for the same client."""
    async with (
        mcp_client(f"{servers[0].base_url}/mcp", token_of(user)) as on_a,
        mcp_client(f"{servers[1].base_url}/mcp", token_of(user)) as on_b,
    ):
        added = structured(await on_a.call_tool("add_task", {"user_id": "me", "title": "From A"}))
        assert structured(await on_b.call_tool("list_tasks", {"user_id": "me"})) == [added]
        assert structured(await on_b.call_tool("complete_task", {"user_id": "me", "task_id": added["task_id"]}))
        assert structured(await on_a.call_tool("list_tasks", {"user_id": "me", "status": "completed"})) == [
            {**added, "status": "completed"}
        ]


async def test_a_raw_request_carries_no_session_and_either_server_answers_it(
    servers: tuple[LiveServer, LiveServer], user: User
) -> None:
    """Stateless: no `Mcp-Session-Id` is issued, and a tools/call needs no prior initialize."""
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "list_tasks", "arguments": {"user_id": "me"}},
    }
    headers = {**user.headers, "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}
    for server in servers:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            response = await http.post("/mcp", json=body, headers=headers)
        assert response.status_code == 200, response.text
        assert "mcp-session-id" not in response.headers
        assert response.json()["result"]["structuredContent"] == {"result": []}


async def test_unknown_hosts_get_421_and_big_bodies_413(servers: tuple[LiveServer, LiveServer], user: User) -> None:
    headers = {**user.headers, "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with httpx.AsyncClient(base_url=servers[0].base_url) as http:
        rebound = await http.post("/mcp", json=body, headers={**headers, "Host": "evil.example"})
        assert rebound.status_code == 421
        huge = await http.post(
            "/mcp", content=b'{"x": "' + b"a" * 70_000 + b'"}', headers={**headers, "Content-Type": "application/json"}
        )
        assert huge.status_code == 413
        assert huge.headers["content-type"] == "application/problem+json"


async def test_stdio_serves_the_same_tools_for_the_token_in_the_environment(
    servers: tuple[LiveServer, LiveServer], user: User, database_url: str, tmp_path: Path
) -> None:
    env = server_env(DATABASE_URL=database_url, SECRET_KEY=TEST_SECRET, TODO_API_TOKEN=token_of(user))
    params = StdioServerParameters(command=PYTHON, args=["-m", "todo_api", "mcp"], env=env, cwd=tmp_path)
    async with Client(params) as client:
        assert {tool.name for tool in (await client.list_tools()).tools} >= CONTRACT_TOOLS
        added = structured(await client.call_tool("add_task", {"user_id": "me", "title": "From a desktop agent"}))
        foreign = error_of(await client.call_tool("list_tasks", {"user_id": "someone-else"}))
    assert foreign["code"] == "not_your_tasks"
    async with httpx.AsyncClient(base_url=servers[0].base_url) as http:
        shown = (await http.get(f"/api/me/tasks/{added['task_id']}", headers=user.headers)).json()
    assert shown["title"] == "From a desktop agent"
