"""`/mcp` over the streamable HTTP transport, stateless (any replica answers any call), behind the
same bearer tokens as the REST API, and the RFC 9728 metadata that tells an agent where to get one.

The SDK's own Starlette app is not mounted: a mount under `/mcp` would move its metadata routes to
`/mcp/.well-known/...` while the 401 must name a URL that answers, and its auth middleware wants
its own token model. Here the endpoint authenticates with the `Authenticate` use case (our HS256
tokens and the JWKS issuer alike), then hands the request to the SDK's session manager, which the
host app's lifespan runs (`McpHttp.running`). Being a route of the host app, `/mcp` also goes
through its middleware: request id, body size cap, access log, metrics.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from todo_api.adapters.mcp.tools import TodoMcpServer, build_mcp_server
from todo_api.domain.errors import AuthenticationFailed
from todo_api.domain.users import Principal
from todo_api.use_cases.registry import UseCases

MCP_PATH = "/mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource"
_PRINCIPAL = "mcp_principal"


@dataclass(frozen=True, slots=True)
class McpHttpOptions:
    allowed_hosts: Sequence[str]
    """`Host` values the endpoint answers (`name:*` for any port); `*` turns the DNS-rebinding check off."""
    allowed_origins: Sequence[str] = ()
    """Browser origins allowed to call; a request without `Origin` (any non-browser agent) passes."""
    authorization_servers: Sequence[str] = ()
    """The issuers whose tokens are accepted, named in the protected-resource metadata."""
    public_url: str | None = None
    """The API's external base URL (`https://api.example.com`); None: the request's own."""


class McpHttp:
    def __init__(self, use_cases: UseCases, options: McpHttpOptions) -> None:
        self._authenticate = use_cases.authenticate
        self._options = options
        self.server: TodoMcpServer = build_mcp_server(use_cases, _principal_of_request)
        hosts = list(options.allowed_hosts)
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection="*" not in hosts,
            allowed_hosts=hosts,
            allowed_origins=list(options.allowed_origins),
        )
        # Builds the session manager; its Starlette app is not used (see the module's docstring).
        self.server.streamable_http_app(stateless_http=True, json_response=True, transport_security=security)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """For the host app's lifespan: without it every call fails (the manager has no task group).

        The manager's task group lives in a task of its own: a lifespan may be left from another
        task than the one that entered it (test fixtures do), which an anyio cancel scope refuses."""
        started, stop = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            async with self.server.session_manager.run():
                started.set()
                await stop.wait()

        holder = asyncio.create_task(hold(), name="mcp-session-manager")
        ready = asyncio.create_task(started.wait())
        await asyncio.wait({holder, ready}, return_when=asyncio.FIRST_COMPLETED)
        if holder.done():
            ready.cancel()
            holder.result()  # raises what stopped it
        try:
            yield
        finally:
            stop.set()
            await holder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            principal = await self._authenticate.execute(token.strip() if scheme.lower() == "bearer" else None)
        except AuthenticationFailed as failure:
            await self._unauthorized(request, failure)(scope, receive, send)
            return
        scope.setdefault("state", {})[_PRINCIPAL] = principal
        await self.server.session_manager.handle_request(scope, receive, send)

    async def metadata(self, request: Request) -> Response:
        """RFC 9728 protected-resource metadata for `/mcp`. Built from the `Host` header when there is
        no `PUBLIC_URL`, so then never cached: a shared cache would serve one forged host to everyone."""
        cache = "public, max-age=3600" if self._options.public_url else "no-store"
        return JSONResponse(
            {
                "resource": self._base_url(request) + MCP_PATH,
                "authorization_servers": list(self._options.authorization_servers),
                "bearer_methods_supported": ["header"],
                "resource_name": "todo-api MCP server",
                "resource_documentation": self._base_url(request) + "/docs",
            },
            headers={"Cache-Control": cache},
        )

    def metadata_url(self, request: Request) -> str:
        """The root document (also served at RFC 9728's `.../oauth-protected-resource/mcp`)."""
        return self._base_url(request) + METADATA_PATH

    def _unauthorized(self, request: Request, failure: AuthenticationFailed) -> Response:
        body = {
            "type": f"https://todo-api.dev/problems/{failure.code}",
            "title": "Unauthorized",
            "status": 401,
            "detail": failure.message,
            "instance": request.url.path,
            "code": failure.code,
            "request_id": request.scope.get("state", {}).get("request_id"),
        }
        error = "invalid_token" if request.headers.get("authorization") else None
        challenge = f'Bearer resource_metadata="{self.metadata_url(request)}"'
        if error:
            challenge += f', error="{error}"'
        return Response(
            json.dumps(body),
            status_code=401,
            media_type="application/problem+json",
            headers={"WWW-Authenticate": challenge},
        )

    def _base_url(self, request: Request) -> str:
        if self._options.public_url:
            return self._options.public_url.rstrip("/")
        return f"{request.url.scheme}://{request.headers.get('host') or request.url.netloc}"


async def _principal_of_request(ctx: Context) -> Principal:
    """The caller `McpHttp` authenticated for this request (stdio has its own, __main__.py)."""
    request = ctx.request_context.request
    principal = request.scope.get("state", {}).get(_PRINCIPAL) if isinstance(request, Request) else None
    if not isinstance(principal, Principal):
        raise AuthenticationFailed("This call carries no valid bearer token.")
    return principal
