"""The MCP tools as the chat loop calls them (`McpAgentTools`), over the real use cases on fakes:
what the model reads back and what the turn stores when a tool crashes or a person has many lists."""

from __future__ import annotations

import dataclasses
import json

from tests.unit.chat_fakes import ScriptedChatModel
from tests.unit.http.backend import FakeBackend
from todo_api.adapters.mcp.agent_tools import McpAgentTools, refuse_outside_chat
from todo_api.adapters.mcp.tools import build_mcp_server
from todo_api.domain.chat import ModelReply, ToolCall
from todo_api.domain.tasks import TaskDraft
from todo_api.use_cases.chat import ChatTurn
from todo_api.use_cases.registry import UseCases

ADA = "ada"


class CrashingCreate:
    """A use case that fails as a bug or an untranslated driver error would."""

    async def execute(self, user_id: str, draft: TaskDraft) -> object:
        raise RuntimeError("connection reset in a place nobody translated")


def agent_tools(use_cases: UseCases) -> McpAgentTools:
    tools = McpAgentTools()
    tools.bind(build_mcp_server(use_cases, refuse_outside_chat))
    return tools


async def test_a_crashing_tool_is_an_internal_error_the_turn_records() -> None:
    backend = FakeBackend()
    crashing = dataclasses.replace(backend.use_cases, create_task=CrashingCreate())  # type: ignore[arg-type]
    add = ToolCall("call_1", "add_task", json.dumps({"user_id": "me", "title": "Buy milk"}))
    model = ScriptedChatModel([ModelReply(None, (add,))], final="Sorry, that failed.")
    chat = ChatTurn(backend.uow, backend.clock, model, agent_tools(crashing))

    result = await (await chat.start(ADA, None, "add buy milk")).finish()

    assert result.response == "Sorry, that failed."
    [made] = result.tool_calls
    assert made.is_error
    assert json.loads(made.result)["code"] == "internal_error"
    assert "connection reset" not in made.result  # nothing from the crash reaches the model
    stored = [m for _, m in sorted(backend.store.chat.messages.values(), key=lambda e: e[1].id)]
    assert [(m.role, m.is_error) for m in stored] == [
        ("user", False),
        ("assistant", False),
        ("tool", True),
        ("assistant", False),
    ]


async def test_list_lists_answers_every_list_a_person_has() -> None:
    backend = FakeBackend()
    for n in range(150):
        await backend.use_cases.create_list.execute(ADA, f"List {n:03}")

    outcome = await agent_tools(backend.use_cases).call(ADA, "list_lists", '{"user_id": "me"}')

    assert not outcome.is_error
    lists = json.loads(outcome.content)
    assert len(lists) == 151  # the Inbox and the 150
    assert lists[0]["is_inbox"]
    assert lists[-1]["name"] == "List 149"
