"""The chat routes' shapes: a turn's request and answer, conversations and their messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field
from pydantic.json_schema import SkipJsonSchema

from todo_api.adapters.http.schemas import Id, NotNull, Output, StrictInput
from todo_api.domain.chat import MAX_MESSAGE_CHARS, ChatMessage, Conversation, ToolCallRecord, TurnResult


def _whole(value: object) -> object:
    """`3.0` is the integer 3 in JSON (and JSON Schema); strict validation would refuse it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


ConversationId = Annotated[Id, BeforeValidator(_whole)]
_SOME_TEXT = r"^[^\x00]*[^\s\x00][^\x00]*$"  # not blank, no NUL (PostgreSQL stores none in text)


class ChatRequest(StrictInput):
    conversation_id: Annotated[ConversationId | SkipJsonSchema[None], NotNull] = Field(
        default=None, description="Continue this conversation; leave out to start one."
    )
    message: str = Field(
        max_length=MAX_MESSAGE_CHARS, pattern=_SOME_TEXT, examples=["Add buy milk for tomorrow morning"]
    )


class ToolCallOut(Output):
    name: str = Field(examples=["add_task"])
    arguments: str = Field(description="The JSON arguments the model sent, as it sent them.")
    result: str = Field(description="What the tool answered (JSON), or its error with a `code`.")
    is_error: bool

    @classmethod
    def of(cls, record: ToolCallRecord) -> ToolCallOut:
        return cls(name=record.name, arguments=record.arguments, result=record.result, is_error=record.is_error)


class ChatResponse(Output):
    conversation_id: int
    response: str = Field(examples=["Added “Buy milk”, due tomorrow at 9:00."])
    tool_calls: list[ToolCallOut]
    stopped: Literal["step_limit", "time_limit", "model_error"] | None = Field(
        description="Why the turn ended before the model's own answer (the response says so); null when it did not."
    )

    @classmethod
    def of(cls, result: TurnResult) -> ChatResponse:
        return cls(
            conversation_id=result.conversation_id,
            response=result.response,
            tool_calls=[ToolCallOut.of(record) for record in result.tool_calls],
            stopped=result.stopped,
        )


class ConversationOut(Output):
    id: int
    title: str = Field(description="Its first message, shortened.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, conversation: Conversation) -> ConversationOut:
        return cls(
            id=conversation.id,
            title=conversation.title,
            created_at=conversation.created_at,
            updated_at=conversation.updated_at,
        )


class StoredToolCallOut(Output):
    id: str
    name: str
    arguments: str


class MessageOut(Output):
    id: int
    role: Literal["user", "assistant", "tool"]
    content: str | None
    tool_calls: list[StoredToolCallOut] = Field(description="An assistant message's calls (empty otherwise).")
    tool_call_id: str | None = Field(description="A tool message: the call it answers.")
    is_error: bool = Field(description="A tool message: the call failed.")
    created_at: datetime

    @classmethod
    def of(cls, message: ChatMessage) -> MessageOut:
        return cls.model_validate(
            {
                "id": message.id,
                "role": message.role,
                "content": message.content,
                "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls],
                "tool_call_id": message.tool_call_id,
                "is_error": message.is_error,
                "created_at": message.created_at,
            }
        )


class PageMeta(Output):
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    limit: int


class ConversationPageOut(Output):
    data: list[ConversationOut]
    meta: PageMeta

    @classmethod
    def of(cls, found: Sequence[Conversation], *, next_cursor: str | None, limit: int) -> ConversationPageOut:
        return cls(data=[ConversationOut.of(c) for c in found], meta=PageMeta(next_cursor=next_cursor, limit=limit))


class MessagePageOut(Output):
    data: list[MessageOut]
    meta: PageMeta

    @classmethod
    def of(cls, found: Sequence[ChatMessage], *, next_cursor: str | None, limit: int) -> MessagePageOut:
        return cls(data=[MessageOut.of(m) for m in found], meta=PageMeta(next_cursor=next_cursor, limit=limit))
