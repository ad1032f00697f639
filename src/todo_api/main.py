"""The composition root: the only module that knows every adapter and wires them to the use cases."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from starlette.routing import Route

from todo_api.adapters.calendar.rrule import RruleRecurrences
from todo_api.adapters.http.app import HttpOptions, create_http_app
from todo_api.adapters.http.schemas import event_data
from todo_api.adapters.mcp.agent_tools import McpAgentTools, refuse_outside_chat
from todo_api.adapters.mcp.http import MCP_PATH, METADATA_PATH, McpHttp, McpHttpOptions
from todo_api.adapters.mcp.stdio import serve_stdio
from todo_api.adapters.mcp.tools import build_mcp_server
from todo_api.adapters.outbound.addresses import AddressGuard
from todo_api.adapters.outbound.chat_model import OpenAIChatModel
from todo_api.adapters.security.passwords import BcryptPasswordHasher, common_passwords
from todo_api.adapters.security.tokens import BearerTokenVerifier, ExternalTokens, JwksKeys, JwtAccessTokens
from todo_api.adapters.sql.auth_repositories import SqlRevokedSessions
from todo_api.adapters.sql.change_log import NOTIFY_CHANNEL
from todo_api.adapters.sql.change_notifications import ListeningSignals, PollingSignals
from todo_api.adapters.sql.engine import ConnectionPool, ListenerOptions, PoolOptions
from todo_api.adapters.sql.unit_of_work import SqlDatabaseProbe, SqlUnitsOfWork
from todo_api.config import Settings
from todo_api.domain.users import PasswordPolicy
from todo_api.logging import configure_logging
from todo_api.use_cases.auth import ThrottleLimits
from todo_api.use_cases.chat import ChatOptions
from todo_api.use_cases.registry import Ports, UseCases, build_use_cases
from todo_api.use_cases.streams import StreamOptions
from todo_api.workers import Loop, Workers, build_workers
from todo_api.workers import SystemClock as SystemClock


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


def http_options(settings: Settings) -> HttpOptions:
    return HttpOptions(
        cursor_key=settings.signing_key(),
        cors_origins=tuple(settings.cors_origins),
        cors_allow_credentials=settings.cors_allow_credentials,
        docs=settings.show_docs,
        metrics=settings.serve_metrics,
        metrics_token=settings.metrics_token.get_secret_value() if settings.metrics_token else None,
        refresh_cookie_secure=settings.is_production,
        refresh_cookie_samesite=settings.refresh_cookie_samesite,
        max_body_bytes=settings.max_body_bytes,
        hsts=settings.is_production,
        otel_telemetry=settings.otel_telemetry,
        trusted_proxies=settings.trusted_proxies,
        access_log=settings.access_log,
    )


def mcp_options(settings: Settings) -> McpHttpOptions:
    local = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"] if not settings.is_production else []
    return McpHttpOptions(
        allowed_hosts=tuple(settings.mcp_allowed_hosts),
        allowed_origins=(*settings.cors_origins, *settings.mcp_allowed_origins, *local),
        authorization_servers=tuple(issuer for issuer in (settings.jwt_issuer, settings.auth_issuer) if issuer),
        public_url=settings.public_url,
    )


def mount_mcp(app: FastAPI, mcp: McpHttp) -> None:
    """`/mcp` and its metadata as routes of the host app, so its middleware (request id, body cap,
    metrics, access log) applies; not in the OpenAPI document (docs/api.md describes them)."""
    app.router.routes.append(Route(MCP_PATH, mcp, methods=["GET", "POST", "DELETE"], include_in_schema=False))
    app.add_route(METADATA_PATH, mcp.metadata, methods=["GET"], include_in_schema=False)
    app.add_route(METADATA_PATH + MCP_PATH, mcp.metadata, methods=["GET"], include_in_schema=False)


def wakeup_mode(settings: Settings, pool: ConnectionPool) -> str:
    """EVENTS_WAKEUP: `auto` listens unless the pool goes through a transaction-mode pooler with no
    EVENTS_LISTEN_URL to listen on directly; then it polls (config.py, docs/events.md)."""
    if settings.events_wakeup != "auto":
        return settings.events_wakeup
    return "listen" if settings.events_listen_url or not pool.pooler else "poll"


def change_signals(settings: Settings, url: str, pool: ConnectionPool) -> ListeningSignals | PollingSignals:
    listen_url = settings.events_listen_url.get_secret_value() if settings.events_listen_url else None
    if wakeup_mode(settings, pool) == "poll":
        return PollingSignals(pool, settings.events_poll_interval_s)
    if pool.pooler and not listen_url:
        raise RuntimeError(
            "EVENTS_WAKEUP=listen behind a transaction-mode pooler needs EVENTS_LISTEN_URL (a direct URL)"
        )
    return ListeningSignals(
        ListenerOptions(url=listen_url or url, channel=NOTIFY_CHANNEL, connect_timeout_s=settings.db_connect_timeout_s),
        pool,
    )


def _on_exit_signal(callback: Callable[[], None]) -> Callable[[], None]:
    """Run `callback` (in the loop) when SIGTERM or SIGINT arrives, then whatever handled them before
    (uvicorn's graceful shutdown). uvicorn waits for open responses before it runs the lifespan's
    shutdown, so live streams must hear of the signal itself or hold the drain for its whole timeout.
    Returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    installed: dict[int, tuple[object, object]] = {}
    for number in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(number)
        if not callable(previous):
            continue

        def chained(sig: int, frame: object, previous: Callable[..., object] = previous) -> None:
            loop.call_soon_threadsafe(callback)
            previous(sig, frame)

        signal.signal(number, chained)
        installed[number] = (chained, previous)

    def undo() -> None:
        for number, (chained, previous) in installed.items():
            if signal.getsignal(number) is chained:
                signal.signal(number, previous)  # type: ignore[arg-type]

    return undo


def _use_cases(
    settings: Settings,
    pool: ConnectionPool,
    hasher: BcryptPasswordHasher,
    own_tokens: JwtAccessTokens,
    verifier: BearerTokenVerifier,
    signals: ListeningSignals | PollingSignals,
    chat_model: OpenAIChatModel | None = None,
    agent_tools: McpAgentTools | None = None,
) -> UseCases:
    limits = ThrottleLimits(
        login_per_account=settings.throttle_login_per_account,
        login_per_address=settings.throttle_login_per_address,
        login_window_s=settings.throttle_login_window_s,
        signup_per_address=settings.throttle_signup_per_address,
        signup_window_s=settings.throttle_signup_window_s,
    )
    return build_use_cases(
        Ports(
            uow=SqlUnitsOfWork(pool, event_data, signals.announce),
            clock=SystemClock(),
            hasher=hasher,
            access_tokens=own_tokens,
            verifier=verifier,
            probe=SqlDatabaseProbe(pool),
            password_policy=PasswordPolicy(common_passwords()),
            limits=limits,
            refresh_lifetime=timedelta(days=settings.refresh_token_lifetime_days),
            webhook_guard=AddressGuard(allow_private=settings.webhook_allow_private_targets),
            recurrences=RruleRecurrences(),
            webhook_allow_http=settings.webhook_allow_private_targets,
            change_signals=signals,
            streams=StreamOptions(
                heartbeat_s=settings.events_heartbeat_s,
                session_check_s=settings.events_session_check_s,
                max_per_user=settings.events_max_streams_per_user,
            ),
            stream_ticket_secret=settings.signing_key().encode(),
            stream_ticket_lifetime_s=settings.events_ticket_lifetime_s,
            chat_model=chat_model,
            agent_tools=agent_tools,
            chat=ChatOptions(
                max_steps=settings.chat_max_steps,
                turn_timeout_s=settings.chat_turn_timeout_s,
                history_messages=settings.chat_history_messages,
            ),
            revoked_sessions=SqlRevokedSessions(pool),
        )
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
    signals = change_signals(settings, url, pool)
    chat_model = (
        OpenAIChatModel(
            base_url=settings.chat_base_url or "",
            model=settings.chat_model or "",
            api_key=settings.chat_api_key.get_secret_value() if settings.chat_api_key else None,
            timeout_s=settings.chat_turn_timeout_s,
        )
        if settings.chat_configured
        else None
    )
    agent_tools = McpAgentTools() if chat_model is not None else None
    verifier = BearerTokenVerifier(own_tokens, external)
    use_cases = _use_cases(settings, pool, hasher, own_tokens, verifier, signals, chat_model, agent_tools)
    if agent_tools is not None:
        agent_tools.bind(build_mcp_server(use_cases, refuse_outside_chat))
    mcp = McpHttp(use_cases, mcp_options(settings)) if settings.mcp_enabled else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Start-up objects live for the whole process: keep the collector from scanning them again.
        gc.collect()
        gc.freeze()
        await signals.start()
        undo = _on_exit_signal(signals.begin_shutdown)
        # Every API process, workers or not, keeps its list of ended sessions fresh (revocations.py).
        revocations = Workers(
            [Loop(use_cases.session_revocations, settings.session_revocation_refresh_s)], grace_s=1, announce=False
        )
        revocations.start()
        workers = build_workers(settings, pool, signals.announce) if settings.run_workers else None
        if workers is not None:
            workers.start()
        async with mcp.running() if mcp is not None else contextlib.nullcontext():
            yield
        undo()
        await signals.close()  # before the pool: the streams it ends may still read
        await revocations.stop()
        if workers is not None:
            await workers.stop()
        await pool.close()
        hasher.close()
        if jwks is not None:
            await jwks.close()
        if chat_model is not None:
            await chat_model.close()

    app = create_http_app(use_cases, http_options(settings), lifespan=lifespan)
    if mcp is not None:
        mount_mcp(app, mcp)
    return app


def openapi_json() -> str:
    """The OpenAPI document as committed in `openapi.json` (`make openapi`): the app with its default
    settings, whatever the environment says, and no database (nothing connects until start-up).
    Sorted keys, two-space indents and a final newline, so a change reads as a small diff."""
    settings = Settings.model_construct(docs_enabled=True, metrics_enabled=True, mcp_enabled=False, run_workers=False)
    app = create_app(settings, database_url="postgresql://openapi@localhost/openapi")
    return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


async def serve_mcp_stdio(settings: Settings, url: str, token: str) -> None:
    """`python -m todo_api mcp`: the same tools over stdin/stdout for a desktop agent, acting for
    the bearer of `token` (checked on every call, so an expired or revoked token stops working)."""
    quiet = settings.model_copy(update={"run_workers": False, "mcp_enabled": False, "log_level": "WARNING"})
    app = create_app(quiet, database_url=url)
    use_cases: UseCases = app.state.services.use_cases
    async with app.router.lifespan_context(app):
        await serve_stdio(use_cases, token)
