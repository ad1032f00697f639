"""The connection pool on a real PostgreSQL: bounded, lazy, never hands out a dead or half-used
connection, and gets every slot back whatever happens to the request that held it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from tests.integration.conftest import make_settings
from todo_api.adapters.sql import database
from todo_api.adapters.sql.database import ConnectionPool, PoolTimeout
from todo_api.adapters.sql.unit_of_work import SqlUnitOfWork
from todo_api.domain.errors import ServiceUnavailable

SIZE = 3
Ours = Callable[[], Awaitable[set[int]]]


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[ConnectionPool]:
    connections = ConnectionPool(make_settings(db_pool_size=SIZE, db_pool_timeout_s=0.3), database_url)
    yield connections
    await connections.close()


async def backend_pid(connection: asyncpg.Connection) -> int:
    pid: int = await connection.fetchval("SELECT pg_backend_pid()")
    return pid


async def app_backends(db: asyncpg.Connection) -> set[int]:
    """Backends of this database opened by an app's pool (application_name todo-api)."""
    rows = await db.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'todo-api'"
    )
    return {row["pid"] for row in rows}


@pytest.fixture
async def ours(db: asyncpg.Connection) -> Ours:
    """The backends opened since the test began: other apps of the run may keep their pools open."""
    before = await app_backends(db)

    async def opened_since() -> set[int]:
        return await app_backends(db) - before

    return opened_since


async def test_no_connection_is_opened_before_one_is_needed(
    pool: ConnectionPool, db: asyncpg.Connection, ours: Ours
) -> None:
    assert await ours() == set()
    connection = await pool.acquire()
    assert await ours() == {await backend_pid(connection)}
    pool.release(connection)


async def test_a_returned_connection_is_handed_out_again(pool: ConnectionPool) -> None:
    first = await pool.acquire()
    pid = await backend_pid(first)
    pool.release(first)
    again = await pool.acquire()
    assert await backend_pid(again) == pid
    pool.release(again)


async def test_at_most_the_pool_size_is_open_and_the_next_request_times_out(
    pool: ConnectionPool, db: asyncpg.Connection, ours: Ours
) -> None:
    held = [await pool.acquire() for _ in range(SIZE)]
    assert len(await ours()) == SIZE
    started = asyncio.get_running_loop().time()
    with pytest.raises(PoolTimeout):
        await pool.acquire()
    assert 0.25 < asyncio.get_running_loop().time() - started < 2
    assert len(await ours()) == SIZE
    for connection in held:
        pool.release(connection)


async def test_a_waiting_request_gets_the_connection_given_back(pool: ConnectionPool) -> None:
    held = [await pool.acquire() for _ in range(SIZE)]
    waiting = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    pid = await backend_pid(held[0])
    pool.release(held[0])
    connection = await asyncio.wait_for(waiting, 1)
    assert await backend_pid(connection) == pid
    for other in [*held[1:], connection]:
        pool.release(other)


async def test_a_discarded_connection_is_closed_and_its_slot_reused(
    pool: ConnectionPool, db: asyncpg.Connection, ours: Ours
) -> None:
    held = [await pool.acquire() for _ in range(SIZE)]
    discarded = await backend_pid(held[0])
    pool.release(held[0], discard=True)
    fresh = await pool.acquire()
    assert await backend_pid(fresh) != discarded
    await asyncio.sleep(0.1)
    assert discarded not in await ours()
    for connection in [*held[1:], fresh]:
        pool.release(connection)


async def test_a_connection_the_server_closed_is_never_handed_out(pool: ConnectionPool, db: asyncpg.Connection) -> None:
    connection = await pool.acquire()
    pid = await backend_pid(connection)
    pool.release(connection)
    assert await db.fetchval("SELECT pg_terminate_backend($1)", pid)
    await asyncio.sleep(0.2)  # the client sees its socket close
    replacement = await pool.acquire()
    assert await replacement.fetchval("SELECT 1") == 1
    assert await backend_pid(replacement) != pid
    pool.release(replacement)


async def test_a_connection_idle_too_long_is_closed_even_with_no_traffic(
    database_url: str, ours: Ours, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "IDLE_LIFETIME_S", 0.2)
    monkeypatch.setattr(database, "SWEEP_EVERY_S", 0.05)
    pool = ConnectionPool(make_settings(db_pool_size=SIZE), database_url)
    try:
        busy, quiet = await pool.acquire(), await pool.acquire()
        pool.release(quiet)
        await asyncio.sleep(0.1)
        assert len(await ours()) == 2  # not idle long enough yet
        await asyncio.sleep(0.4)  # no request arrives: the sweep alone closes the idle one
        assert await ours() == {await backend_pid(busy)}  # the one in use stays
        pool.release(busy)
        await asyncio.sleep(0.5)
        assert await ours() == set()
        again = await pool.acquire()  # and the pool opens a fresh one when needed
        assert await again.fetchval("SELECT 1") == 1
        pool.release(again)
    finally:
        await pool.close()


async def test_a_unit_of_work_cancelled_mid_statement_gives_its_slot_back_and_its_connection_up(
    database_url: str, db: asyncpg.Connection, ours: Ours
) -> None:
    pool = ConnectionPool(make_settings(db_pool_size=1, db_pool_timeout_s=0.5), database_url)
    try:
        running: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def slow() -> None:
            async with SqlUnitOfWork(pool) as unit:
                running.set_result(await backend_pid(unit.driver))
                await unit.driver.execute("SELECT pg_sleep(30)")

        request = asyncio.create_task(slow())
        cancelled_pid = await asyncio.wait_for(running, 5)
        await asyncio.sleep(0.05)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        # The only slot is free again at once, on a new connection (the old one may be mid-protocol).
        async with SqlUnitOfWork(pool, read_only=True) as unit:
            assert await unit.driver.fetchval("SELECT 1") == 1
            assert await backend_pid(unit.driver) != cancelled_pid
        # And the cancelled statement does not run on: the server ends that backend promptly.
        for _ in range(40):
            if cancelled_pid not in await ours():
                break
            await asyncio.sleep(0.05)
        assert cancelled_pid not in await ours()
    finally:
        await pool.close()


async def test_a_database_that_refuses_connections_is_a_503_and_costs_no_slot(database_url: str) -> None:
    unreachable = "postgresql://postgres@127.0.0.1:1/nowhere"
    pool = ConnectionPool(make_settings(db_pool_size=1, db_pool_timeout_s=0.3), unreachable)
    try:
        for _ in range(3):  # with a slot lost per failure, the second would time out as "busy" instead
            with pytest.raises(ServiceUnavailable) as raised:
                async with SqlUnitOfWork(pool, read_only=True):
                    pass
            assert "unavailable" in raised.value.message
    finally:
        await pool.close()


async def test_closing_closes_the_idle_connections_and_those_still_out_as_they_come_back(
    database_url: str, db: asyncpg.Connection, ours: Ours
) -> None:
    pool = ConnectionPool(make_settings(db_pool_size=SIZE), database_url)
    idle, out = await pool.acquire(), await pool.acquire()
    pool.release(idle)
    await pool.close()
    await asyncio.sleep(0.1)
    assert await ours() == {await backend_pid(out)}
    pool.release(out)
    await asyncio.sleep(0.1)
    assert await ours() == set()
    with pytest.raises(asyncpg.InterfaceError):
        await pool.acquire()
