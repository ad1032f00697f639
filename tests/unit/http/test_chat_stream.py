"""The chat turn streamed as server-sent events: once the 200 is sent, a failure is an `event: error`."""

from __future__ import annotations

import json

import httpx

from tests.unit.chat_fakes import ScriptedChatModel
from tests.unit.http.backend import FakeBackend
from tests.unit.http.conftest import ADA_TOKEN, bearer

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
