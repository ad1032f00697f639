"""While a deploy rolls out, replicas of the release before lists still serve. Their creates name
no list and no position; a trigger the lists migration adds places such a task as this release
would (at the end of its owner's Inbox, made if need be), so they neither fail nor leave a task
outside every list."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from tests.integration.database import asyncpg_dsn, create_database, drop_database, migrate
from todo_api.domain.ordering import key_between

pytestmark = pytest.mark.integration

# The previous release's INSERT: every column it knew of, none of lists'.
PREVIOUS_RELEASE_INSERT = (
    "INSERT INTO tasks (user_id, title, description, completed, priority, tags, created_at, updated_at) "
    "VALUES ($1, $2, NULL, false, 0, '{}', now(), now()) RETURNING id, list_id, parent_id, position"
)


@pytest.fixture(scope="module")
def migrated(server_url: str) -> Iterator[str]:
    url = create_database(server_url)
    migrate(url)
    yield url
    drop_database(server_url, url)


@pytest.fixture
async def conn(migrated: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(asyncpg_dsn(migrated))
    yield connection
    await connection.close()


async def test_a_task_the_previous_release_creates_goes_to_the_end_of_the_inbox(conn: asyncpg.Connection) -> None:
    await conn.execute("INSERT INTO users (id, email) VALUES ('ada', 'ada@example.com')")
    inbox = await conn.fetchval(
        "INSERT INTO lists (user_id, name, position, is_inbox) VALUES ('ada', 'Inbox', 'a0', true) RETURNING id"
    )
    key = None
    for n in range(70):  # past a0..az: the integer part grows a digit
        key = key_between(key, None)
        await conn.execute(
            "INSERT INTO tasks (user_id, title, list_id, position) VALUES ('ada', $1, $2, $3)", f"T{n}", inbox, key
        )
    placed = await conn.fetchrow(PREVIOUS_RELEASE_INSERT, "ada", "From the old release")
    assert placed is not None
    assert dict(placed) | {"id": 0} == {
        "id": 0,
        "list_id": inbox,
        "parent_id": None,
        "position": key_between(key, None),
    }


async def test_an_account_the_previous_release_made_gets_its_inbox_with_its_first_task(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute("INSERT INTO users (id, email) VALUES ('bob', 'bob@example.com')")
    placed = await conn.fetchrow(PREVIOUS_RELEASE_INSERT, "bob", "First")
    inbox = await conn.fetchrow("SELECT id, name, is_inbox FROM lists WHERE user_id = 'bob'")
    assert placed is not None
    assert inbox is not None
    assert (placed["list_id"], placed["position"], inbox["name"], inbox["is_inbox"]) == (
        inbox["id"], key_between(None, None), "Inbox", True,
    )  # fmt: skip


async def test_the_databases_next_key_is_the_domains(conn: asyncpg.Connection) -> None:
    """todo_key_after(k) = key_between(k, None) over keys of every shape the domain makes."""
    draw, keys, key = random.Random(20261204), set(), None
    for _ in range(3_000):
        keys.add(key := key_between(key, None))
    key = None
    for _ in range(500):
        keys.add(key := key_between(None, key))
    for _ in range(2_000):
        low, high = sorted(draw.sample(sorted(keys), 2))
        keys.add(key_between(low, high))
    rows = await conn.fetch("SELECT k, todo_key_after(k) AS next FROM unnest($1::text[]) AS k", sorted(keys))
    wrong = [
        (row["k"], row["next"], key_between(row["k"], None))
        for row in rows
        if row["next"] != key_between(row["k"], None)
    ]
    assert not wrong, wrong[:5]
    assert await conn.fetchval("SELECT todo_key_after(NULL)") == key_between(None, None)
