"""/api/{user_id}/chat and /api/{user_id}/conversations: talk to the assistant, which manages your
tasks through the MCP tools (docs/api.md#chat). 503 `chat_not_configured` when no model is set."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any

import orjson
import structlog
from fastapi import APIRouter, Path, Query, Request, Response, status
from starlette.responses import StreamingResponse

from todo_api.adapters.http.chat_schemas import (
    ChatRequest,
    ChatResponse,
    ConversationPageOut,
    MessagePageOut,
    ToolCallOut,
)
from todo_api.adapters.http.deps import TaskOwner
from todo_api.adapters.http.event_stream import HEADERS, MEDIA_TYPE
from todo_api.adapters.http.paging import Cursor, RowPaging
from todo_api.adapters.http.problems import problem_responses
from todo_api.adapters.http.schemas import MAX_ID
from todo_api.domain.chat import MAX_CONVERSATIONS_PAGE, MAX_MESSAGES_PAGE
from todo_api.domain.errors import DomainError
from todo_api.use_cases.chat import ToolCalled, Turn, TurnEnded

ConversationId = Annotated[int, Path(ge=1, le=MAX_ID)]
_CONVERSATIONS, _MESSAGES = "conversations", "messages"
log = structlog.get_logger("todo_api.chat")

router = APIRouter(prefix="/api/{user_id}", tags=["chat"])

_STREAM_DOC = {
    "description": "The turn's answer. With `Accept: text/event-stream`, a stream instead: `event: tool_call` "
    "per call as it completes (data: a tool call), then `event: done` (data: the same body as the JSON "
    "answer); `event: error` (data: `{code, detail}`) if the turn fails after the stream began.",
    "content": {MEDIA_TYPE: {"schema": {"type": "string"}}},
}


@router.post(
    "/chat",
    operation_id="chat",
    response_model=ChatResponse,
    summary="Send the assistant a message; it may call tools on your tasks",
    description="Starts a conversation, or continues `conversation_id`. The turn is capped in model calls and "
    "time: a capped turn answers 200 with `stopped` set and a response that says so. The conversation "
    "(your message, the tool calls with their results, the answer) is stored when the turn ends. "
    "503 `chat_not_configured` when the server has no model; 503 `chat_model_unavailable` when the model "
    "failed before any tool ran (nothing was stored or changed).",
    responses={**problem_responses(401, 403, 404, 422, 503), 200: _STREAM_DOC},
)
async def chat(body: ChatRequest, caller: TaskOwner, request: Request) -> Any:
    turn = await caller.use_cases.chat.start(caller.user_id, body.conversation_id, body.message)
    if MEDIA_TYPE in request.headers.get("accept", ""):
        return StreamingResponse(_frames(turn), media_type=MEDIA_TYPE, headers=HEADERS)
    return ChatResponse.of(await turn.finish())


async def _frames(turn: Turn) -> AsyncIterator[bytes]:
    try:
        async with aclosing(turn.events()) as events:  # closed with the stream: the turn stores what it did
            async for event in events:
                if isinstance(event, ToolCalled):
                    yield b"event: tool_call\ndata: %s\n\n" % ToolCallOut.of(event.call).model_dump_json().encode()
                elif isinstance(event, TurnEnded):
                    yield b"event: done\ndata: %s\n\n" % ChatResponse.of(event.result).model_dump_json().encode()
    except DomainError as error:  # the status is sent already: the error travels as an event
        yield _error_frame(error.code, error.message)
    except Exception:  # a crash too: a client waiting for `done` must learn the turn failed
        log.exception("chat_stream_failed")
        yield _error_frame("internal_error", "An unexpected error occurred; quote the request id when reporting it.")


def _error_frame(code: str, detail: str) -> bytes:
    return b"event: error\ndata: %s\n\n" % orjson.dumps({"code": code, "detail": detail})


@router.get(
    "/conversations",
    operation_id="listConversations",
    summary="Your conversations with the assistant, newest first",
    responses=problem_responses(400, 401, 403, 422),
)
async def list_conversations(
    caller: TaskOwner,
    request: Request,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=MAX_CONVERSATIONS_PAGE)] = 20,
    cursor: Cursor = None,
) -> ConversationPageOut:
    paging = RowPaging(caller.services.cursors, _CONVERSATIONS, request, response)
    page = await caller.use_cases.list_conversations.execute(caller.user_id, limit, paging.position(cursor))
    return ConversationPageOut.of(page.conversations, next_cursor=paging.next_cursor(page.next_before), limit=limit)


@router.get(
    "/conversations/{conversation_id}/messages",
    operation_id="listConversationMessages",
    summary="A conversation's messages, oldest first",
    description="Your messages, the assistant's (with the tool calls it made) and each tool's result.",
    responses=problem_responses(400, 401, 403, 404, 422),
)
async def list_messages(
    conversation_id: ConversationId,
    caller: TaskOwner,
    request: Request,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=MAX_MESSAGES_PAGE)] = 50,
    cursor: Cursor = None,
) -> MessagePageOut:
    paging = RowPaging(caller.services.cursors, _MESSAGES, request, response)
    page = await caller.use_cases.list_messages.execute(caller.user_id, conversation_id, limit, paging.position(cursor))
    return MessagePageOut.of(page.messages, next_cursor=paging.next_cursor(page.next_after), limit=limit)


@router.delete(
    "/conversations/{conversation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="deleteConversation",
    summary="Delete a conversation and its messages (what its tool calls did to your tasks stays)",
    responses=problem_responses(401, 403, 404, 422),
)
async def delete_conversation(conversation_id: ConversationId, caller: TaskOwner) -> Response:
    await caller.use_cases.delete_conversation.execute(caller.user_id, conversation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
