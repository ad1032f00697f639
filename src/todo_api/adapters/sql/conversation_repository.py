"""Conversations with the assistant and their messages: Core statements and rows mapped by hand."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, bindparam, delete, func, insert, select, update

from todo_api.adapters.sql.engine import Connection, Row, Statement
from todo_api.adapters.sql.tables import conversations, messages
from todo_api.domain.chat import ChatMessage, Conversation, ToolCall

_owner = conversations.c.user_id == bindparam("owner")
_this = conversations.c.id == bindparam("conversation_id", type_=BigInteger)
_of_conversation = (messages.c.user_id == bindparam("owner")) & (
    messages.c.conversation_id == bindparam("conversation_id", type_=BigInteger)
)

_ADD = Statement(
    insert(conversations)
    .values(
        user_id=bindparam("owner"),
        title=bindparam("title"),
        created_at=bindparam("at"),
        updated_at=bindparam("at"),
    )
    .returning(*conversations.c)
)
_GET = Statement(select(*conversations.c).where(_owner, _this))
_GET_LOCKED = Statement(select(*conversations.c).where(_owner, _this).with_for_update())
_PAGE = Statement(
    select(*conversations.c)
    .where(_owner, conversations.c.id < func.coalesce(bindparam("before", type_=BigInteger), 2**63 - 1))
    .order_by(conversations.c.id.desc())
    .limit(bindparam("limit"))
)
_DELETE = Statement(delete(conversations).where(_owner, _this).returning(conversations.c.id))
_TOUCH = Statement(update(conversations).where(_owner, _this).values(updated_at=bindparam("at")))
_APPEND = Statement(
    insert(messages).values(
        conversation_id=bindparam("conversation_id", type_=BigInteger),
        user_id=bindparam("owner"),
        role=bindparam("role"),
        content=bindparam("content"),
        tool_calls=bindparam("tool_calls", type_=messages.c.tool_calls.type),
        tool_call_id=bindparam("tool_call_id"),
        is_error=bindparam("is_error"),
        created_at=bindparam("at"),
    )
)
_MESSAGES = Statement(
    select(*messages.c)
    .where(_of_conversation, messages.c.id > func.coalesce(bindparam("after", type_=BigInteger), 0))
    .order_by(messages.c.id)
    .limit(bindparam("limit"))
)
_RECENT = Statement(
    select(*messages.c).where(_of_conversation).order_by(messages.c.id.desc()).limit(bindparam("limit"))
)


def _conversation_of(row: Row) -> Conversation:
    return Conversation(
        id=row["id"],
        user_id=row["user_id"],
        title=row["title"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _message_of(row: Row) -> ChatMessage:
    calls = row["tool_calls"] or []
    return ChatMessage(
        role=row["role"],
        content=row["content"],
        tool_calls=tuple(ToolCall(call["id"], call["name"], call["arguments"]) for call in calls),
        tool_call_id=row["tool_call_id"],
        is_error=row["is_error"],
        id=row["id"],
        created_at=row["created_at"],
    )


class SqlConversationRepository:
    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def add(self, user_id: str, title: str, at: datetime) -> Conversation:
        return _conversation_of((await _ADD.fetch(self._db, owner=user_id, title=title, at=at))[0])

    async def get(self, user_id: str, conversation_id: int, *, for_update: bool = False) -> Conversation | None:
        statement = _GET_LOCKED if for_update else _GET
        row = await statement.fetchrow(self._db, owner=user_id, conversation_id=conversation_id)
        return None if row is None else _conversation_of(row)

    async def page(self, user_id: str, limit: int, before: int | None) -> list[Conversation]:
        rows = await _PAGE.fetch(self._db, owner=user_id, before=before, limit=limit + 1)
        return [_conversation_of(row) for row in rows]

    async def delete(self, user_id: str, conversation_id: int) -> bool:
        return await _DELETE.fetchval(self._db, owner=user_id, conversation_id=conversation_id) is not None

    async def append(self, user_id: str, conversation_id: int, written: Sequence[ChatMessage], at: datetime) -> None:
        for message in written:  # a turn writes a handful of rows
            values: dict[str, Any] = {
                "owner": user_id,
                "conversation_id": conversation_id,
                "role": message.role,
                "content": message.content,
                "tool_calls": [
                    {"id": call.id, "name": call.name, "arguments": call.arguments} for call in message.tool_calls
                ]
                or None,
                "tool_call_id": message.tool_call_id,
                "is_error": message.is_error,
                "at": at,
            }
            await _APPEND.execute(self._db, **values)
        await _TOUCH.execute(self._db, owner=user_id, conversation_id=conversation_id, at=at)

    async def messages(self, user_id: str, conversation_id: int, limit: int, after: int | None) -> list[ChatMessage]:
        values = {"owner": user_id, "conversation_id": conversation_id, "after": after, "limit": limit + 1}
        rows = await _MESSAGES.fetch(self._db, **values)
        return [_message_of(row) for row in rows]

    async def recent(self, user_id: str, conversation_id: int, limit: int) -> list[ChatMessage]:
        rows = await _RECENT.fetch(self._db, owner=user_id, conversation_id=conversation_id, limit=limit)
        return [_message_of(row) for row in reversed(rows)]
