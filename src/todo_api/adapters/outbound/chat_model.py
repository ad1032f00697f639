"""The assistant's model: any OpenAI-compatible chat-completions endpoint with tool calling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.types.shared_params import FunctionDefinition

from todo_api.domain.chat import ChatMessage, ModelReply, ToolCall, ToolDefinition
from todo_api.domain.errors import ServiceUnavailable


class OpenAIChatModel:
    def __init__(self, *, base_url: str, model: str, api_key: str | None, timeout_s: float) -> None:
        # The turn has its own time cap; one retry covers a dropped connection, no more.
        self._client = AsyncOpenAI(base_url=base_url, api_key=api_key or "unused", timeout=timeout_s, max_retries=1)
        self._model = model

    async def complete(self, messages: Sequence[ChatMessage], tools: Sequence[ToolDefinition]) -> ModelReply:
        try:
            completion = await self._client.chat.completions.create(
                model=self._model,
                messages=[_wire(message) for message in messages],  # type: ignore[misc]
                tools=[{"type": "function", "function": _function(tool)} for tool in tools],
            )
        except openai.APIError as error:
            raise ServiceUnavailable(
                "The assistant's model could not answer; try again shortly.", code="chat_model_unavailable"
            ) from error
        if not completion.choices:
            raise ServiceUnavailable("The assistant's model gave no answer.", code="chat_model_unavailable")
        reply = completion.choices[0].message
        calls = tuple(
            ToolCall(call.id, call.function.name, call.function.arguments or "")
            for call in reply.tool_calls or ()
            if call.type == "function"
        )
        return ModelReply(reply.content, calls)

    async def close(self) -> None:
        await self._client.close()


def _function(tool: ToolDefinition) -> FunctionDefinition:
    return {"name": tool.name, "description": tool.description, "parameters": dict(tool.parameters)}


def _wire(message: ChatMessage) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content or ""}
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in message.tool_calls
        ]
    return wire
