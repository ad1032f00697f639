"""The chat routes over fakes: the streamed turn (once the 200 is sent, a failure is an `event: error`;
a client gone mid-stream leaves the turn stored) and the conversation pages."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import httpx

from tests.unit.chat_fakes import HangingTools, ScriptedChatModel
from tests.unit.http.backend import FakeBackend
from tests.unit.http.conftest import ADA, ADA_TOKEN, bearer
from todo_api.adapters.http.app import HttpOptions, create_http_app
from todo_api.domain.chat import ModelReply, ToolCall
from todo_api.use_cases.chat import ChatTurn

STREAM = {**bearer(ADA_TOKEN), "Accept": "text/event-stream"}


def events(body: str) -> list[tuple[str, dict[str, object]]]:
    frames = [frame for frame in body.split("\n\n") if frame.strip()]
    return [(frame.split("\n")[0].removeprefix("event: "), json.loads(frame.split("data: ", 1)[1])) for frame in frames]


async def test_a_crash_midway_ends_the_stream_with_an_internal_error_event(
    client: httpx.AsyncClient, backend: FakeBackend
) -> None:
    model = backend.use_cases.chat.model
    assert isinstance(model, ScriptedChatModel)
    model.replies = [RuntimeError("a bug in the model adapter")]

    response = await client.post("/api/me/chat", json={"message": "What is due today?"}, headers=STREAM)

    assert response.status_code == 200
    [(name, data)] = events(response.text)
    assert name == "error"
    assert data["code"] == "internal_error"
    assert "a bug" not in str(data["detail"])


async def test_a_client_gone_mid_stream_leaves_what_the_turn_did_stored(backend: FakeBackend) -> None:
    tools = HangingTools(hang_at=2)
    model = ScriptedChatModel(
        [ModelReply(None, (ToolCall("c1", "echo", "{}"),)), ModelReply(None, (ToolCall("c2", "echo", "{}"),))]
    )
    chat = ChatTurn(backend.uow, backend.clock, model, tools)
    app = create_http_app(dataclasses.replace(backend.use_cases, chat=chat), HttpOptions(cursor_key="k" * 40))
    body = json.dumps({"message": "echo twice"}).encode()
    requested = False

    async def receive() -> dict[str, object]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": body, "more_body": False}
        await tools.hanging.wait()  # the tab is closed while the second call runs
        return {"type": "http.disconnect"}

    async def send(message: object) -> None:
        pass

    headers = [(b"host", b"test"), (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)),
               (b"authorization", f"Bearer {ADA_TOKEN}".encode()), (b"accept", b"text/event-stream")]  # fmt: skip
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/me/chat", "raw_path": b"/api/me/chat", "query_string": b"", "root_path": "",
             "headers": headers, "client": ("203.0.113.7", 50_000), "server": ("test", 80)}  # fmt: skip

    await asyncio.wait_for(app(scope, receive, send), 5)
    for _ in range(100):  # the record is written in a task of its own, which may finish after the response
        if backend.store.chat.messages:
            break
        await asyncio.sleep(0.01)

    stored = [m for _, m in sorted(backend.store.chat.messages.values(), key=lambda e: e[1].id)]
    assert [(m.role, m.tool_call_id, m.is_error) for m in stored] == [
        ("user", None, False),
        ("assistant", None, False),
        ("tool", "c1", False),
        ("assistant", None, False),
        ("tool", "c2", True),
        ("assistant", None, False),
    ]
    [conversation] = backend.store.chat.conversations.values()
    assert conversation.user_id == ADA


async def test_conversations_and_their_messages_page_by_cursor_and_link(
    client: httpx.AsyncClient, backend: FakeBackend
) -> None:
    for n in range(3):
        await (await backend.use_cases.chat.start(ADA, None, f"hello {n}")).finish()
    auth = bearer(ADA_TOKEN)

    first = await client.get("/api/me/conversations", params={"limit": 2}, headers=auth)
    cursor = first.json()["meta"]["next_cursor"]
    assert [c["title"] for c in first.json()["data"]] == ["hello 2", "hello 1"]
    assert first.headers["link"] == f'</api/me/conversations?limit=2&cursor={cursor}>; rel="next"'
    rest = await client.get("/api/me/conversations", params={"limit": 2, "cursor": cursor}, headers=auth)
    assert [c["title"] for c in rest.json()["data"]] == ["hello 0"]
    assert rest.json()["meta"]["next_cursor"] is None
    assert "link" not in rest.headers

    conversation = rest.json()["data"][0]["id"]
    url = f"/api/me/conversations/{conversation}/messages"
    messages = await client.get(url, params={"limit": 1}, headers=auth)
    after = messages.json()["meta"]["next_cursor"]
    assert [m["content"] for m in messages.json()["data"]] == ["hello 0"]
    second = await client.get(url, params={"limit": 1, "cursor": after}, headers=auth)
    assert [m["role"] for m in second.json()["data"]] == ["assistant"]
    foreign = await client.get(url, params={"cursor": cursor}, headers=auth)  # a conversations cursor
    assert foreign.status_code == 400
    assert foreign.json()["code"] == "invalid_cursor"
