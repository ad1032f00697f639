"""The connection pool on a real PostgreSQL: bounded, lazy, never hands out a dead or half-used
connection, and gets every slot back whatever happens to the request that held it.

What the server does after a client lets go (a backend exiting) takes a moment, longer on a busy
machine: those checks poll until a deadline instead of sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import pytest
from sqlalchemy import bindparam, func, insert

from tests.integration.conftest import make_settings
from todo_api.adapters.http.schemas import event_data
from todo_api.adapters.sql.engine import Connection, ConnectionPool, CopyIn, PoolTimeout, Statement
from todo_api.adapters.sql.engine import pool as engine_pool
from todo_api.adapters.sql.tables import events, users
from todo_api.adapters.sql.unit_of_work import SqlUnitOfWork
from todo_api.domain.errors import Conflict, InvalidInput, ServiceUnavailable
from todo_api.main import pool_options

SIZE = 3
Ours = Callable[[], Awaitable[set[int]]]


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[ConnectionPool]:
    connections = ConnectionPool(pool_options(make_settings(db_pool_size=SIZE, db_pool_timeout_s=0.3), database_url))
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


async def until(ours: Ours, expected: Callable[[set[int]], bool], timeout_s: float = 10) -> set[int]:
    """The backends once `expected` holds for them, or as they were when the deadline passed."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not expected(backends := await ours()) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    return backends


async def test_no_connection_is_opened_before_one_is_needed(pool: ConnectionPool, ours: Ours) -> None:
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


async def test_at_most_the_pool_size_is_open_and_the_next_request_times_out(pool: ConnectionPool, ours: Ours) -> None:
    held = [await pool.acquire() for _ in range(SIZE)]
    assert len(await ours()) == SIZE
    started = asyncio.get_running_loop().time()
    with pytest.raises(PoolTimeout):
        await pool.acquire()
    assert 0.25 < asyncio.get_running_loop().time() - started < 3
    assert len(await ours()) == SIZE
    for connection in held:
        pool.release(connection)


async def test_a_burst_of_requests_never_opens_more_than_the_pool_size(pool: ConnectionPool, ours: Ours) -> None:
    async def one() -> int:
        connection = await pool.acquire()
        try:
            return await backend_pid(connection)
        finally:
            pool.release(connection)

    pids = await asyncio.gather(*(one() for _ in range(SIZE * 4)))
    assert len(set(pids)) <= SIZE
    assert len(await ours()) <= SIZE


async def test_a_waiting_request_gets_the_connection_given_back(pool: ConnectionPool) -> None:
    held = [await pool.acquire() for _ in range(SIZE)]
    waiting = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.05)
    assert not waiting.done()  # it has had its turn on the loop, and waits
    pid = await backend_pid(held[0])
    pool.release(held[0])
    connection = await asyncio.wait_for(waiting, 2)
    assert await backend_pid(connection) == pid
    for other in [*held[1:], connection]:
        pool.release(other)


async def test_a_request_cancelled_while_waiting_costs_no_slot(pool: ConnectionPool) -> None:
    held = [await pool.acquire() for _ in range(SIZE)]
    waiting = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    for connection in held:
        pool.release(connection)
    # Every slot is there again: the pool hands out SIZE connections at once.
    again = [await asyncio.wait_for(pool.acquire(), 2) for _ in range(SIZE)]
    for connection in again:
        pool.release(connection)


async def test_a_discarded_connection_is_closed_and_its_slot_reused(pool: ConnectionPool, ours: Ours) -> None:
    held = [await pool.acquire() for _ in range(SIZE)]
    discarded = await backend_pid(held[0])
    pool.release(held[0], discard=True)
    fresh = await asyncio.wait_for(pool.acquire(), 2)
    assert await backend_pid(fresh) != discarded
    assert discarded not in await until(ours, lambda backends: discarded not in backends)
    for connection in [*held[1:], fresh]:
        pool.release(connection)


async def test_a_connection_given_back_inside_a_transaction_is_not_handed_out(pool: ConnectionPool) -> None:
    connection = await pool.acquire()
    pid = await backend_pid(connection)
    await connection.execute("BEGIN")
    pool.release(connection)  # a caller that forgot to end its transaction
    again = await pool.acquire()
    assert await backend_pid(again) != pid
    assert not again.is_in_transaction()
    pool.release(again)


ADD_USER = Statement(
    insert(users).values(id=bindparam("id"), email="same@x.test", created_at=func.now(), updated_at=func.now())
)


async def test_after_a_clean_server_error_the_same_connection_serves_the_next_request(database_url: str) -> None:
    pool = ConnectionPool(pool_options(make_settings(db_pool_size=1), database_url))
    pids = []

    async def add_user(user_id: str) -> None:
        async with SqlUnitOfWork(pool, event_data) as unit:
            pids.append(await backend_pid(unit.driver))
            await ADD_USER.execute(unit, id=user_id)
            await unit.commit()

    try:
        await add_user("p1")
        with pytest.raises(Conflict):  # the unique e-mail, reported by the server
            await add_user("p2")
        async with SqlUnitOfWork(pool, event_data, read_only=True) as unit:
            assert not unit.driver.is_in_transaction()
            pids.append(await backend_pid(unit.driver))
        assert len(set(pids)) == 1, pids  # kept throughout: nothing was wrong with the connection
    finally:
        await pool.close()


async def test_a_connection_the_server_closed_is_not_handed_out(pool: ConnectionPool, db: asyncpg.Connection) -> None:
    connection = await pool.acquire()
    pid = await backend_pid(connection)
    pool.release(connection)
    assert await db.fetchval("SELECT pg_terminate_backend($1)", pid)
    for _ in range(200):  # until the client has seen its socket close
        if connection.is_closed():
            break
        await asyncio.sleep(0.05)
    assert connection.is_closed()
    replacement = await pool.acquire()
    assert await replacement.fetchval("SELECT 1") == 1
    assert await backend_pid(replacement) != pid
    pool.release(replacement)


async def test_a_connection_idle_too_long_is_closed_even_with_no_traffic(
    database_url: str, ours: Ours, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_pool, "IDLE_LIFETIME_S", 1.0)
    monkeypatch.setattr(engine_pool, "SWEEP_EVERY_S", 0.1)
    pool = ConnectionPool(pool_options(make_settings(db_pool_size=SIZE), database_url))
    try:
        busy, quiet = await pool.acquire(), await pool.acquire()
        busy_pid = await backend_pid(busy)
        pool.release(quiet)
        assert len(await ours()) == 2  # just given back: not idle long enough
        # No request arrives: the sweep alone closes the idle one; the one in use stays.
        assert await until(ours, lambda backends: backends == {busy_pid}) == {busy_pid}
        pool.release(busy)
        assert await until(ours, lambda backends: not backends) == set()
        again = await pool.acquire()  # and the pool opens a fresh one when needed
        assert await again.fetchval("SELECT 1") == 1
        pool.release(again)
    finally:
        await pool.close()


async def test_a_unit_of_work_cancelled_mid_statement_gives_its_slot_back_and_its_statement_up(
    database_url: str, ours: Ours
) -> None:
    pool = ConnectionPool(pool_options(make_settings(db_pool_size=1, db_pool_timeout_s=0.5), database_url))
    try:
        running: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def slow() -> None:
            async with SqlUnitOfWork(pool, event_data) as unit:
                running.set_result(await backend_pid(unit.driver))
                await unit.driver.execute("SELECT pg_sleep(30)")

        request = asyncio.create_task(slow())
        cancelled_pid = await asyncio.wait_for(running, 5)
        await asyncio.sleep(0.05)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        # The only slot is free again at once, on a new connection (the old one may be mid-protocol).
        async with SqlUnitOfWork(pool, event_data, read_only=True) as unit:
            assert await unit.driver.fetchval("SELECT 1") == 1
            assert await backend_pid(unit.driver) != cancelled_pid
        # And the cancelled statement does not run on for 30 s: the server ends that backend.
        assert cancelled_pid not in await until(ours, lambda backends: cancelled_pid not in backends)
    finally:
        await pool.close()


async def test_a_database_that_refuses_connections_is_a_503_and_costs_no_slot() -> None:
    unreachable = "postgresql://postgres@127.0.0.1:1/nowhere"
    pool = ConnectionPool(pool_options(make_settings(db_pool_size=1, db_pool_timeout_s=0.3), unreachable))
    try:
        for _ in range(3):  # with a slot lost per failure, the second would time out as "busy" instead
            with pytest.raises(ServiceUnavailable) as raised:
                async with SqlUnitOfWork(pool, event_data, read_only=True):
                    pass
            assert "unavailable" in raised.value.message
    finally:
        await pool.close()


async def test_closing_closes_the_idle_connections_and_those_still_out_as_they_come_back(
    database_url: str, ours: Ours
) -> None:
    pool = ConnectionPool(pool_options(make_settings(db_pool_size=SIZE), database_url))
    try:
        idle, out = await pool.acquire(), await pool.acquire()
        out_pid = await backend_pid(out)
        pool.release(idle)
        await pool.close()
        assert await until(ours, lambda backends: backends == {out_pid}) == {out_pid}
        pool.release(out)
        assert await until(ours, lambda backends: not backends) == set()
        with pytest.raises(asyncpg.InterfaceError):
            await pool.acquire()
    finally:
        await pool.close()


async def test_a_request_waiting_when_the_pool_closes_opens_nothing(database_url: str, ours: Ours) -> None:
    pool = ConnectionPool(pool_options(make_settings(db_pool_size=1, db_pool_timeout_s=2), database_url))
    try:
        held = await pool.acquire()
        held_pid = await backend_pid(held)
        waiting = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0.05)
        await pool.close()
        pool.release(held)  # its slot goes to the waiting request, which must not connect again
        with pytest.raises(asyncpg.InterfaceError):
            await waiting
        assert await until(ours, lambda backends: not backends) == set()
        assert held_pid not in await ours()
    finally:
        await pool.close()


AWKWARD = {
    "quote": 'say "hi"',
    "backslash": "C:\\tasks\\{a,b}",
    "braces": "{not, an, array}",
    "unicode": "café ✓ 日本",
    "nested": {"list": [1, 2.5, None, True], "empty": {}},
}


_JSON_QUERIES = {
    "json": (
        "SELECT $1::json AS value, ($1::json)::text AS stored",
        "SELECT value, value::text AS stored FROM unnest($1::json[]) WITH ORDINALITY AS v(value, n) ORDER BY n",
    ),
    "jsonb": (
        "SELECT $1::jsonb AS value, ($1::jsonb)::text AS stored",
        "SELECT value, value::text AS stored FROM unnest($1::jsonb[]) WITH ORDINALITY AS v(value, n) ORDER BY n",
    ),
}


@pytest.mark.parametrize(
    ("kind", "stored"),
    [
        ("jsonb", '{"quote": "say \\"hi\\""'),  # JSONB's own text form, keys sorted
        ("json", '{"quote":"say \\"hi\\"","backslash":'),  # json keeps the compact text sent
    ],
)
async def test_json_and_jsonb_travel_as_the_values_given_alone_and_in_arrays(
    pool: ConnectionPool, kind: str, stored: str
) -> None:
    """Both go in the binary format (for json, its text): what the server stores and what comes
    back is the value, whatever it holds (quotes, backslashes and braces are what a text-format
    array must escape)."""
    values = [AWKWARD, {"in": [AWKWARD]}, "a plain string", 42, None]  # a list would be a dimension
    one_sql, many_sql = _JSON_QUERIES[kind]
    async with Connection(pool, read_only=True) as connection:
        one = await connection.driver.fetchrow(one_sql, AWKWARD)
        many = await connection.driver.fetch(many_sql, values)
    assert one is not None
    assert one["value"] == AWKWARD
    assert one["stored"].startswith(stored)
    assert [row["value"] for row in many] == values
    assert [row["stored"] for row in many][2:] == ['"a plain string"', "42", None]  # None: SQL's NULL


_COPY_EVENTS = CopyIn(events, list(events.c))


def _event_row(position: int, aggregate_type: str = "task") -> tuple[object, ...]:
    at = datetime.now(UTC)
    return ("copy-u", position, str(uuid.uuid4()), aggregate_type, "7", "task.updated", {"position": position}, at)


@pytest.mark.parametrize(
    ("rows", "refused"),
    [
        ([_event_row(1), _event_row(2), _event_row(1)], Conflict),  # a position taken twice
        ([_event_row(1), _event_row(2, aggregate_type="x" * 17)], InvalidInput),  # past varchar(16)
    ],
    ids=["unique", "too-long"],
)
async def test_a_copy_the_server_refuses_is_a_domain_error_and_its_unit_writes_nothing(
    pool: ConnectionPool, db: asyncpg.Connection, rows: list[tuple[object, ...]], refused: type[Exception]
) -> None:
    """COPY fails as a statement does: translated at the call (a 409 or a 400 in the envelope, not
    a 500), the unit rolled back with none of its rows kept, and the next unit's COPY goes in."""
    async with SqlUnitOfWork(pool, event_data) as unit:
        await ADD_USER.execute(unit, id="copy-before")  # written in the same unit, before the COPY
        with pytest.raises(refused):
            await _COPY_EVENTS.run(unit, rows)
    assert await db.fetchval("SELECT count(*) FROM events WHERE user_id = 'copy-u'") == 0
    assert await db.fetchval("SELECT count(*) FROM users WHERE id = 'copy-before'") == 0
    async with SqlUnitOfWork(pool, event_data) as unit:
        await _COPY_EVENTS.run(unit, [_event_row(1), _event_row(2)])
        await unit.commit()
    kept = await db.fetchval("SELECT array_agg(position ORDER BY position) FROM events WHERE user_id = 'copy-u'")
    assert kept == [1, 2]
