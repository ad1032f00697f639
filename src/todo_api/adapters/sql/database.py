"""Where the database is and how connections to it are pooled.

Whatever Postgres URL people paste (`postgres://`, `postgresql://`, Neon's with `sslmode`,
`channel_binding` and a `-pooler` host) becomes asyncpg's DSN plus connect arguments; alembic
reads the same target through SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
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


IDLE_LIFETIME_S = 1800.0  # a connection unused this long is closed (a quiet app lets go of the server)
SWEEP_EVERY_S = 60.0  # how often idle connections are looked at: one timer per pool, not per request


class ConnectionPool:
    """The asyncpg connections one process shares among its requests: a bounded semaphore and a
    list of idle connections, because SQLAlchemy's pool (a greenlet switch) and asyncpg's (two
    tasks and a timer) each cost a tenth of a short request (docs/architecture.md).

    Opened as needed (the app starts while the database is down), at most DB_POOL_SIZE +
    DB_MAX_OVERFLOW; a request beyond them waits DB_POOL_TIMEOUT_S for one. The most recently
    used goes out first, so those a quiet hour does not need sink and are swept after
    IDLE_LIFETIME_S, traffic or not (a serverless database can scale down). Giving one back is
    synchronous, so no cancellation can strand it; nothing is reset, because units of work end
    their own transactions, and one still inside a transaction, or whose socket asyncpg has seen
    close, is discarded rather than handed out.
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
        }
        if target.pooler:
            # A transaction-mode pooler hands each transaction to any server connection, where a
            # named prepared statement from another may not exist (and named ones would pile up
            # on the server): no statement cache, so asyncpg prepares unnamed statements.
            self._options["statement_cache_size"] = 0
        self._slots = asyncio.BoundedSemaphore(settings.db_pool_size + settings.db_max_overflow)
        self._idle: list[tuple[Driver, float]] = []  # (connection, when it came back), oldest first
        self._open = 0
        self._retiring: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False
        self._gauges = PoolGauges()

    async def acquire(self) -> Driver:
        if self._closed:
            raise asyncpg.InterfaceError("the connection pool is closed")
        try:
            async with asyncio.timeout(self._acquire_timeout_s):
                await self._slots.acquire()
        except TimeoutError as error:
            raise PoolTimeout from error
        try:
            if self._closed:  # closed while this request waited: open nothing during shutdown
                raise asyncpg.InterfaceError("the connection pool is closed")
            connection = self._reuse() or await self._connect()
        except BaseException:
            self._slots.release()
            raise
        self._gauges.checked_out(self._open)
        return connection

    def release(self, connection: Driver, *, discard: bool = False) -> None:
        """`discard` when a failure may have left the connection mid-protocol: the caller knows
        what happened to it, the pool only sees its socket and transaction state."""
        try:
            if discard or self._closed or connection.is_closed() or connection.is_in_transaction():
                self._retire(connection)
            else:
                self._idle.append((connection, time.monotonic()))
        finally:
            self._slots.release()
            self._gauges.checked_in(self._open)

    async def close(self) -> None:
        """Close the idle connections; any still out are closed as they come back."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        idle, self._idle = self._idle, []
        for connection, _ in idle:
            self._retire(connection)
        await asyncio.gather(*self._retiring, return_exceptions=True)
        self._gauges.resized(self._open)

    def _reuse(self) -> Driver | None:
        idle = self._idle
        while idle:
            connection, _ = idle.pop()
            if not connection.is_closed():
                return connection
            self._retire(connection)
        return None

    async def _connect(self) -> Driver:
        connection: Driver = await asyncpg.connect(**self._options)
        self._open += 1
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(SWEEP_EVERY_S, self._sweep)
        return connection

    def _sweep(self) -> None:
        """One timer for the pool, not one per release as asyncpg rearms: the oldest idle are first."""
        idle, now = self._idle, time.monotonic()
        while idle and now - idle[0][1] > IDLE_LIFETIME_S:
            self._retire(idle.pop(0)[0])
        self._gauges.resized(self._open)
        if not self._closed:
            self._sweeper = asyncio.get_running_loop().call_later(SWEEP_EVERY_S, self._sweep)

    def _retire(self, connection: Driver) -> None:
        """Closed in the background, politely: a statement still running for a cancelled or
        timed-out request is cancelled on the server first (cutting the socket would leave it
        running there until its statement timeout)."""
        self._open -= 1
        if connection.is_closed():
            connection.terminate()  # asyncpg's own clean-up; the socket is gone already
            return
        task = asyncio.get_running_loop().create_task(_close_politely(connection))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)


async def _close_politely(connection: Driver) -> None:
    with contextlib.suppress(Exception):  # asyncpg aborts the socket itself when it cannot close cleanly
        await connection.close(timeout=2)
