"""The MCP tools over stdio, for desktop agents that start the server themselves: one person, whose
token comes from the environment and is verified on every call, as a bearer token would be."""

from __future__ import annotations

from mcp.server.mcpserver import Context

from todo_api.adapters.mcp.tools import build_mcp_server
from todo_api.domain.users import Principal
from todo_api.use_cases.registry import UseCases


async def serve_stdio(use_cases: UseCases, token: str) -> None:
    async def caller(_: Context) -> Principal:
        return await use_cases.authenticate.execute(token)

    await use_cases.authenticate.execute(token)  # a bad token fails at start, not at the first call
    await build_mcp_server(use_cases, caller).run_stdio_async()
