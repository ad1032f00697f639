"""The chat turn over fakes: what is stored when a turn ends, is capped, or fails, and what the model sees."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import pytest

from tests.unit.chat_fakes import FakeAgentTools, HangingTools, ScriptedChatModel
from tests.unit.fakes import FakeClock, FakeUnitOfWorkFactory
from todo_api.domain.chat import ChatMessage, ModelReply, ToolCall, ToolDefinition, ToolOutcome
from todo_api.domain.errors import InvalidInput, NotFound, ServiceUnavailable
from todo_api.use_cases.chat import ChatOptions, ChatTurn, DeleteConversation, ListMessages, ToolCalled

ADA, BOB = "ada", "bob"


def echo(call_id: str, arguments: str = '{"x": 1}') -> ModelReply:
    return ModelReply(None, (ToolCall(call_id, "echo", arguments),))


def turn(model: ScriptedChatModel, uow: FakeUnitOfWorkFactory, **options: float) -> ChatTurn:
    return ChatTurn(uow, uow.clock, model, FakeAgentTools(), ChatOptions(**options))  # type: ignore[arg-type]


def stored(uow: FakeUnitOfWorkFactory) -> list[tuple[str, str | None]]:
    return [
        (message.role, message.content)
        for _, message in sorted(uow.store.chat.messages.values(), key=lambda e: e[1].id)
    ]


async def test_without_a_model_the_turn_is_refused_before_anything_happens() -> None:
    uow = FakeUnitOfWorkFactory()
    with pytest.raises(ServiceUnavailable) as refused:
        await ChatTurn(uow, uow.clock, None, None).start(ADA, None, "hello")
    assert refused.value.code == "chat_not_configured"
    assert uow.units == []


async def test_a_blank_message_is_invalid() -> None:
    uow = FakeUnitOfWorkFactory()
    with pytest.raises(InvalidInput):
        await turn(ScriptedChatModel(), uow).start(ADA, None, " \n ")


async def test_a_finished_turn_stores_each_call_with_its_result_and_the_answer() -> None:
    uow = FakeUnitOfWorkFactory()
    result = await (await turn(ScriptedChatModel([echo("c1")], final="Echoed."), uow).start(ADA, None, "echo")).finish()
    assert result.stopped is None
    assert result.response == "Echoed."
    assert stored(uow) == [("user", "echo"), ("assistant", None), ("tool", '{"x": 1}'), ("assistant", "Echoed.")]
    assert uow.store.chat.conversations[result.conversation_id].user_id == ADA


async def test_a_turn_that_never_ends_stops_at_the_step_cap_with_whole_pairs() -> None:
    uow = FakeUnitOfWorkFactory()
    model = ScriptedChatModel([echo(f"c{n}") for n in range(10)])
    result = await (await turn(model, uow, max_steps=2).start(ADA, None, "loop")).finish()
    assert result.stopped == "step_limit"
    assert len(result.tool_calls) == 2
    assert [role for role, _ in stored(uow)] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert "more than 2 steps" in result.response


async def test_a_slow_model_stops_at_the_time_cap() -> None:
    class Slow(ScriptedChatModel):
        async def complete(self, messages: Sequence[ChatMessage], tools: Sequence[ToolDefinition]) -> ModelReply:
            await asyncio.sleep(10)
            raise AssertionError("not reached")

    uow = FakeUnitOfWorkFactory()
    result = await (await turn(Slow(), uow, turn_timeout_s=0.01).start(ADA, None, "slow")).finish()
    assert result.stopped == "time_limit"
    assert stored(uow) == [("user", "slow"), ("assistant", result.response)]


async def test_a_model_failure_before_any_tool_stores_nothing() -> None:
    uow = FakeUnitOfWorkFactory()
    failing = ScriptedChatModel([ServiceUnavailable("down", code="chat_model_unavailable")])
    with pytest.raises(ServiceUnavailable):
        await (await turn(failing, uow).start(ADA, None, "hello")).finish()
    assert uow.store.chat.conversations == {}
    assert stored(uow) == []


async def test_history_starts_at_a_user_message_and_another_person_cannot_continue_it() -> None:
    uow = FakeUnitOfWorkFactory()
    chat = turn(ScriptedChatModel([echo("c1")], final="one"), uow, history_messages=2)
    first = await (await chat.start(ADA, None, "first")).finish()
    model = ScriptedChatModel(final="two")
    second = turn(model, uow, history_messages=2)
    await (await second.start(ADA, first.conversation_id, "second")).finish()
    seen = [(m.role, m.content) for m in model.prompts[0] if m.role != "system"]
    assert seen == [("user", "second")]  # the window (tool, answer) held no user message: dropped whole
    with pytest.raises(NotFound):
        await second.start(BOB, first.conversation_id, "mine now")
    with pytest.raises(NotFound):
        await ListMessages(uow).execute(BOB, first.conversation_id, 10)


async def test_a_stream_closed_after_a_tool_call_still_stores_what_was_done() -> None:
    uow = FakeUnitOfWorkFactory()
    model = ScriptedChatModel([echo("c1"), echo("c2")], final="never sent")
    events = (await turn(model, uow).start(ADA, None, "echo twice")).events()

    first = await anext(events)
    await events.aclose()  # the client went away after the first frame

    assert isinstance(first, ToolCalled)
    assert stored(uow)[:3] == [("user", "echo twice"), ("assistant", None), ("tool", '{"x": 1}')]
    [(role, notice)] = stored(uow)[3:]
    assert role == "assistant"
    assert "interrupted" in str(notice)
    assert "1 tool call(s) ran" in str(notice)


async def test_a_turn_cancelled_during_a_tool_call_stores_that_call_as_cut_off() -> None:
    uow = FakeUnitOfWorkFactory()
    tools = HangingTools(hang_at=2)
    model = ScriptedChatModel([ModelReply(None, (ToolCall("c1", "echo", "{}"), ToolCall("c2", "echo", "{}")))])
    chat = ChatTurn(uow, uow.clock, model, tools, ChatOptions())
    running = asyncio.create_task((await chat.start(ADA, None, "echo")).finish())
    await tools.hanging.wait()

    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running

    messages = [m for _, m in sorted(uow.store.chat.messages.values(), key=lambda e: e[1].id)]
    assert [(m.role, m.tool_call_id, m.is_error) for m in messages] == [
        ("user", None, False),
        ("assistant", None, False),
        ("tool", "c1", False),
        ("tool", "c2", True),
        ("assistant", None, False),
    ]
    assert json.loads(messages[3].content or "")["code"] == "interrupted"


async def test_a_failure_after_a_tool_ran_stores_what_was_done_and_is_raised() -> None:
    uow = FakeUnitOfWorkFactory()
    model = ScriptedChatModel([echo("c1"), RuntimeError("a bug in the model adapter")])

    with pytest.raises(RuntimeError):
        await (await turn(model, uow).start(ADA, None, "echo")).finish()

    assert [role for role, _ in stored(uow)] == ["user", "assistant", "tool", "assistant"]


async def test_a_tool_call_that_hangs_is_cut_off_at_the_time_cap_and_stored() -> None:
    uow = FakeUnitOfWorkFactory()
    tools = HangingTools(hang_at=1)
    chat = ChatTurn(uow, uow.clock, ScriptedChatModel([echo("c1")]), tools, ChatOptions(turn_timeout_s=0.05))

    result = await asyncio.wait_for((await chat.start(ADA, None, "echo")).finish(), 5)

    assert result.stopped == "time_limit"
    [cut_off] = result.tool_calls
    assert cut_off.is_error
    assert json.loads(cut_off.result)["code"] == "interrupted"
    assert [role for role, _ in stored(uow)] == ["user", "assistant", "tool", "assistant"]


class SlowTools(FakeAgentTools):
    """`echo`, each call taking `seconds` on the clock."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        super().__init__()
        self.clock, self.seconds = clock, seconds

    async def call(self, user_id: str, name: str, arguments: str) -> ToolOutcome:
        self.clock.advance(self.seconds)
        return await super().call(user_id, name, arguments)


async def test_time_spent_in_tools_counts_toward_the_cap_on_the_clock() -> None:
    uow = FakeUnitOfWorkFactory()
    model = ScriptedChatModel([ModelReply(None, (ToolCall("c1", "echo", "{}"), ToolCall("c2", "echo", "{}")))])
    chat = ChatTurn(uow, uow.clock, model, SlowTools(uow.clock, 61), ChatOptions(turn_timeout_s=60))

    result = await (await chat.start(ADA, None, "echo twice")).finish()

    assert result.stopped == "time_limit"
    assert "longer than 60 seconds" in result.response
    assert len(model.prompts) == 1  # the model is not asked again once the time is spent
    messages = [m for _, m in sorted(uow.store.chat.messages.values(), key=lambda e: e[1].id)]
    assert [(m.role, m.tool_call_id, m.is_error) for m in messages] == [
        ("user", None, False),
        ("assistant", None, False),
        ("tool", "c1", False),
        ("tool", "c2", True),
        ("assistant", None, False),
    ]
    assert json.loads(messages[3].content or "")["code"] == "not_run"


class DeletingTools(FakeAgentTools):
    """`echo`, and meanwhile the person deletes the conversation (in another tab)."""

    def __init__(self, uow: FakeUnitOfWorkFactory, conversation_id: int) -> None:
        super().__init__()
        self.uow, self.conversation_id = uow, conversation_id

    async def call(self, user_id: str, name: str, arguments: str) -> ToolOutcome:
        await DeleteConversation(self.uow).execute(user_id, self.conversation_id)
        return await super().call(user_id, name, arguments)


async def test_a_conversation_deleted_during_the_turn_gets_the_turn_in_a_new_one() -> None:
    uow = FakeUnitOfWorkFactory()
    first = await (await turn(ScriptedChatModel(final="Hi."), uow).start(ADA, None, "hello")).finish()
    tools = DeletingTools(uow, first.conversation_id)
    chat = ChatTurn(uow, uow.clock, ScriptedChatModel([echo("c1")], final="Echoed."), tools, ChatOptions())

    result = await (await chat.start(ADA, first.conversation_id, "echo")).finish()

    assert result.response == "Echoed."
    assert result.conversation_id != first.conversation_id
    assert list(uow.store.chat.conversations) == [result.conversation_id]
    page = await ListMessages(uow).execute(ADA, result.conversation_id, 10)
    assert [m.role for m in page.messages] == ["user", "assistant", "tool", "assistant"]
