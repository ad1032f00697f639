"""The reminder scheduler on a real PostgreSQL: two replicas (two pools) fire each reminder exactly
once, at the time a clock the test controls says; a replica killed while holding claimed reminders
loses none; and with 100,000 armed reminders both the scheduler's scan and `GET /reminders` read
an index, not the table."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.conftest import make_settings
from tests.integration.tasks_support import User, create_task, sign_up
from tests.unit.fakes import FakeClock
from todo_api.adapters.http.schemas import event_data
from todo_api.adapters.sql.engine import ConnectionPool
from todo_api.adapters.sql.reminder_repository import _CLAIM, _UPCOMING_FIRST
from todo_api.adapters.sql.unit_of_work import SqlUnitsOfWork
from todo_api.main import pool_options
from todo_api.use_cases.reminders import FireReminders, SchedulerOptions

SOON = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)


def z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
async def user(client: httpx.AsyncClient) -> User:
    return await sign_up(client)


@pytest.fixture
async def replicas(database_url: str) -> AsyncIterator[list[SqlUnitsOfWork]]:
    pools = [ConnectionPool(pool_options(make_settings(db_pool_size=4), database_url)) for _ in range(2)]
    yield [SqlUnitsOfWork(pool, event_data) for pool in pools]
    for pool in pools:
        await pool.close()


async def due_events(db: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await db.fetch("SELECT payload FROM events WHERE type = 'task.reminder_due' ORDER BY user_id, position")
    return [json.loads(row["payload"]) for row in rows]


async def drain(scheduler: FireReminders) -> int:
    fired = 0
    while (count := await scheduler.run_once()) > 0:
        fired += count
    return fired


async def test_two_replicas_fire_each_reminder_once_when_the_clock_reaches_it(
    client: httpx.AsyncClient, user: User, replicas: list[SqlUnitsOfWork], db: asyncpg.Connection
) -> None:
    both = [{"before": "PT5M"}, {"at": z(SOON)}]
    tasks = [await create_task(client, user, due_at=z(SOON + timedelta(minutes=n)), reminders=both) for n in range(60)]
    done = tasks[0]
    await client.patch(f"/api/me/tasks/{done['id']}/complete", json={"completed": True}, headers=user.headers)
    clock = FakeClock(SOON - timedelta(minutes=10))
    schedulers = [FireReminders(units, clock, SchedulerOptions(batch=7)) for units in replicas]

    assert await schedulers[0].run_once() == 0  # nothing is due yet
    clock.set(SOON + timedelta(minutes=30))
    fired = await asyncio.gather(*(drain(scheduler) for scheduler in schedulers for _ in range(3)))

    events = await due_events(db)
    fired_for = Counter((event["data"]["id"], event["data"]["reminder"]["index"]) for event in events)
    expected = {
        (task["id"], index) for task in tasks[1:] for index in (0, 1) if index == 1 or task["id"] <= tasks[35]["id"]
    }
    assert set(fired_for) == expected  # up to 30 minutes in: every `at`, and `before` for due <= SOON+35m
    assert set(fired_for.values()) == {1}
    assert sum(fired) == len(events)
    assert all(event["subject"] == f"tasks/{event['data']['id']}" for event in events)
    assert await drain(schedulers[1]) == 0


SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import datetime, UTC
    from todo_api.adapters.http.schemas import event_data
    from todo_api.adapters.sql.engine import ConnectionPool, PoolOptions
    from todo_api.adapters.sql.unit_of_work import SqlUnitsOfWork

    async def main():
        units = SqlUnitsOfWork(ConnectionPool(PoolOptions(url=sys.argv[1], size=1)), event_data)
        async with units() as uow:
            claimed = await uow.reminders.claim_due(datetime(2100, 1, 1, tzinfo=UTC), int(sys.argv[2]))
            print("claimed", len(claimed), flush=True)
            await asyncio.sleep(3600)  # killed here, holding the rows, before the commit

    asyncio.run(main())
    """
)


async def test_a_replica_killed_while_holding_reminders_loses_none(
    client: httpx.AsyncClient, user: User, replicas: list[SqlUnitsOfWork], db: asyncpg.Connection, database_url: str
) -> None:
    for n in range(30):
        await create_task(client, user, title=f"T{n}", reminders=[{"at": z(SOON + timedelta(seconds=n))}])
    doomed = subprocess.Popen(  # noqa: ASYNC220 - a real process, killed below
        [sys.executable, "-c", SCRIPT, database_url, "10"], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        line = await asyncio.to_thread(doomed.stdout.readline)  # type: ignore[union-attr]
        assert line.strip() == "claimed 10"
        survivor = FireReminders(replicas[0], FakeClock(SOON + timedelta(hours=1)))
        assert await drain(survivor) == 20  # the held ten are skipped, not waited for
    finally:
        os.killpg(doomed.pid, signal.SIGKILL)
        await asyncio.to_thread(doomed.wait)
    for _ in range(100):  # the server notices the dead client and rolls its transaction back
        if await drain(survivor) or len(await due_events(db)) == 30:
            break
        await asyncio.sleep(0.1)
    events = await due_events(db)
    assert len(events) == 30
    assert len({event["data"]["id"] for event in events}) == 30


async def plan_of(connection: asyncpg.Connection, sql: str, arguments: list[Any]) -> dict[str, Any]:
    raw = await connection.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *arguments)
    plan: dict[str, Any] = json.loads(raw)[0]["Plan"]
    return plan


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(nodes(child))
    return found


SEED = """
WITH owner AS (INSERT INTO users (id, email) VALUES ('u' || $1, $1 || '@example.com') RETURNING id),
     inbox AS (INSERT INTO lists (user_id, name, position, is_inbox)
               SELECT id, 'Inbox', 'a0', true FROM owner RETURNING id, user_id),
     made AS (
         INSERT INTO tasks (user_id, list_id, position, title, due_at)
         SELECT inbox.user_id, inbox.id, 'a' || lpad(n::text, 6, '0'), 'T' || n,
                $2::timestamptz + n * interval '1 minute'
         FROM inbox, generate_series(1, $3::int) AS n
         RETURNING id, user_id, due_at
     )
INSERT INTO reminders (task_id, user_id, ordinal, fire_at)
SELECT made.id, made.user_id, 0, made.due_at - interval '15 minutes' FROM made
"""


async def test_the_scheduler_and_the_listing_scan_an_index_over_100_000_armed_reminders(
    db: asyncpg.Connection,
) -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    for user_number in range(10):
        await db.execute(SEED, f"{user_number:02d}", start, 10_000)
    await db.execute("ANALYZE reminders")
    await db.execute("ANALYZE tasks")
    assert await db.fetchval("SELECT count(*) FROM reminders WHERE fired_at IS NULL") == 100_000

    async with db.transaction():  # the claim is an UPDATE: plan it, never run it
        claim = await plan_of(db, _CLAIM.sql, _CLAIM.arguments({"now": start + timedelta(hours=2), "limit": 500}))
    listing = await plan_of(
        db,
        _UPCOMING_FIRST.sql,
        _UPCOMING_FIRST.arguments({"owner": "u05", "start": start, "end": start + timedelta(days=1), "limit": 51}),
    )

    for plan, index in ((claim, "ix_reminders_due"), (listing, "ix_reminders_user_upcoming")):
        seq_scans = [node for node in nodes(plan) if node["Node Type"] == "Seq Scan"]
        assert seq_scans == [], json.dumps(plan, indent=1)
        assert index in {node.get("Index Name") for node in nodes(plan)}, json.dumps(plan, indent=1)
