"""The summary, the tags and the set-wide writes on 200,000 tasks of 1,000 people: each is one
statement that reaches a person's rows through an index, never a sequential scan of `tasks`.

Planned (EXPLAIN, not run) with the exact SQL and values the repository sends, in a database of
its own, seeded at head and ANALYZEd.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from tests.integration.database import asyncpg_dsn, create_database, drop_database, migrate
from todo_api.adapters.sql import task_repository
from todo_api.adapters.sql.engine import Statement
from todo_api.adapters.sql.task_listing import filter_shape, filter_values
from todo_api.domain.overview import today_in
from todo_api.domain.tasks import TaskFilter

USERS = 1_000
TASKS = 200_000
USER = "user0500"

SEED: list[tuple[str, tuple[int, ...]]] = [
    (
        "INSERT INTO users (id, email) SELECT 'user' || lpad(u::text, 4, '0'), 'user' || u || '@example.com' "
        "FROM generate_series(1, $1::int) AS u",
        (USERS,),
    ),
    (
        "INSERT INTO lists (user_id, name, position, is_inbox) "
        "SELECT id, 'Inbox', 'a0', true FROM users UNION ALL SELECT id, 'Work', 'a1', false FROM users",
        (),
    ),
    # Half of each person's tasks in the Inbox, half in Work; a quarter done; due dates around now.
    (
        """
        INSERT INTO tasks (user_id, list_id, position, title, completed, priority, tags, due_at)
        SELECT l.user_id, l.id, 'a' || i, 'Task ' || i, i % 4 = 0, i % 4,
               CASE i % 3 WHEN 0 THEN '{}'::text[] WHEN 1 THEN '{work}' ELSE '{home,errand}' END,
               CASE WHEN i % 5 = 0 THEN NULL ELSE now() + (i % 20 - 10) * interval '1 day' END
        FROM generate_series(1, $2::int) AS i
        JOIN lists AS l ON l.user_id = 'user' || lpad((1 + i % $1::int)::text, 4, '0') AND l.is_inbox = (i % 2 = 0)
        """,
        (USERS, TASKS),
    ),
    ("ANALYZE", ()),
]


async def _seed(url: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for statement, arguments in SEED:
            await connection.execute(statement, *arguments)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def seeded(server_url: str) -> Iterator[str]:
    url = create_database(server_url)
    try:
        migrate(url)
        asyncio.run(_seed(url))
        yield url
    finally:
        drop_database(server_url, url)


@pytest.fixture
async def big_db(seeded: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(asyncpg_dsn(seeded))
    yield connection
    await connection.close()


async def plan_of(connection: asyncpg.Connection, statement: Statement, values: dict[str, Any]) -> dict[str, Any]:
    raw = await connection.fetchval(f"EXPLAIN (FORMAT JSON) {statement.sql}", *statement.arguments(values))
    plan: dict[str, Any] = json.loads(raw)[0]["Plan"]
    return plan


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(nodes(child))
    return found


def assert_reads_tasks_through_an_index(plan: dict[str, Any]) -> None:
    """Some node reads a `tasks` index, and no node reads a whole table."""
    shown = json.dumps(plan, indent=1)
    on_tasks = [node for node in nodes(plan) if node.get("Relation Name") == "tasks" or "Index Name" in node]
    assert not [node for node in nodes(plan) if node["Node Type"] == "Seq Scan"], shown
    assert any(str(node.get("Index Name", "")).startswith("ix_tasks_") for node in on_tasks), shown


async def test_the_seed_holds_its_tasks(big_db: asyncpg.Connection) -> None:
    assert await big_db.fetchval("SELECT count(*) FROM tasks") == TASKS
    assert await big_db.fetchval("SELECT count(*) FROM tasks WHERE user_id = $1", USER) == TASKS // USERS


async def test_the_summary_is_one_statement_that_reads_a_persons_tasks_through_an_index(
    big_db: asyncpg.Connection,
) -> None:
    now = datetime.now(UTC)
    day = today_in("Europe/Paris", now)
    values = {"owner": USER, "now": now, "day_start": day.start, "day_end": day.end}
    assert_reads_tasks_through_an_index(await plan_of(big_db, task_repository._SUMMARY, values))


async def test_the_tags_are_one_statement_that_reads_a_persons_tasks_through_an_index(
    big_db: asyncpg.Connection,
) -> None:
    assert_reads_tasks_through_an_index(await plan_of(big_db, task_repository._TAG_COUNTS, {"owner": USER}))


@pytest.mark.parametrize(
    "task_filter", [TaskFilter(status="pending"), TaskFilter(status="pending", tags=("work",))], ids=["all", "tag"]
)
async def test_complete_all_finds_the_tasks_through_an_index(
    big_db: asyncpg.Connection, task_filter: TaskFilter
) -> None:
    now = datetime.now(UTC)
    statement = task_repository._complete_matching(filter_shape(task_filter))
    plan = await plan_of(big_db, statement, {**filter_values(USER, task_filter, now), "at": now})
    assert_reads_tasks_through_an_index(plan)


async def test_clear_completed_finds_the_tasks_through_an_index(big_db: asyncpg.Connection) -> None:
    now, task_filter = datetime.now(UTC), TaskFilter(status="completed")
    statement = task_repository._trash_matching(filter_shape(task_filter))
    plan = await plan_of(big_db, statement, {**filter_values(USER, task_filter, now), "at": now})
    assert_reads_tasks_through_an_index(plan)
