"""The composition root: the only module that knows every adapter and wires them to the use cases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.middleware.cors import CORSMiddleware

from todo_api.adapters.http.middleware import RequestContextMiddleware
from todo_api.adapters.http.problems import install_problem_handlers, use_problem_media_type
from todo_api.adapters.http.routers import health
from todo_api.adapters.sql.engine import create_engine
from todo_api.adapters.sql.unit_of_work import SqlDatabaseProbe
from todo_api.config import Settings
from todo_api.logging import configure_logging
from todo_api.use_cases.health import CheckReadiness
from todo_api.use_cases.registry import UseCases

API_TITLE = "todo-api"
_EXPOSED_HEADERS = ["X-Request-ID", "ETag", "Location", "Link", "Retry-After"]
_ALLOWED_HEADERS = ["Authorization", "Content-Type", "If-Match", "If-None-Match", "Idempotency-Key", "X-Request-ID"]


def create_app(settings: Settings | None = None, *, database_url: str | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(json_logs=settings.json_logs, level=settings.log_level)
    url = database_url or (settings.database_url.get_secret_value() if settings.database_url else None)
    if url is None:
        raise RuntimeError("DATABASE_URL is not set (`python -m todo_api` starts an embedded PostgreSQL)")
    engine = create_engine(settings, url)
    use_cases = UseCases(check_readiness=CheckReadiness(SqlDatabaseProbe(engine)))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(
        title=API_TITLE,
        version="1.0.0",
        lifespan=lifespan,
        docs_url="/docs" if settings.show_docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.show_docs else None,
    )
    app.state.use_cases = use_cases
    install_problem_handlers(app)
    app.include_router(health.router)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=settings.cors_allow_credentials,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=_ALLOWED_HEADERS,
        expose_headers=_EXPOSED_HEADERS,
        max_age=600,
    )
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes, hsts=settings.is_production)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes, description=app.description)
            app.openapi_schema = use_problem_media_type(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
