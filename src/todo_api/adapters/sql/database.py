"""Where the database is and how connections to it are pooled.

Whatever Postgres URL people paste (`postgres://`, `postgresql://`, Neon's with `sslmode`,
`channel_binding` and a `-pooler` host) becomes asyncpg's DSN plus connect arguments; alembic
reads the same target through SQLAlchemy.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy import URL, make_url

from todo_api.adapters.sql.compiled import Driver
from todo_api.adapters.sql.pool_metrics import PoolGauges
from todo_api.config import Settings

# libpq query parameters asyncpg does not take as keywords; sslmode is translated to `ssl`.
_LIBPQ_ONLY = frozenset(
    {"sslmode", "channel_binding", "sslrootcert", "sslcert", "sslkey", "options", "target_session_attrs"}
)


@dataclass(frozen=True)
class DatabaseTarget:
    url: URL  # postgresql+asyncpg, for SQLAlchemy (alembic)
    connect_args: dict[str, Any] = field(default_factory=dict)
    pooler: bool = False

    @property
    def dsn(self) -> str:
        """The same target as asyncpg takes it."""
        return self.url.set(drivername="postgresql").render_as_string(hide_password=False)


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


class PoolTimeout(Exception):
    """Every connection stayed busy for DB_POOL_TIMEOUT_S."""


async def _nothing_to_reset(_: asyncpg.Connection[asyncpg.Record]) -> None:
    """Units of work end their own transactions and set nothing on the session; asyncpg's default
    reset would cost a round trip (RESET ALL, UNLISTEN *...) on every release."""


class ConnectionPool:
    """asyncpg's own pool, opened on first use (inside the running loop; no connection is made
    until a request needs one, so the app starts while the database is still down).

    Not SQLAlchemy's pool: checking a connection out of that one switches into SQLAlchemy's
    greenlet and back, and a greenlet switch copies the C stack between the switch and the
    greenlet's base; under FastAPI's nested middleware and dependency coroutines that was about
    40 us a request (docs/performance.md). Steady: up to DB_POOL_SIZE + DB_MAX_OVERFLOW
    connections stay open while used; requests beyond them wait up to DB_POOL_TIMEOUT_S.
    """

    def __init__(self, settings: Settings, raw_url: str) -> None:
        target = database_target(raw_url, pooler_mode=settings.db_pooler_mode)
        self.pooler = target.pooler
        self._acquire_timeout_s = settings.db_pool_timeout_s
        server_settings = {"application_name": "todo-api"}
        if settings.db_statement_timeout_ms and not target.pooler:
            # PgBouncer refuses startup parameters it does not know; behind a pooler, set it on the
            # role instead (ALTER ROLE ... SET statement_timeout); the command timeout still applies.
            server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
        self._options: dict[str, Any] = {
            "dsn": target.dsn,
            **target.connect_args,
            "timeout": settings.db_connect_timeout_s,
            # A server that vanishes without closing the socket must not hang a request for ever.
            "command_timeout": settings.db_statement_timeout_ms / 1000 + 1 if settings.db_statement_timeout_ms else 30,
            "server_settings": server_settings,
            "min_size": 0,
            "max_size": settings.db_pool_size + settings.db_max_overflow,
            "max_inactive_connection_lifetime": 1800,
            "reset": _nothing_to_reset,
        }
        if target.pooler:
            # A transaction-mode pooler hands each transaction to any server connection, where a
            # named prepared statement from another may not exist (and named ones would pile up
            # on the server): no statement cache, so asyncpg prepares unnamed statements.
            self._options["statement_cache_size"] = 0
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._opening = asyncio.Lock()
        self._gauges = PoolGauges()

    async def acquire(self) -> Driver:
        pool = self._pool or await self._open()
        try:
            connection = await pool.acquire(timeout=self._acquire_timeout_s)
        except TimeoutError as error:
            raise PoolTimeout from error
        self._gauges.checked_out(pool.get_size())
        return connection

    async def release(self, connection: Driver, *, discard: bool = False) -> None:
        """Back to the pool, or closed when a failure may have left it unusable (the pool opens
        a fresh one when needed)."""
        pool = self._pool
        if pool is None:
            return
        try:
            if discard or connection.is_closed():
                connection.terminate()
            await pool.release(connection)
        except asyncpg.InterfaceError:
            pass  # the connection closed under us and asyncpg has taken it back already
        finally:
            self._gauges.checked_in(pool.get_size())

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
            self._gauges.closed()

    async def _open(self) -> asyncpg.Pool[asyncpg.Record]:
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(**self._options)
            return self._pool
