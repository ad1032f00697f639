"""Conversations with the assistant: their messages, the model's replies and the tools it calls."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from todo_api.domain.errors import InvalidInput

MAX_MESSAGE_CHARS: Final = 4000
MAX_TITLE_CHARS: Final = 80
MAX_CONVERSATIONS_PAGE: Final = 100
MAX_MESSAGES_PAGE: Final = 200

Role = Literal["system", "user", "assistant", "tool"]  # `system` is never stored
StopReason = Literal["step_limit", "time_limit", "model_error"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """What the model asked for; `arguments` is the JSON text it sent, valid or not."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    name: str
    description: str
    parameters: Mapping[str, Any]
    """The input's JSON Schema."""


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    content: str
    """What the model reads: the tool's JSON result, or its error with the REST API's `code`."""
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class ModelReply:
    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message as stored: a user's, the assistant's (text and/or tool calls), or a tool's result."""

    role: Role
    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    is_error: bool = False
    id: int = 0
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Conversation:
    id: int
    user_id: str
    title: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """A call made during a turn, as the turn's answer reports it."""

    name: str
    arguments: str
    result: str
    is_error: bool


@dataclass(frozen=True, slots=True)
class TurnResult:
    conversation_id: int
    response: str
    tool_calls: tuple[ToolCallRecord, ...] = field(default=())
    stopped: StopReason | None = None
    """Why the turn ended before the model gave its answer; None when it did."""


def normalise_message(raw: str) -> str:
    message = raw.strip()
    if not message:
        raise InvalidInput("A message may not be blank.", code="invalid_message", field="message")
    if len(message) > MAX_MESSAGE_CHARS:
        raise InvalidInput(
            f"A message has at most {MAX_MESSAGE_CHARS} characters.", code="invalid_message", field="message"
        )
    return message


def title_of(message: str) -> str:
    """A new conversation is named after its first message."""
    line = " ".join(message.split())
    return line if len(line) <= MAX_TITLE_CHARS else line[: MAX_TITLE_CHARS - 1] + "…"
