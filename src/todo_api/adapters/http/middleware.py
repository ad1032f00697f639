"""Pure ASGI middleware: request id, client address behind trusted proxies, body size limit, security
headers and the access log, in one hop.

It also turns an unhandled exception into the 500 envelope itself, so even a crash carries the
request id, the security headers and exactly one access-log line.
"""

from __future__ import annotations

import logging
import random
import re
import time

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from todo_api.adapters.http.metrics import observe
from todo_api.adapters.http.problems import problem_response
from todo_api.adapters.http.proxies import TrustedProxies
from todo_api.logging import ACCESS_LOGGER, log_access, request_id_bound

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{8,128}")
_DOCS_PATHS = ("/docs", "/redoc")
_API_CSP = b"default-src 'none'; frame-ancestors 'none'"

log = structlog.get_logger(ACCESS_LOGGER)


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        hsts: bool,
        trusted_proxies: TrustedProxies | None = None,
        access_log: bool = True,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._proxies = trusted_proxies if trusted_proxies else None
        # LOG_LEVEL is fixed for the process: whether the line is written is decided once.
        self._access_log = access_log and logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO)
        self._headers: list[tuple[bytes, bytes]] = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if hsts:
            self._headers.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._proxies is not None:
            _resolve_forwarded(scope, self._proxies)
        request_id = _request_id_from(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        with request_id_bound(request_id):  # one coroutine level: each costs on every await below
            path: str = scope["path"]
            extra = [(b"x-request-id", request_id.encode())]
            if not path.startswith(_DOCS_PATHS):
                extra.append((b"content-security-policy", _API_CSP))
            status = 0
            started = time.perf_counter()

            async def send_with_headers(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message["headers"] = [*message.get("headers", ()), *self._headers, *extra]
                await send(message)

            received = 0

            async def receive_limited() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body_bytes:
                        raise HTTPException(413, detail=self._too_large)
                return message

            try:
                declared = _content_length(scope)
                if declared is not None and declared > self.max_body_bytes:
                    raise HTTPException(413, detail=self._too_large)
                await self.app(scope, receive_limited, send_with_headers)
            except HTTPException as error:  # raised here, outside the app's own exception handling
                if status:
                    raise
                await problem_response(
                    status=error.status_code, detail=str(error.detail), instance=path, request_id=request_id
                )(scope, receive, send_with_headers)
            except Exception:
                log.exception("unhandled_exception", method=scope["method"], path=path)
                if status:
                    raise
                response = problem_response(
                    status=500,
                    detail="An unexpected error occurred; quote the request id when reporting it.",
                    instance=path,
                    request_id=request_id,
                )
                await response(scope, receive, send_with_headers)
            finally:
                elapsed = time.perf_counter() - started
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                observe(scope["method"], route, status, elapsed)
                if self._access_log:
                    client = scope.get("client")
                    log_access(
                        scope["method"],
                        path,
                        client[0] if client else None,
                        status,
                        round(elapsed * 1000, 2),
                        request_id,
                    )

    @property
    def _too_large(self) -> str:
        return f"The request body exceeds {self.max_body_bytes} bytes."


def _content_length(scope: Scope) -> int | None:
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == b"content-length":
            if not value.isdigit():
                raise HTTPException(400, detail="The Content-Length header is not a number.")
            return int(value)
    return None


def _resolve_forwarded(scope: Scope, proxies: TrustedProxies) -> None:
    """Behind a trusted proxy, the client and scheme it vouches for replace the peer's."""
    client = scope.get("client")
    if not client:
        return
    forwarded_for: list[str] = []
    forwarded_proto: list[str] = []
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == b"x-forwarded-for":
            forwarded_for.append(value.decode("latin-1"))
        elif name == b"x-forwarded-proto":
            forwarded_proto.append(value.decode("latin-1"))
    peer = client[0]
    host = proxies.client(peer, forwarded_for)
    if host != peer:
        scope["client"] = (host, 0)
    scope["scheme"] = proxies.scheme(peer, forwarded_proto, scope.get("scheme", "http"))


def _request_id_from(scope: Scope) -> str:
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _SANE_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    # Unique, not secret: the shape of uuid4().hex without a system call per request (the
    # generator is reseeded in each forked worker).
    return f"{random.getrandbits(128):032x}"
