"""Chat: one turn of a conversation with the assistant, and the conversations themselves.

A turn sends the conversation so far and the person's message to the model, offering the MCP tools;
each tool call the model makes runs through the same use cases as REST and MCP (its writes commit
as they happen, and land in the change feed like any other). The loop is capped in model calls
(`max_steps`) and in time (`turn_timeout_s`, on the `Clock`, over model and tool calls alike: a
call it cuts off is answered `interrupted`). Nothing about the turn is stored until it ends, then
all of it in one transaction: the person's message, each assistant message with its tool calls
followed by their results, and the final answer. A capped turn (step or time limit, or a model that
failed after tools had already run) stores the same, its completed call/result pairs and a final
assistant message saying it stopped, so the stored history is always one the model can continue
from and says what was done; a conversation deleted meanwhile is not a 404 for a turn that may have
changed things, the turn goes into a new conversation. A turn abandoned midway after a tool ran
(the streaming client went away, or a crash) is stored too, in a task of its own that the request's
cancellation does not reach: a call it cut off is marked so, and a final message says it was
interrupted. A model failure before any tool ran stores nothing and answers 503. No conversation is
held in memory: any replica continues any conversation.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Coroutine, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from todo_api.domain.chat import (
    ChatMessage,
    Conversation,
    StopReason,
    ToolCallRecord,
    ToolOutcome,
    TurnResult,
    normalise_message,
    title_of,
)
from todo_api.domain.errors import NotFound, ServiceUnavailable
from todo_api.domain.ports import AgentTools, ChatModel, Clock, UnitOfWorkFactory


@dataclass(frozen=True, slots=True)
class ChatOptions:
    max_steps: int = 8
    """Model calls per turn."""
    turn_timeout_s: float = 60.0
    history_messages: int = 40
    """How much of the conversation the model sees."""


SYSTEM_PROMPT = (
    "You are the assistant of a to-do app. You manage the person's tasks only through the tools; "
    "always pass `me` as `user_id`. Find a task's id with list_tasks before changing it; never guess "
    "one. When a tool answers with an error, read its `code` and message and correct the call, or "
    "tell the person what went wrong. Answer briefly. Today is {today} (UTC)."
)
_STOPPED = {
    "step_limit": "I stopped before finishing: this needed more than {steps} steps. {done}",
    "time_limit": "I stopped before finishing: this took longer than {seconds:g} seconds. {done}",
    "model_error": "I stopped before finishing: the assistant's model failed midway. {done}",
}
_INTERRUPTED = "I stopped before finishing: the turn was interrupted (the connection closed, or a failure). {done}"
_CUT_OFF = json.dumps(
    {"code": "interrupted", "message": "The turn ended while this call ran; it may or may not have taken effect."}
)
_NOT_RUN = json.dumps({"code": "not_run", "message": "The turn ended before this call ran."})


def _not_found(conversation_id: int) -> NotFound:
    return NotFound(f"Conversation {conversation_id} was not found.", code="conversation_not_found")


@dataclass(frozen=True, slots=True)
class ToolCalled:
    call: ToolCallRecord


@dataclass(frozen=True, slots=True)
class TurnEnded:
    result: TurnResult


TurnEvent = ToolCalled | TurnEnded


class Turn:
    """A turn that passed its checks; `events()` runs it (once), `finish()` runs it to the end."""

    def __init__(
        self,
        chat: ChatTurn,
        user_id: str,
        conversation: Conversation | None,
        history: Sequence[ChatMessage],
        message: str,
    ) -> None:
        self._chat, self._user_id, self._conversation = chat, user_id, conversation
        self._history, self._message = history, message

    async def finish(self) -> TurnResult:
        async with aclosing(self.events()) as events:
            async for event in events:
                if isinstance(event, TurnEnded):
                    return event.result
        raise AssertionError("a turn always ends")  # pragma: no cover

    async def events(self) -> AsyncGenerator[TurnEvent, None]:
        chat, options = self._chat, self._chat.options
        today = chat.clock.now().date().isoformat()
        user = ChatMessage("user", self._message)
        prompt = [ChatMessage("system", SYSTEM_PROMPT.format(today=today)), *self._history, user]
        definitions = await chat.tools.definitions()
        written: list[ChatMessage] = [user]
        records: list[ToolCallRecord] = []
        answer: str | None = None
        stopped: StopReason | None = None
        deadline = chat.clock.now() + timedelta(seconds=options.turn_timeout_s)
        running: str | None = None
        ended = False
        try:
            for _ in range(options.max_steps):
                remaining = (deadline - chat.clock.now()).total_seconds()
                try:
                    if remaining <= 0:
                        raise TimeoutError
                    async with asyncio.timeout(remaining):
                        reply = await chat.model.complete([*prompt, *written[1:]], definitions)
                except TimeoutError:
                    stopped = "time_limit"
                    break
                except ServiceUnavailable:
                    if not records:
                        raise  # nothing happened yet: nothing to store, the caller may retry
                    stopped = "model_error"
                    break
                if not reply.tool_calls:
                    answer = (reply.content or "").strip() or "Done."
                    break
                written.append(ChatMessage("assistant", reply.content, tool_calls=reply.tool_calls))
                for call in reply.tool_calls:
                    remaining = (deadline - chat.clock.now()).total_seconds()
                    if remaining <= 0:
                        stopped = "time_limit"  # this call and the rest are answered `not_run` below
                        break
                    running = call.id
                    try:
                        async with asyncio.timeout(remaining):  # a tool may wait on row locks
                            outcome = await chat.tools.call(self._user_id, call.name, call.arguments)
                    except TimeoutError:
                        outcome, stopped = ToolOutcome(_CUT_OFF, is_error=True), "time_limit"
                    running = None
                    written.append(
                        ChatMessage("tool", outcome.content, tool_call_id=call.id, is_error=outcome.is_error)
                    )
                    record = ToolCallRecord(call.name, call.arguments, outcome.content, outcome.is_error)
                    records.append(record)
                    yield ToolCalled(record)
                    if stopped:
                        break
                if stopped:
                    written.extend(_unanswered(written, running))
                    break
            else:
                stopped = "step_limit"
            if answer is None:
                answer = _STOPPED[stopped or "step_limit"].format(
                    steps=options.max_steps, seconds=options.turn_timeout_s, done=_done(records)
                )
            written.append(ChatMessage("assistant", answer))
            ended = True
            conversation_id = await _outliving_the_caller(
                chat.store(self._user_id, self._conversation, self._message, written)
            )
            yield TurnEnded(TurnResult(conversation_id, answer, tuple(records), stopped))
        finally:
            if not ended and len(written) > 1:  # abandoned after a tool call began: its writes may have committed
                written.extend(_unanswered(written, running))
                written.append(ChatMessage("assistant", _INTERRUPTED.format(done=_done(records))))
                await _outliving_the_caller(chat.store(self._user_id, self._conversation, self._message, written))


_storing: set[asyncio.Task[int]] = set()


async def _outliving_the_caller(store: Coroutine[Any, Any, int]) -> int:
    """Runs `store` in a task of its own: a cancelled request (a client gone mid-stream) stops
    waiting for it but does not stop it. The set holds the task until it is done (the loop does not)."""
    task = asyncio.ensure_future(store)
    _storing.add(task)
    task.add_done_callback(_storing.discard)
    return await asyncio.shield(task)


def _done(records: Sequence[ToolCallRecord]) -> str:
    return f"{len(records)} tool call(s) ran; their results are listed." if records else "Nothing was changed."


def _unanswered(written: Sequence[ChatMessage], running: str | None) -> list[ChatMessage]:
    """A result for each call of the last assistant message that has none, so the stored history
    stays one a chat-completions endpoint accepts (every call answered)."""
    answered = {message.tool_call_id for message in written if message.role == "tool"}
    calls = next((m.tool_calls for m in reversed(written) if m.role == "assistant"), ())
    return [
        ChatMessage("tool", _CUT_OFF if call.id == running else _NOT_RUN, tool_call_id=call.id, is_error=True)
        for call in calls
        if call.id not in answered
    ]


class ChatTurn:
    """`POST /api/{user_id}/chat`. `start()` checks everything that can fail before the model is
    called (configuration, the message, the conversation), so a streamed answer never begins
    with an error that a plain one would have given as a status."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        model: ChatModel | None,
        tools: AgentTools | None,
        options: ChatOptions | None = None,
    ) -> None:
        self._uow, self.clock, self._model, self._tools = uow, clock, model, tools
        self.options = options or ChatOptions()

    @property
    def model(self) -> ChatModel:
        if self._model is None:
            raise ServiceUnavailable("No chat model is configured on this server.", code="chat_not_configured")
        return self._model

    @property
    def tools(self) -> AgentTools:
        if self._tools is None:
            raise ServiceUnavailable("No chat model is configured on this server.", code="chat_not_configured")
        return self._tools

    async def start(self, user_id: str, conversation_id: int | None, message: str) -> Turn:
        _ = self.model, self.tools
        text = normalise_message(message)
        if conversation_id is None:
            return Turn(self, user_id, None, (), text)
        async with self._uow(read_only=True) as uow:
            conversation = await uow.conversations.get(user_id, conversation_id)
            if conversation is None:
                raise _not_found(conversation_id)
            history = await uow.conversations.recent(user_id, conversation_id, self.options.history_messages)
        return Turn(self, user_id, conversation, _from_a_user_message(history), text)

    async def store(
        self, user_id: str, conversation: Conversation | None, message: str, written: Sequence[ChatMessage]
    ) -> int:
        now = self.clock.now()
        async with self._uow() as uow:
            if conversation is None:
                conversation = await uow.conversations.add(user_id, title_of(message), now)
            elif await uow.conversations.get(user_id, conversation.id, for_update=True) is None:
                # Deleted during the turn, whose tools may have changed things: recorded in a new one.
                conversation = await uow.conversations.add(user_id, title_of(message), now)
            await uow.conversations.append(user_id, conversation.id, written, now)
            await uow.commit()
        return conversation.id


def _from_a_user_message(history: Sequence[ChatMessage]) -> list[ChatMessage]:
    """The window of history starts at a user message: a tool result without the call it answers
    (cut off by the window) is refused by chat-completions endpoints."""
    messages = list(history)
    while messages and messages[0].role != "user":
        messages.pop(0)
    return messages


@dataclass(frozen=True, slots=True)
class ConversationPage:
    conversations: list[Conversation]
    next_before: int | None


@dataclass(frozen=True, slots=True)
class MessagePage:
    messages: list[ChatMessage]
    next_after: int | None


class ListConversations:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def execute(self, user_id: str, limit: int, before: int | None = None) -> ConversationPage:
        async with self._uow(read_only=True) as uow:
            rows = list(await uow.conversations.page(user_id, limit, before))
        page, more = rows[:limit], len(rows) > limit
        return ConversationPage(page, page[-1].id if more else None)


class ListMessages:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def execute(self, user_id: str, conversation_id: int, limit: int, after: int | None = None) -> MessagePage:
        async with self._uow(read_only=True) as uow:
            if await uow.conversations.get(user_id, conversation_id) is None:
                raise _not_found(conversation_id)
            rows = list(await uow.conversations.messages(user_id, conversation_id, limit, after))
        page, more = rows[:limit], len(rows) > limit
        return MessagePage(page, page[-1].id if more else None)


class DeleteConversation:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def execute(self, user_id: str, conversation_id: int) -> None:
        async with self._uow() as uow:
            if not await uow.conversations.delete(user_id, conversation_id):
                raise _not_found(conversation_id)
            await uow.commit()
