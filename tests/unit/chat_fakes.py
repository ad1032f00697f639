"""Conversations in memory, held to what the SQL repository does (owner-filtered, id-ordered pages)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from todo_api.domain.chat import ChatMessage, Conversation, ModelReply, ToolDefinition, ToolOutcome


@dataclass
class ChatTables:
    conversations: dict[int, Conversation] = field(default_factory=dict)
    messages: dict[int, tuple[int, ChatMessage]] = field(default_factory=dict)  # id -> (conversation, message)
    last_conversation_id: int = 0
    last_message_id: int = 0


class HasChat(Protocol):
    chat: ChatTables


class FakeConversationRepository:
    def __init__(self, store: HasChat) -> None:
        self._store = store

    @property
    def _t(self) -> ChatTables:
        return self._store.chat

    async def add(self, user_id: str, title: str, at: datetime) -> Conversation:
        self._t.last_conversation_id += 1
        conversation = Conversation(self._t.last_conversation_id, user_id, title, at, at)
        self._t.conversations[conversation.id] = conversation
        return conversation

    async def get(self, user_id: str, conversation_id: int, *, for_update: bool = False) -> Conversation | None:
        found = self._t.conversations.get(conversation_id)
        return found if found is not None and found.user_id == user_id else None

    async def page(self, user_id: str, limit: int, before: int | None) -> list[Conversation]:
        mine = [c for c in self._t.conversations.values() if c.user_id == user_id and (before is None or c.id < before)]
        return sorted(mine, key=lambda c: -c.id)[: limit + 1]

    async def delete(self, user_id: str, conversation_id: int) -> bool:
        if await self.get(user_id, conversation_id) is None:
            return False
        del self._t.conversations[conversation_id]
        for message_id, (owner, _) in list(self._t.messages.items()):
            if owner == conversation_id:
                del self._t.messages[message_id]
        return True

    async def append(self, user_id: str, conversation_id: int, messages: Sequence[ChatMessage], at: datetime) -> None:
        for message in messages:
            self._t.last_message_id += 1
            stored = replace(message, id=self._t.last_message_id, created_at=at)
            self._t.messages[stored.id] = (conversation_id, stored)
        self._t.conversations[conversation_id] = replace(self._t.conversations[conversation_id], updated_at=at)

    def _of(self, user_id: str, conversation_id: int) -> list[ChatMessage]:
        if _owned(self._t, user_id, conversation_id) is None:
            return []
        return [m for owner, m in sorted(self._t.messages.values(), key=lambda e: e[1].id) if owner == conversation_id]

    async def messages(self, user_id: str, conversation_id: int, limit: int, after: int | None) -> list[ChatMessage]:
        return [m for m in self._of(user_id, conversation_id) if after is None or m.id > after][: limit + 1]

    async def recent(self, user_id: str, conversation_id: int, limit: int) -> list[ChatMessage]:
        return self._of(user_id, conversation_id)[-limit:]


def _owned(tables: ChatTables, user_id: str, conversation_id: int) -> Conversation | None:
    found = tables.conversations.get(conversation_id)
    return found if found is not None and found.user_id == user_id else None


class ScriptedChatModel:
    """Answers with `replies` in order, then with `final` for ever; records what it was sent."""

    def __init__(self, replies: Sequence[ModelReply | Exception] = (), final: str = "Done.") -> None:
        self.replies = list(replies)
        self.final = final
        self.prompts: list[list[ChatMessage]] = []

    async def complete(self, messages: Sequence[ChatMessage], tools: Sequence[ToolDefinition]) -> ModelReply:
        self.prompts.append(list(messages))
        if not self.replies:
            return ModelReply(self.final)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


class FakeAgentTools:
    """One tool, `echo`, answering its arguments; anything else is `unknown_tool`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    async def definitions(self) -> Sequence[ToolDefinition]:
        return [ToolDefinition("echo", "Answers its arguments.", {"type": "object"})]

    async def call(self, user_id: str, name: str, arguments: str) -> ToolOutcome:
        self.calls.append((user_id, name, arguments))
        if name != "echo":
            return ToolOutcome('{"code": "unknown_tool"}', is_error=True)
        return ToolOutcome(arguments)


class HangingTools(FakeAgentTools):
    """`echo`, except that the call numbered `hang_at` (from 1) never returns."""

    def __init__(self, hang_at: int) -> None:
        super().__init__()
        self.hang_at = hang_at
        self.hanging = asyncio.Event()

    async def call(self, user_id: str, name: str, arguments: str) -> ToolOutcome:
        outcome = await super().call(user_id, name, arguments)
        if len(self.calls) == self.hang_at:
            self.hanging.set()
            await asyncio.Event().wait()
        return outcome
