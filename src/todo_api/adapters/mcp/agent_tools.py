"""The MCP server's tools for the chat loop, called in process: the same definitions an MCP client
lists and the same functions it calls, for the person whose turn it is."""

from __future__ import annotations

import json
from collections.abc import Sequence

import structlog
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, TextContent

from todo_api.adapters.mcp.tools import TodoMcpServer, acting_for, tool_error
from todo_api.domain.chat import ToolDefinition, ToolOutcome
from todo_api.domain.errors import AuthenticationFailed
from todo_api.domain.users import Principal

log = structlog.get_logger("todo_api.chat")


class McpAgentTools:
    """Bound to its server after the use cases exist (the server is built from them)."""

    def __init__(self) -> None:
        self._server: TodoMcpServer | None = None
        self._definitions: list[ToolDefinition] | None = None

    def bind(self, server: TodoMcpServer) -> None:
        self._server, self._definitions = server, None

    @property
    def server(self) -> TodoMcpServer:
        if self._server is None:
            raise RuntimeError("McpAgentTools used before bind()")
        return self._server

    async def definitions(self) -> Sequence[ToolDefinition]:
        if self._definitions is None:
            self._definitions = [
                ToolDefinition(tool.name, tool.description or "", tool.input_schema)
                for tool in await self.server.list_tools()
            ]
        return self._definitions

    async def call(self, user_id: str, name: str, arguments: str) -> ToolOutcome:
        try:
            parsed = json.loads(arguments or "{}")
        except json.JSONDecodeError as error:
            return _outcome(tool_error("malformed_arguments", f"The arguments are not valid JSON ({error.msg})."))
        if not isinstance(parsed, dict):
            return _outcome(tool_error("malformed_arguments", "The arguments must be a JSON object."))
        reset = acting_for.set(Principal(user_id=user_id))
        try:
            result = await self.server.call_tool(name, parsed)
        except Exception:  # the port's promise: a crash is an error outcome the turn records, never an exception
            log.exception("agent_tool_crashed", tool=name)
            return _outcome(tool_error("internal_error", "The tool failed; nothing more is known."))
        finally:
            acting_for.reset(reset)
        if not isinstance(result, CallToolResult):  # a multi-round result: not something our tools answer
            return _outcome(tool_error("internal_error", "The tool gave an answer the assistant cannot use."))
        return _outcome(result)


def _outcome(result: CallToolResult) -> ToolOutcome:
    if result.structured_content is not None:
        content = result.structured_content
        text = json.dumps(content["result"] if set(content) == {"result"} else content, default=str)
    else:
        text = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
    return ToolOutcome(text, is_error=bool(result.is_error))


async def refuse_outside_chat(_: Context) -> Principal:
    """The chat loop's server acts only for the person `McpAgentTools.call` names."""
    raise AuthenticationFailed("These tools act only inside a chat turn.")
