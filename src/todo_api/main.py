"""The composition root: the only module that knows every adapter and wires them to the use cases."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.middleware.cors import CORSMiddleware

from todo_api.adapters.http.cursors import CursorCodec
from todo_api.adapters.http.middleware import RequestContextMiddleware
from todo_api.adapters.http.problems import complete_error_responses, install_problem_handlers
from todo_api.adapters.http.routers import auth, health, metrics, tasks
from todo_api.adapters.http.routers.auth import RefreshCookie
from todo_api.adapters.security.passwords import BcryptPasswordHasher, common_passwords
from todo_api.adapters.security.tokens import BearerTokenVerifier, ExternalTokens, JwksKeys, JwtAccessTokens
from todo_api.adapters.sql.engine import ConnectionPool, PoolOptions
from todo_api.adapters.sql.unit_of_work import SqlDatabaseProbe, SqlUnitsOfWork
from todo_api.config import Settings
from todo_api.domain.users import PasswordPolicy
from todo_api.logging import configure_logging
from todo_api.use_cases.auth import (
    Authenticate,
    ChangePassword,
    GetCurrentUser,
    LogIn,
    LogOut,
    RefreshSession,
    SessionIssuer,
    SignUp,
    ThrottleLimits,
)
from todo_api.use_cases.health import CheckReadiness
from todo_api.use_cases.registry import UseCases
from todo_api.use_cases.tasks import CreateTask, DeleteTask, GetTask, ListTasks, SetTaskCompletion, UpdateTask

API_TITLE = "todo-api"
_EXPOSED_HEADERS = ["X-Request-ID", "ETag", "Location", "Link", "Retry-After"]
_ALLOWED_HEADERS = ["Authorization", "Content-Type", "If-Match", "If-None-Match", "Idempotency-Key", "X-Request-ID"]


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def pool_options(settings: Settings, url: str) -> PoolOptions:
    return PoolOptions(
        url=url,
        size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        acquire_timeout_s=settings.db_pool_timeout_s,
        connect_timeout_s=settings.db_connect_timeout_s,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        pooler_mode=settings.db_pooler_mode,
        retry_after_s=settings.db_retry_after_s,
    )


def _use_cases(
    settings: Settings,
    pool: ConnectionPool,
    hasher: BcryptPasswordHasher,
    own_tokens: JwtAccessTokens,
    verifier: BearerTokenVerifier,
) -> UseCases:
    clock = SystemClock()

    uow = SqlUnitsOfWork(pool)

    policy = PasswordPolicy(common_passwords())
    limits = ThrottleLimits(
        login_per_account=settings.throttle_login_per_account,
        login_per_address=settings.throttle_login_per_address,
        login_window_s=settings.throttle_login_window_s,
        signup_per_address=settings.throttle_signup_per_address,
        signup_window_s=settings.throttle_signup_window_s,
    )
    sessions = SessionIssuer(own_tokens, clock, timedelta(days=settings.refresh_token_lifetime_days))
    return UseCases(
        check_readiness=CheckReadiness(SqlDatabaseProbe(pool)),
        authenticate=Authenticate(verifier, uow, clock),
        sign_up=SignUp(uow, hasher, policy, sessions, limits),
        log_in=LogIn(uow, hasher, sessions, limits),
        refresh_session=RefreshSession(uow, sessions),
        log_out=LogOut(uow, clock),
        change_password=ChangePassword(uow, hasher, policy, clock, limits),
        get_current_user=GetCurrentUser(uow),
        create_task=CreateTask(uow, clock),
        list_tasks=ListTasks(uow, clock),
        get_task=GetTask(uow),
        update_task=UpdateTask(uow, clock),
        set_task_completion=SetTaskCompletion(uow, clock),
        delete_task=DeleteTask(uow),
    )


def create_app(settings: Settings | None = None, *, database_url: str | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(json_logs=settings.json_logs, level=settings.log_level)
    url = database_url or (settings.database_url.get_secret_value() if settings.database_url else None)
    if url is None:
        raise RuntimeError("DATABASE_URL is not set (`python -m todo_api` starts an embedded PostgreSQL)")
    pool = ConnectionPool(pool_options(settings, url))
    hasher = BcryptPasswordHasher(pepper=settings.pepper(), cost=settings.bcrypt_cost, threads=settings.bcrypt_threads)
    own_tokens = JwtAccessTokens(
        key=settings.signing_key(),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        lifetime_s=settings.access_token_lifetime_s,
    )
    jwks = (
        JwksKeys(settings.auth_jwks_url, min_refetch_s=settings.auth_jwks_min_refetch_s)
        if settings.auth_jwks_url
        else None
    )
    external = (
        ExternalTokens(jwks, issuer=settings.auth_issuer or "", audience=settings.auth_audience or "") if jwks else None
    )
    use_cases = _use_cases(settings, pool, hasher, own_tokens, BearerTokenVerifier(own_tokens, external))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Start-up objects live for the whole process: keep the collector from scanning them again.
        gc.collect()
        gc.freeze()
        yield
        await pool.close()
        hasher.close()
        if jwks is not None:
            await jwks.close()

    app = FastAPI(
        title=API_TITLE,
        version="1.0.0",
        lifespan=lifespan,
        docs_url="/docs" if settings.show_docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.show_docs else None,
        telemetry={
            "tracing": settings.otel_telemetry,
            "metrics": settings.otel_telemetry,
            "logs": settings.otel_telemetry,
        },
    )
    install_problem_handlers(app)
    # The hot routes first: a request is matched against routes in the order they were added.
    app.include_router(tasks.build_router(use_cases, CursorCodec(settings.signing_key())))
    cookie = RefreshCookie(secure=settings.is_production, samesite=settings.refresh_cookie_samesite)
    app.include_router(auth.build_router(use_cases, cookie))
    app.include_router(health.build_router(use_cases.check_readiness))
    if settings.serve_metrics:
        token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
        app.include_router(metrics.build_router(token))
    if settings.cors_origins:  # without any, no cross-origin read is allowed: nothing to add
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
            app.openapi_schema = complete_error_responses(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
