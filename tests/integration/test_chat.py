"""The chat endpoint against a scripted OpenAI-compatible model: what the person gets back, what the
model was shown, and what is stored (conversations, messages, and the tasks the tools changed)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.conftest import make_settings
from tests.integration.scripted_model import FAIL, ScriptedModel, answer, calls, scripted_model, tool_call
from tests.integration.tasks_support import User, assert_problem, sign_up
from todo_api.main import create_app

MAX_STEPS = 3


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedModel]:
    with scripted_model() as scripted:
        yield scripted


@pytest.fixture(scope="module")
async def chat_client(database_url: str, model: ScriptedModel) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(chat_base_url=model.base_url, chat_model="scripted", chat_max_steps=MAX_STEPS)
    app = create_app(settings, database_url=database_url)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=30) as http,
    ):
        yield http


@pytest.fixture
async def user(chat_client: httpx.AsyncClient) -> User:
    return await sign_up(chat_client)


async def chat(client: httpx.AsyncClient, user: User, message: str, **extra: Any) -> dict[str, Any]:
    response = await client.post("/api/me/chat", json={"message": message, **extra}, headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def stored_messages(db: asyncpg.Connection, conversation_id: int) -> list[tuple[str, str | None, Any]]:
    rows = await db.fetch(
        "SELECT role, content, tool_calls, tool_call_id, is_error FROM messages WHERE conversation_id = $1 ORDER BY id",
        conversation_id,
    )
    return [(row["role"], row["content"], row["tool_calls"] and json.loads(row["tool_calls"])) for row in rows]


async def test_without_a_model_chat_is_503_and_the_rest_of_the_api_works(client: httpx.AsyncClient) -> None:
    user = await sign_up(client)
    response = await client.post("/api/me/chat", json={"message": "hello"}, headers=user.headers)
    body = assert_problem(response, 503, "chat_not_configured")
    assert "model" in body["detail"]
    assert (await client.get("/api/me/tasks", headers=user.headers)).status_code == 200
    assert (await client.get("/api/me/conversations", headers=user.headers)).json()["data"] == []


async def test_a_tool_call_adds_the_task_and_the_whole_turn_is_stored(
    chat_client: httpx.AsyncClient, model: ScriptedModel, user: User, db: asyncpg.Connection
) -> None:
    add = tool_call("add_task", {"user_id": "me", "title": "Buy milk"}, "call_1")
    model.reset(calls(add), answer("Added “Buy milk” to your Inbox."))

    body = await chat(chat_client, user, "add buy milk")

    assert body["response"] == "Added “Buy milk” to your Inbox."
    assert body["stopped"] is None
    [made] = body["tool_calls"]
    assert (made["name"], made["is_error"]) == ("add_task", False)
    task = json.loads(made["result"])
    assert task == {"task_id": task["task_id"], "status": "pending", "title": "Buy milk"}
    rows = await db.fetch("SELECT id, title, user_id FROM tasks")
    assert [(row["id"], row["title"], row["user_id"]) for row in rows] == [(task["task_id"], "Buy milk", user.id)]
    offered = {tool["function"]["name"] for tool in model.requests[0]["tools"]}
    assert {"add_task", "list_tasks", "complete_task", "delete_task", "update_task"} <= offered
    assert model.requests[1]["messages"][-1] == {"role": "tool", "tool_call_id": "call_1", "content": made["result"]}
    assert await stored_messages(db, body["conversation_id"]) == [
        ("user", "add buy milk", None),
        ("assistant", None, [{"id": "call_1", "name": "add_task", "arguments": add["function"]["arguments"]}]),
        ("tool", made["result"], None),
        ("assistant", "Added “Buy milk” to your Inbox.", None),
    ]
    conversation = await db.fetchrow("SELECT user_id, title FROM conversations WHERE id = $1", body["conversation_id"])
    assert conversation is not None
    assert (conversation["user_id"], conversation["title"]) == (user.id, "add buy milk")


async def test_unknown_tools_and_malformed_arguments_are_tool_errors_the_model_reads(
    chat_client: httpx.AsyncClient, model: ScriptedModel, user: User, db: asyncpg.Connection
) -> None:
    model.reset(
        calls(
            tool_call("add_task", '{"user_id": "me", "title": ', "call_bad_json"),
            tool_call("fly_to_the_moon", {}, "call_unknown"),
            tool_call("add_task", {"user_id": "me"}, "call_missing"),
            tool_call("list_tasks", {"user_id": "somebody-else"}, "call_foreign"),
        ),
        answer("Sorry, I could not do that."),
    )

    body = await chat(chat_client, user, "do something odd")

    codes = [json.loads(made["result"])["code"] for made in body["tool_calls"]]
    assert codes == ["malformed_arguments", "unknown_tool", "validation_failed", "not_your_tasks"]
    assert all(made["is_error"] for made in body["tool_calls"])
    shown = [m for m in model.requests[1]["messages"] if m["role"] == "tool"]
    assert [json.loads(m["content"])["code"] for m in shown] == codes
    assert body["response"] == "Sorry, I could not do that."
    assert await db.fetchval("SELECT count(*) FROM tasks") == 0


async def test_a_model_that_never_stops_is_capped_and_the_person_is_told(
    chat_client: httpx.AsyncClient, model: ScriptedModel, user: User, db: asyncpg.Connection
) -> None:
    model.reset(forever=calls(tool_call("list_tasks", {"user_id": "me"}, "call_again")))

    body = await chat(chat_client, user, "loop forever")

    assert body["stopped"] == "step_limit"
    assert body["response"].startswith(f"I stopped before finishing: this needed more than {MAX_STEPS} steps.")
    assert len(body["tool_calls"]) == MAX_STEPS
    assert len(model.requests) == MAX_STEPS
    roles = [role for role, _, _ in await stored_messages(db, body["conversation_id"])]
    assert roles == ["user", *["assistant", "tool"] * MAX_STEPS, "assistant"]
    assert (await stored_messages(db, body["conversation_id"]))[-1][1] == body["response"]


async def test_a_model_failure_before_any_tool_stores_nothing(
    chat_client: httpx.AsyncClient, model: ScriptedModel, user: User, db: asyncpg.Connection
) -> None:
    model.reset(FAIL, FAIL, FAIL)

    response = await chat_client.post("/api/me/chat", json={"message": "hello"}, headers=user.headers)

    assert_problem(response, 503, "chat_model_unavailable")
    assert await db.fetchval("SELECT count(*) FROM conversations") == 0
    assert await db.fetchval("SELECT count(*) FROM messages") == 0


async def test_a_model_failure_after_a_tool_ran_stores_what_was_done(
    chat_client: httpx.AsyncClient, model: ScriptedModel, user: User, db: asyncpg.Connection
) -> None:
    model.reset(calls(tool_call("add_task", {"user_id": "me", "title": "Dentist"}, "call_1")), FAIL, FAIL)

    body = await chat(chat_client, user, "add dentist")

    assert body["stopped"] == "model_error"
    assert "failed midway" in body["response"]
    assert await db.fetchval("SELECT title FROM tasks") == "Dentist"
    roles = [role for role, _, _ in await stored_messages(db, body["conversation_id"])]
    assert roles == ["user", "assistant", "tool", "assistant"]


async def test_a_conversation_continues_with_its_history_pages_and_is_deleted(
    chat_client: httpx.AsyncClient, model: ScriptedModel, user: User
) -> None:
    model.reset(answer("Hello!"))
    first = await chat(chat_client, user, "hi there")
    model.reset(answer("You said hi."))
    second = await chat(chat_client, user, "what did I say?", conversation_id=first["conversation_id"])
    assert second["conversation_id"] == first["conversation_id"]
    shown = [(m["role"], m["content"]) for m in model.requests[0]["messages"] if m["role"] != "system"]
    assert shown == [("user", "hi there"), ("assistant", "Hello!"), ("user", "what did I say?")]

    listed = (await chat_client.get("/api/me/conversations", headers=user.headers)).json()
    assert [(c["id"], c["title"]) for c in listed["data"]] == [(first["conversation_id"], "hi there")]
    url = f"/api/me/conversations/{first['conversation_id']}/messages"
    page = await chat_client.get(url, params={"limit": 3}, headers=user.headers)
    assert [m["content"] for m in page.json()["data"]] == ["hi there", "Hello!", "what did I say?"]
    assert page.headers["link"].endswith('rel="next"')
    rest = await chat_client.get(
        url, params={"limit": 3, "cursor": page.json()["meta"]["next_cursor"]}, headers=user.headers
    )
    assert [m["content"] for m in rest.json()["data"]] == ["You said hi."]
    assert rest.json()["meta"]["next_cursor"] is None

    other = await sign_up(chat_client)
    assert_problem(
        await chat_client.get(url.replace("/me/", "/me/"), headers=other.headers), 404, "conversation_not_found"
    )
    taken = await chat_client.post(
        "/api/me/chat", json={"message": "hi", "conversation_id": first["conversation_id"]}, headers=other.headers
    )
    assert_problem(taken, 404, "conversation_not_found")

    deleted = await chat_client.delete(f"/api/me/conversations/{first['conversation_id']}", headers=user.headers)
    assert deleted.status_code == 204
    assert_problem(await chat_client.get(url, headers=user.headers), 404, "conversation_not_found")


async def test_a_blank_or_too_long_message_is_422(chat_client: httpx.AsyncClient, user: User) -> None:
    for message in ("   ", "x" * 4001):
        response = await chat_client.post("/api/me/chat", json={"message": message}, headers=user.headers)
        assert_problem(response, 422)


async def test_the_answer_streams_as_server_sent_events(
    chat_client: httpx.AsyncClient, model: ScriptedModel, user: User
) -> None:
    model.reset(calls(tool_call("add_task", {"user_id": "me", "title": "Stream me"}, "call_1")), answer("Added."))

    response = await chat_client.post(
        "/api/me/chat", json={"message": "add stream me"}, headers={**user.headers, "Accept": "text/event-stream"}
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = [frame for frame in response.text.split("\n\n") if frame.strip()]
    events = [(frame.split("\n")[0], json.loads(frame.split("data: ", 1)[1])) for frame in frames]
    assert [name for name, _ in events] == ["event: tool_call", "event: done"]
    assert events[0][1]["name"] == "add_task"
    assert events[1][1]["response"] == "Added."
    assert events[1][1]["tool_calls"] == [events[0][1]]
