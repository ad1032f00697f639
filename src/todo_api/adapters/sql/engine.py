"""The async engine: whatever Postgres URL people paste becomes an asyncpg URL plus connect args."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import URL, event, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from todo_api.config import Settings

# libpq query parameters asyncpg does not take as keywords; sslmode is translated to `ssl`.
_LIBPQ_ONLY = frozenset(
    {"sslmode", "channel_binding", "sslrootcert", "sslcert", "sslkey", "options", "target_session_attrs"}
)


@dataclass(frozen=True)
class DatabaseTarget:
    url: URL
    connect_args: dict[str, Any] = field(default_factory=dict)
    pooler: bool = False


def database_target(raw_url: str, *, pooler_mode: bool | None = None) -> DatabaseTarget:
    """Normalise `postgres://`, `postgresql://` and Neon URLs (`sslmode`, `channel_binding`, `-pooler`)."""
    url = make_url(raw_url.strip())
    if url.get_backend_name() not in {"postgres", "postgresql"}:
        raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, not {url.get_backend_name()!r}")
    query = dict(url.query)
    connect_args: dict[str, Any] = {}
    sslmode = query.get("sslmode") or query.get("ssl")
    if isinstance(sslmode, str) and sslmode != "disable":
        connect_args["ssl"] = sslmode
    kept = {key: value for key, value in query.items() if key not in _LIBPQ_ONLY and key != "ssl"}
    pooler = pooler_mode if pooler_mode is not None else "-pooler" in (url.host or "")
    url = url.set(drivername="postgresql+asyncpg", query=kept)
    return DatabaseTarget(url=url, connect_args=connect_args, pooler=pooler)


def create_engine(settings: Settings, raw_url: str) -> AsyncEngine:
    target = database_target(raw_url, pooler_mode=settings.db_pooler_mode)
    server_settings = {"application_name": "todo-api"}
    if settings.db_statement_timeout_ms and not target.pooler:
        # PgBouncer refuses startup parameters it does not know; behind a pooler, set it on the
        # role instead (ALTER ROLE ... SET statement_timeout); the command timeout still applies.
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    connect_args: dict[str, Any] = {
        **target.connect_args,
        "timeout": settings.db_connect_timeout_s,
        # A server that vanishes without closing the socket must not hang a request for ever.
        "command_timeout": settings.db_statement_timeout_ms / 1000 + 1 if settings.db_statement_timeout_ms else 30,
        "server_settings": server_settings,
    }
    url = target.url
    if target.pooler:
        # A transaction-mode pooler hands each transaction to any server connection, where a
        # named prepared statement from another may not exist (and named ones would pile up on
        # the server): no caches, unnamed statements, prepared and run in one transaction.
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_name_func"] = lambda: ""
        url = url.update_query_dict({"prepared_statement_cache_size": "0"})
    engine = create_async_engine(
        url,
        connect_args=connect_args,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        pool_recycle=1800,
    )
    event.listen(engine.sync_engine.pool, "checkout", _replace_if_closed)
    return engine


def _replace_if_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Hand out no connection the server has closed (restart, pg_terminate_backend, pooler).

    asyncpg notices the closed socket while the connection idles in the pool, so this costs no
    round trip; `pool_pre_ping` would cost three (BEGIN, a ping, ROLLBACK) on every checkout.
    Raising DisconnectionError makes the pool discard it and hand out a fresh one.
    """
    if dbapi_connection._connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")
