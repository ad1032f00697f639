"""The asyncpg connections one process shares among its requests.

Configured by `PoolOptions`, a small frozen object the composition root builds from the settings:
the engine knows nothing of `Settings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import asyncpg
import orjson

from todo_api.adapters.sql.engine.pool_metrics import PoolGauges
from todo_api.adapters.sql.engine.target import database_target

Driver: TypeAlias = "asyncpg.Connection[asyncpg.Record]"  # what statements run on


@dataclass(frozen=True, slots=True)
class PoolOptions:
    """How to reach the database and how many connections to keep (DB_* settings)."""

    url: str
    size: int = 20
    max_overflow: int = 0
    acquire_timeout_s: float = 3.0
    connect_timeout_s: float = 3.0
    statement_timeout_ms: int = 5_000
    pooler_mode: bool | None = None  # None: on for Neon `-pooler` hosts
    retry_after_s: int = 2  # what clients are told to wait when the database is unavailable
    application_name: str = "todo-api"


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

    def __init__(self, options: PoolOptions) -> None:
        target = database_target(options.url, pooler_mode=options.pooler_mode)
        self.pooler = target.pooler
        self.retry_after_s = options.retry_after_s
        self._acquire_timeout_s = options.acquire_timeout_s
        server_settings = {"application_name": options.application_name}
        timeout_ms = options.statement_timeout_ms
        if timeout_ms and not target.pooler:
            # PgBouncer refuses startup parameters it does not know; behind a pooler, set it on the
            # role instead (ALTER ROLE ... SET statement_timeout); the command timeout still applies.
            server_settings["statement_timeout"] = str(timeout_ms)
        self._options: dict[str, Any] = {
            "dsn": target.dsn,
            **target.connect_args,
            "timeout": options.connect_timeout_s,
            # A server that vanishes without closing the socket must not hang a request for ever.
            "command_timeout": timeout_ms / 1000 + 1 if timeout_ms else 30,
            "server_settings": server_settings,
        }
        if target.pooler:
            # A transaction-mode pooler hands each transaction to any server connection, where a
            # named prepared statement from another may not exist (and named ones would pile up
            # on the server): no statement cache, so asyncpg prepares unnamed statements.
            self._options["statement_cache_size"] = 0
        self._slots = asyncio.BoundedSemaphore(options.size + options.max_overflow)
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
        try:
            # JSON in and out as Python values; builtin types, so no round trip to set them up. In
            # binary format (for JSONB a version byte, then the text): in text format an array of
            # JSONB goes as one quoted, escaped array literal, which cost asyncpg and the server
            # about 5 and 1.3 us an element (docs/performance.md).
            await connection.set_type_codec(
                "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
            )
            # `json` (the outbox's payload) in binary format is its text as it is.
            await connection.set_type_codec(
                "json", encoder=_encode_json, decoder=orjson.loads, schema="pg_catalog", format="binary"
            )
        except BaseException:
            connection.terminate()
            raise
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


_JSONB_VERSION: Final = b"\x01"  # the only version of JSONB's binary format


def _encode_json(value: Any) -> bytes:
    # Datetimes as the API writes them (`...Z` for UTC), should a repository hand one over.
    return orjson.dumps(value, option=orjson.OPT_UTC_Z)


def _encode_jsonb(value: Any) -> bytes:
    return _JSONB_VERSION + _encode_json(value)


def _decode_jsonb(data: bytes) -> Any:
    if data[:1] != _JSONB_VERSION:
        raise ValueError(f"unknown JSONB binary format version {data[:1]!r}")
    return orjson.loads(memoryview(data)[1:])
