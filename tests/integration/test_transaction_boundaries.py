"""Where a unit of work's transaction begins and ends, seen in what reaches PostgreSQL.

A create into a list that exists is two round trips: the plain read of where the task goes, and
the write carrying its event, which commits as it runs. A create that must make the Inbox first is
one transaction, as is every unit that writes before its last write (engine/connection.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import bindparam, insert, text

from tests.integration.conftest import make_settings
from todo_api.adapters.calendar.rrule import RruleRecurrences
from todo_api.adapters.http.schemas import event_data
from todo_api.adapters.sql.engine import ConnectionPool, Statement
from todo_api.adapters.sql.tables import lists, users
from todo_api.adapters.sql.unit_of_work import SqlUnitOfWork, SqlUnitsOfWork
from todo_api.domain.errors import Conflict, ServiceUnavailable
from todo_api.domain.tasks import TaskDraft
from todo_api.main import SystemClock, pool_options
from todo_api.use_cases.tasks import CreateTask

ADA = "ada"


@pytest.fixture
async def pool(database_url: str, db: asyncpg.Connection) -> AsyncIterator[ConnectionPool]:
    await db.execute("INSERT INTO users (id, email) VALUES ($1, $2)", ADA, "ada@example.com")  # no Inbox yet
    connections = ConnectionPool(pool_options(make_settings(), database_url))
    yield connections
    await connections.close()


@pytest.fixture
def sent(pool: ConnectionPool, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The first word of every statement the pool's connections send, BEGIN and COMMIT included."""
    ours: set[int] = set()
    log: list[str] = []
    acquire = pool.acquire

    async def acquire_and_note() -> Any:
        driver = await acquire()
        ours.add(id(driver))
        return driver

    monkeypatch.setattr(pool, "acquire", acquire_and_note)
    for name in ("execute", "fetch", "fetchrow", "fetchval"):
        original = getattr(asyncpg.connection.Connection, name)

        async def recording(self: Any, query: str, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            if id(self) in ours:
                log.append(query.split(maxsplit=1)[0].rstrip(";").upper())
            return await _original(self, query, *args, **kwargs)

        monkeypatch.setattr(asyncpg.connection.Connection, name, recording)
    return log


async def create(pool: ConnectionPool, title: str) -> int:
    created = await CreateTask(SqlUnitsOfWork(pool, event_data), SystemClock(), RruleRecurrences()).execute(
        ADA, TaskDraft(title)
    )
    return created.task.id


async def test_a_create_into_a_list_that_exists_is_its_read_and_its_write_with_no_begin_or_commit(
    pool: ConnectionPool, sent: list[str], db: asyncpg.Connection
) -> None:
    await create(pool, "first")  # makes the Inbox
    sent.clear()
    second = await create(pool, "second")
    assert sent == ["SELECT", "WITH"]  # where it goes; the row with its event
    assert await db.fetchval("SELECT title FROM tasks WHERE id = $1", second) == "second"
    created = await db.fetch(
        "SELECT aggregate_id, position FROM events WHERE user_id = $1 AND type = 'task.created' ORDER BY position", ADA
    )
    assert created[-1]["aggregate_id"] == str(second)
    assert created[-1]["position"] == await db.fetchval("SELECT position FROM change_feeds WHERE user_id = $1", ADA)


async def test_a_create_that_makes_the_inbox_first_is_one_transaction(pool: ConnectionPool, sent: list[str]) -> None:
    await create(pool, "first")
    assert sent[0] == "SELECT"  # the plain read that finds no Inbox runs before the BEGIN
    assert sent[1] == "BEGIN"
    assert sent[-1] == "COMMIT"
    assert "WITH" in sent[2:-1]


ADD_LIST = Statement(
    insert(lists).values(
        user_id=ADA,
        name=bindparam("name"),
        position="a0",
        is_inbox=False,
        created_at=text("now()"),
        updated_at=text("now()"),
    )
)
ADD_USER_LAST = Statement(insert(users).values(id=bindparam("id"), email=bindparam("email")), last_write=True)


async def test_a_last_write_that_fails_after_another_write_takes_that_write_back_with_it(
    pool: ConnectionPool, db: asyncpg.Connection
) -> None:

    async def add_list_then_a_taken_user() -> None:
        async with SqlUnitOfWork(pool, event_data) as unit:
            await ADD_LIST.execute(unit, name="Errands")
            await ADD_USER_LAST.execute(unit, id="bob", email="ada@example.com")  # the e-mail is taken
            await unit.commit()

    with pytest.raises(Conflict):
        await add_list_then_a_taken_user()
    assert await db.fetchval("SELECT count(*) FROM lists WHERE user_id = $1", ADA) == 0


SLOW_LAST = Statement(text("SELECT pg_sleep(30)"), last_write=True)
SLOW = Statement(text("SELECT pg_sleep(30)"))


@pytest.mark.parametrize(
    ("statement", "code"),
    [(SLOW_LAST, "commit_outcome_unknown"), (SLOW, "service_unavailable")],
    ids=["last-write-alone", "inside-a-transaction"],
)
async def test_a_connection_lost_during_a_write_that_commits_as_it_runs_leaves_its_outcome_unknown(
    pool: ConnectionPool, db: asyncpg.Connection, statement: Statement, code: str
) -> None:
    """As a COMMIT lost on the way: the client is told the change may or may not be stored."""

    async def run() -> None:
        async with SqlUnitOfWork(pool, event_data) as unit:
            await statement.execute(unit)

    running = asyncio.create_task(run())
    for _ in range(200):
        pid = await db.fetchval("SELECT pid FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'")
        if pid is not None:
            break
        await asyncio.sleep(0.05)
    assert pid is not None, "the statement never started"
    await db.execute("SELECT pg_terminate_backend($1)", pid)
    with pytest.raises(ServiceUnavailable) as raised:
        await running
    assert raised.value.code == code
