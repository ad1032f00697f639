"""The HTTP app, built from the use cases and a few plain options.

The composition root builds the use cases on PostgreSQL and hands them here; the HTTP tests hand
the same use cases built on in-memory fakes, so every route, error and header can be tested without
a database. Nothing here reads settings: `HttpOptions` is what `main` derives from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Lifespan

from todo_api.adapters.http.cursors import CursorCodec
from todo_api.adapters.http.deps import HttpServices
from todo_api.adapters.http.docs_pages import install_docs_pages
from todo_api.adapters.http.middleware import RequestContextMiddleware
from todo_api.adapters.http.problems import complete_error_responses, install_problem_handlers
from todo_api.adapters.http.proxies import TrustedProxies
from todo_api.adapters.http.refresh_cookie import RefreshCookie
from todo_api.adapters.http.response_headers import declare_response_headers
from todo_api.adapters.http.routers import (
    account,
    auth,
    changes,
    chat,
    events,
    health,
    lists,
    metrics,
    overview,
    reminders,
    tasks,
    webhooks,
)
from todo_api.use_cases.registry import UseCases

API_TITLE = "todo-api"
API_VERSION = "1.0.0"
_EXPOSED_HEADERS = ["X-Request-ID", "ETag", "Location", "Link", "Retry-After"]
_ALLOWED_HEADERS = ["Authorization", "Content-Type", "If-Match", "If-None-Match", "Idempotency-Key", "X-Request-ID"]
_ALLOWED_HEADERS += ["Last-Event-ID"]  # resuming an event stream from a fetch-based SSE client


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """What the HTTP layer needs to know about its deployment; defaults suit development."""

    cursor_key: str
    """Signs page cursors (the app's secret key)."""
    cors_origins: Sequence[str] = ()
    cors_allow_credentials: bool = True
    docs: bool = True
    """Serve /docs and /openapi.json."""
    metrics: bool = True
    """Serve /metrics, behind `metrics_token` when one is set."""
    metrics_token: str | None = None
    refresh_cookie_secure: bool = False
    refresh_cookie_samesite: Literal["lax", "strict", "none"] = "lax"
    max_body_bytes: int = 64 * 1024
    hsts: bool = False
    otel_telemetry: bool = False
    """FastAPI's native OpenTelemetry; when on, it looks the providers up on every request."""
    trusted_proxies: Sequence[IPv4Network | IPv6Network] = ()
    """Only requests from these peers may name the client (`X-Forwarded-For`) and scheme."""
    access_log: bool = True
    """One line per request at INFO (when LOG_LEVEL lets INFO through)."""


def parameters_without_null(openapi: dict[str, Any]) -> dict[str, Any]:
    """A header, query, path or cookie parameter is absent or a string, never null; FastAPI writes
    `str | None` as `anyOf: [..., {"type": "null"}]`, and fuzzers then send the text `null`."""
    for path_item in openapi.get("paths", {}).values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", ()) if isinstance(operation, dict) else ():
                schema = parameter.get("schema", {})
                branches = [branch for branch in schema.get("anyOf", ()) if branch != {"type": "null"}]
                if len(branches) == 1 and len(schema["anyOf"]) == 2:
                    rest = {key: value for key, value in schema.items() if key != "anyOf"}
                    parameter["schema"] = {**branches[0], **rest}
    return openapi


def create_http_app(use_cases: UseCases, options: HttpOptions, *, lifespan: Lifespan[FastAPI] | None = None) -> FastAPI:
    app = FastAPI(
        title=API_TITLE,
        version=API_VERSION,
        lifespan=lifespan,
        docs_url=None,  # served from bundled files instead (docs_pages.py)
        redoc_url=None,
        openapi_url="/openapi.json" if options.docs else None,
        telemetry={
            "tracing": options.otel_telemetry,
            "metrics": options.otel_telemetry,
            "logs": options.otel_telemetry,
        },
    )
    app.state.services = HttpServices(
        use_cases=use_cases,
        cursors=CursorCodec(options.cursor_key),
        refresh_cookie=RefreshCookie(secure=options.refresh_cookie_secure, samesite=options.refresh_cookie_samesite),
        metrics_token=options.metrics_token,
    )
    install_problem_handlers(app)
    # The hot routes first: a request is matched against routes in the order they were added.
    app.include_router(tasks.router)
    app.include_router(lists.router)
    app.include_router(reminders.router)
    app.include_router(overview.router)
    app.include_router(changes.router)
    app.include_router(events.router)
    app.include_router(webhooks.router)
    app.include_router(chat.router)
    app.include_router(auth.router)
    app.include_router(account.router)
    app.include_router(health.router)
    if options.metrics:
        app.include_router(metrics.router)
    if options.docs:
        install_docs_pages(app, openapi_url="/openapi.json")
    if options.cors_origins:  # without any, no cross-origin read is allowed: nothing to add
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(options.cors_origins),
            allow_credentials=options.cors_allow_credentials,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=_ALLOWED_HEADERS,
            expose_headers=_EXPOSED_HEADERS,
            max_age=600,
        )
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=options.max_body_bytes,
        hsts=options.hsts,
        trusted_proxies=TrustedProxies(options.trusted_proxies),
        access_log=options.access_log,
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes, description=app.description)
            app.openapi_schema = declare_response_headers(complete_error_responses(parameters_without_null(schema)))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
