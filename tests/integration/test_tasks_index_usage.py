"""The listing's SQL on 1,000,000 tasks: every page is an index scan, never a sort of a user's rows;
and migrating those tasks to lists never keeps a read or write of them waiting a second for a lock.

The plans are for the exact statement the repository sends (built with its own helpers), planned
with the same bound values, in a database of its own that the other tests never empty.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from sqlalchemy import ColumnElement, or_, select

from tests.integration.database import asyncpg_dsn, create_database, drop_database, migrate
from todo_api.adapters.sql.engine import Statement
from todo_api.adapters.sql.tables import tasks
from todo_api.adapters.sql.task_listing import _like_pattern, _order_by, page_query
from todo_api.domain.tasks import Position, Sort, TaskFilter, TaskQuery

USERS = 1_000
TASKS = 1_000_000
PAGE = 20
USER = "user0500"
# How a keyset position shows in a plan: `ROW(created_at, id) < ROW(...)`, or `id > ...` after `due_at IS NULL`.
POSITION_BOUND = re.compile(r"ROW\(|\(id [<>]")
SEEDED_AT = datetime(2025, 1, 1, tzinfo=UTC)

SEED_USERS = """
INSERT INTO users (id, email)
SELECT 'user' || lpad(u::text, 4, '0'), 'user' || u || '@example.com'
FROM generate_series(1, $1::int) AS u
"""

# One statement: users' tasks interleaved in time, as real traffic writes them. Per user (n counts
# a user's tasks) a quarter are done, a third have no description, a sixth no due date (the last
# ones by due date, either way); titles and descriptions carry md5 noise so a trigram search has
# something selective to find.
SEED_TASKS = """
INSERT INTO tasks (user_id, title, description, completed, completed_at, priority, tags, due_at,
                   created_at, updated_at)
SELECT 'user' || lpad((1 + i % $2::int)::text, 4, '0'),
       'Task ' || i || ' ' || substr(md5(i::text), 1, 8),
       CASE WHEN n % 3 = 0 THEN NULL ELSE 'Notes ' || substr(md5('d' || i), 1, 8) END,
       n % 4 = 0,
       CASE WHEN n % 4 = 0 THEN at END,
       n % 4,
       CASE n % 5 WHEN 0 THEN '{}'::text[] WHEN 1 THEN '{work}' WHEN 2 THEN '{home,errand}'
                  WHEN 3 THEN '{work,urgent}' ELSE '{home}' END,
       CASE WHEN n % 6 = 0 THEN NULL ELSE at + (n % 90) * interval '1 day' END,
       at,
       at
FROM (
    SELECT i, i / $2::int AS n, $3::timestamptz + i * interval '1 second' AS at
    FROM generate_series(1, $1::int) AS i
) AS s
"""


# Bulk-load the usual way: drop the secondary indexes and the foreign key, insert, then rebuild them
# from the definitions the migrations created (read back from the catalogue, so they are the same
# indexes the application runs on). Building an index once is far faster than 1,000,000 inserts
# into ten of them.
_INDEXES = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tasks' AND indexname <> 'pk_tasks'"
_FOREIGN_KEYS = (
    "SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint "
    "WHERE conrelid = 'tasks'::regclass AND contype = 'f'"
)


async def _seed(url: str) -> float:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        started = time.perf_counter()
        await connection.execute("SET synchronous_commit = off")
        await connection.execute("SET maintenance_work_mem = '256MB'")
        indexes = await connection.fetch(_INDEXES)
        foreign_keys = await connection.fetch(_FOREIGN_KEYS)
        for index in indexes:
            await connection.execute(f'DROP INDEX "{index["indexname"]}"')
        for key in foreign_keys:
            await connection.execute(f'ALTER TABLE tasks DROP CONSTRAINT "{key["conname"]}"')
        await connection.execute(SEED_USERS, USERS)
        await connection.execute(SEED_TASKS, TASKS, USERS, SEEDED_AT)
        for index in indexes:
            await connection.execute(index["indexdef"])
        for key in foreign_keys:
            await connection.execute(f'ALTER TABLE tasks ADD CONSTRAINT "{key["conname"]}" {key["definition"]}')
        elapsed = time.perf_counter() - started
        assert {tuple(row) for row in await connection.fetch(_INDEXES)} == {tuple(row) for row in indexes}
        return elapsed
    finally:
        await connection.close()


BEFORE_LISTS = "792542178fcf"  # the revision before lists: the million tasks are seeded there, then migrated
# Issue 13: no lock of the migration may keep a read or write of `tasks` waiting longer than about a
# second. Each probe statement has this as its lock_timeout, so the server itself cancels one that
# waits longer; only time spent waiting for a lock counts, not a busy machine's slowness.
LOCK_WAIT_BOUND_S = 1.0
SAMPLE_EVERY_S = 0.02
PROBE_READ = "SELECT id, title FROM tasks WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 20"
PROBE_WRITE = "UPDATE tasks SET updated_at = updated_at WHERE id = $1"
# The locks the probes are waiting for: since when, and behind which statement (the one holding the
# lock or queued for it ahead of the probe) in a transaction open how long.
LOCK_WAITS = r"""
SELECT waiting.pid, waiting.waitstart,
       extract(epoch FROM clock_timestamp() - waiting.waitstart)::float8 AS waited_s,
       blocker.backend_type || ': ' || left(regexp_replace(blocker.query, '\s+', ' ', 'g'), 100)
           || format(' (in a transaction open %s s)',
                     round(extract(epoch FROM clock_timestamp() - blocker.xact_start)::numeric, 1))
           AS behind
FROM pg_locks AS waiting
LEFT JOIN LATERAL unnest(pg_blocking_pids(waiting.pid)) AS blocking(pid) ON true
LEFT JOIN pg_stat_activity AS blocker ON blocker.pid = blocking.pid
WHERE NOT waiting.granted AND waiting.waitstart IS NOT NULL AND waiting.pid = ANY($1::int[])
"""


@dataclass
class LockWaits:
    """One kind of probe statement, as the running app sends it, while the migration runs."""

    kind: str
    statements: int = 0
    gave_up: int = 0  # cancelled after waiting LOCK_WAIT_BOUND_S for a lock
    longest_s: float = 0.0  # the longest lock wait the sampling saw
    behind: str = "nothing"  # the migration's statement (its phase) that the longest wait was behind
    slowest_s: float = 0.0  # the slowest statement from send to answer, CPU and I/O included
    _wait: tuple[datetime, str] | None = None  # the wait seen last: since when, behind what

    def saw(self, since: datetime, waited_s: float, behind: str | None) -> None:
        """A sample can fall between a lock's release and its grant, with no blocker left to name."""
        if behind is None:
            behind = self._wait[1] if self._wait is not None and self._wait[0] == since else "?"
        self._wait = since, behind
        if waited_s > self.longest_s:
            self.longest_s, self.behind = waited_s, behind

    def __str__(self) -> str:
        return (
            f"{self.statements:,} {self.kind}s: longest lock wait {self.longest_s * 1000:.0f} ms, behind "
            f"[{self.behind}]; {self.gave_up} gave up at {LOCK_WAIT_BOUND_S:g} s; "
            f"slowest {self.kind} {self.slowest_s * 1000:.0f} ms end to end"
        )


@dataclass
class Traffic:
    reads: LockWaits = field(default_factory=lambda: LockWaits("read"))
    writes: LockWaits = field(default_factory=lambda: LockWaits("write"))
    samples: int = 0  # how many times the locks were looked at


async def _probe(send: Callable[[int], Awaitable[object]], waits: LockWaits, done: asyncio.Event) -> None:
    while not done.is_set():
        started = time.perf_counter()
        try:
            await send(waits.statements)
        except asyncpg.LockNotAvailableError:
            waits.gave_up += 1
        waits.statements += 1
        waits.slowest_s = max(waits.slowest_s, time.perf_counter() - started)
        await asyncio.sleep(0.01)


async def _sample_lock_waits(
    connection: asyncpg.Connection, probes: dict[int, LockWaits], traffic: Traffic, done: asyncio.Event
) -> None:
    while not done.is_set():
        for row in await connection.fetch(LOCK_WAITS, list(probes)):
            probes[row["pid"]].saw(row["waitstart"], row["waited_s"], row["behind"])
        traffic.samples += 1
        await asyncio.sleep(SAMPLE_EVERY_S)


async def _migrate_under_traffic(url: str) -> tuple[float, Traffic]:
    """Migrate to head while one connection reads USER's tasks and another writes them, each
    statement on its own, and a third looks at the locks they wait for every SAMPLE_EVERY_S."""
    traffic = Traffic()
    probing = {"lock_timeout": f"{LOCK_WAIT_BOUND_S * 1000:.0f}ms"}
    reader = await asyncpg.connect(asyncpg_dsn(url), server_settings=probing)
    writer = await asyncpg.connect(asyncpg_dsn(url), server_settings=probing)
    watcher = await asyncpg.connect(asyncpg_dsn(url))
    try:
        task_ids = [row["id"] for row in await writer.fetch("SELECT id FROM tasks WHERE user_id = $1", USER)]
        probes = {reader.get_server_pid(): traffic.reads, writer.get_server_pid(): traffic.writes}
        done = asyncio.Event()
        running = [
            asyncio.create_task(_probe(lambda _: reader.fetch(PROBE_READ, USER), traffic.reads, done)),
            asyncio.create_task(
                _probe(lambda n: writer.execute(PROBE_WRITE, task_ids[n % len(task_ids)]), traffic.writes, done)
            ),
            asyncio.create_task(_sample_lock_waits(watcher, probes, traffic, done)),
        ]
        started = time.perf_counter()
        try:
            await asyncio.to_thread(migrate, url)
        finally:
            done.set()
            await asyncio.gather(*running)
        return time.perf_counter() - started, traffic
    finally:
        for connection in (reader, writer, watcher):
            await connection.close()


@dataclass(frozen=True)
class MigratedMillion:
    url: str
    traffic: Traffic


@pytest.fixture(scope="module")
def million_tasks(server_url: str, request: pytest.FixtureRequest) -> Iterator[MigratedMillion]:
    """1,000 users and 1,000,000 tasks seeded before lists existed, then migrated to head while
    the tasks are read and written."""
    url = create_database(server_url)
    try:
        migrate(url, BEFORE_LISTS)
        seconds = asyncio.run(_seed(url))
        migrated_s, traffic = asyncio.run(_migrate_under_traffic(url))
        asyncio.run(_analyse(url))
        message = (
            f"seeded {USERS:,} users and {TASKS:,} tasks in {seconds:.1f} s; migrated to head in {migrated_s:.1f} s "
            f"under traffic ({traffic.samples:,} looks at the locks):\n  {traffic.reads}\n  {traffic.writes}"
        )
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        if capture is None:
            print(f"\n{message}")
        else:
            with capture.global_and_fixture_disabled():
                print(f"\n{message}")
        yield MigratedMillion(url, traffic)
    finally:
        drop_database(server_url, url)


async def _analyse(url: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


@pytest.fixture
async def big_db(million_tasks: MigratedMillion) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(asyncpg_dsn(million_tasks.url))
    yield connection
    await connection.close()


def test_migrating_a_million_tasks_never_keeps_a_read_or_write_waiting_a_second_for_a_lock(
    million_tasks: MigratedMillion,
) -> None:
    traffic = million_tasks.traffic
    for waits in (traffic.reads, traffic.writes):
        assert waits.gave_up == 0, str(waits)
        assert waits.longest_s < LOCK_WAIT_BOUND_S, str(waits)
    # Without traffic and sampling all along the migration, nothing was tested.
    assert min(traffic.reads.statements, traffic.writes.statements, traffic.samples) >= 1_000, (
        f"{traffic.reads}; {traffic.writes}; {traffic.samples} samples"
    )


Page = tuple[Statement, list[Any]]


def listing(sort: str, task_filter: TaskFilter | None = None, after: Position | None = None) -> Page:
    """Exactly the statement and arguments `SqlTaskRepository.list` sends for this page."""
    query = TaskQuery(filter=task_filter or TaskFilter(), sort=Sort.parse(sort), limit=PAGE, after=after)
    statement, values = page_query(USER, query, datetime.now(UTC))
    return statement, statement.arguments(values)


async def plan_of(connection: asyncpg.Connection, statement: Page) -> dict[str, Any]:
    """`EXPLAIN (FORMAT JSON)` of the SQL asyncpg is sent, with the same bound values."""
    compiled, arguments = statement
    raw = await connection.fetchval(f"EXPLAIN (FORMAT JSON) {compiled.sql}", *arguments)
    plan: dict[str, Any] = json.loads(raw)[0]["Plan"]
    return plan


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(nodes(child))
    return found


def node_types(plan: dict[str, Any]) -> list[str]:
    return [str(node["Node Type"]) for node in nodes(plan)]


def index_scans(plan: dict[str, Any]) -> dict[str, str]:
    """Index name -> node type, for every node that reads an index."""
    return {str(node["Index Name"]): str(node["Node Type"]) for node in nodes(plan) if "Index Name" in node}


def assert_keyset_scan(plan: dict[str, Any], index: str) -> None:
    """The rows come out of `index` already in order: no sort, no sequential scan."""
    assert index_scans(plan).get(index) == "Index Scan", json.dumps(plan, indent=1)
    assert not {"Sort", "Incremental Sort", "Seq Scan"} & set(node_types(plan)), json.dumps(plan, indent=1)


def assert_position_is_where_the_scan_starts(plan: dict[str, Any], index: str) -> None:
    """The keyset position bounds the index range (`Index Cond`), so a deep page reads about as
    many index entries as the first; as a `Filter` the scan would read, and drop, every row before it."""
    scan = next(node for node in nodes(plan) if node.get("Index Name") == index)
    assert POSITION_BOUND.search(scan.get("Index Cond", "")), json.dumps(scan, indent=1)
    assert "Filter" not in scan, json.dumps(scan, indent=1)


async def a_position(connection: asyncpg.Connection, sort: str, depth: int) -> Position:
    """Where page `depth // PAGE` of USER's listing would start: a real keyset position."""
    order = Sort.parse(sort)
    column = "lower(title)" if order.field == "title" else order.field
    direction = "DESC" if order.descending else "ASC"
    nulls = " NULLS LAST" if order.field == "due_at" else ""
    row = await connection.fetchrow(
        f"SELECT {column} AS value, id FROM tasks WHERE user_id = $1 "  # noqa: S608 - fixed names only
        f"ORDER BY {column} {direction}{nulls}, id {direction} OFFSET $2 LIMIT 1",
        USER,
        depth,
    )
    assert row is not None
    return Position(row["value"], row["id"])


async def test_the_seeded_database_holds_a_million_tasks_for_a_thousand_users(big_db: asyncpg.Connection) -> None:
    assert await big_db.fetchval("SELECT count(*) FROM tasks") == TASKS
    assert await big_db.fetchval("SELECT count(DISTINCT user_id) FROM tasks") == USERS


async def test_default_listing_first_page_is_an_index_scan_on_user_created(big_db: asyncpg.Connection) -> None:
    assert_keyset_scan(await plan_of(big_db, listing("-created_at")), "ix_tasks_user_created")


async def test_default_listing_deep_page_is_an_index_scan_on_user_created(big_db: asyncpg.Connection) -> None:
    position = await a_position(big_db, "-created_at", depth=900)
    plan = await plan_of(big_db, listing("-created_at", after=position))
    assert_keyset_scan(plan, "ix_tasks_user_created")
    assert_position_is_where_the_scan_starts(plan, "ix_tasks_user_created")


INDEX_BY_SORT = {
    "created_at": "ix_tasks_user_created",
    "-created_at": "ix_tasks_user_created",
    "updated_at": "ix_tasks_user_updated",
    "-updated_at": "ix_tasks_user_updated",
    "due_at": "ix_tasks_user_due",
    "-due_at": "ix_tasks_user_due_desc",
    "priority": "ix_tasks_user_priority",
    "-priority": "ix_tasks_user_priority",
    "title": "ix_tasks_user_title",
    "-title": "ix_tasks_user_title",
}


@pytest.mark.parametrize(("sort", "index"), INDEX_BY_SORT.items())
async def test_every_sort_reads_its_first_page_in_order_from_its_index(
    big_db: asyncpg.Connection, sort: str, index: str
) -> None:
    assert_keyset_scan(await plan_of(big_db, listing(sort)), index)


@pytest.mark.parametrize("depth", [400, 900], ids=["page-21", "page-46"])
@pytest.mark.parametrize(("sort", "index"), INDEX_BY_SORT.items())
async def test_every_sort_starts_a_deep_page_at_its_keyset_position_in_its_index(
    big_db: asyncpg.Connection, sort: str, index: str, depth: int
) -> None:
    # A sixth of a user's tasks have no due date and sort last: for due_at, depth 900 is among them.
    position = await a_position(big_db, sort, depth=depth)
    plan = await plan_of(big_db, listing(sort, after=position))
    assert_keyset_scan(plan, index)
    assert_position_is_where_the_scan_starts(plan, index)


# --- Lists and the person's order (the migration placed every task in its user's Inbox) ------------


async def inbox_of(connection: asyncpg.Connection, user_id: str = USER) -> int:
    inbox: int = await connection.fetchval("SELECT id FROM lists WHERE user_id = $1 AND is_inbox", user_id)
    return inbox


async def test_the_migration_put_every_task_in_its_users_inbox_in_creation_order(big_db: asyncpg.Connection) -> None:
    assert await big_db.fetchval("SELECT count(*) FROM lists WHERE is_inbox") == USERS
    misplaced = await big_db.fetchval(
        "SELECT count(*) FROM tasks JOIN lists ON lists.id = tasks.list_id "
        "WHERE NOT lists.is_inbox OR lists.user_id <> tasks.user_id OR tasks.parent_id IS NOT NULL"
    )
    assert misplaced == 0
    by_position = await big_db.fetch("SELECT id FROM tasks WHERE user_id = $1 ORDER BY position, id", USER)
    assert [row["id"] for row in by_position] == sorted(row["id"] for row in by_position)
    assert (
        await big_db.fetchval("SELECT count(DISTINCT position) FROM tasks WHERE user_id = $1", USER) == TASKS // USERS
    )


async def test_a_list_in_the_persons_order_reads_its_first_page_from_the_position_index(
    big_db: asyncpg.Connection,
) -> None:
    in_inbox = TaskFilter(list_id=await inbox_of(big_db), top_level=True)
    assert_keyset_scan(await plan_of(big_db, listing("position", in_inbox)), "ix_tasks_user_list_position")


@pytest.mark.parametrize("depth", [400, 900], ids=["page-21", "page-46"])
async def test_a_deep_page_in_the_persons_order_starts_at_its_position_in_the_index(
    big_db: asyncpg.Connection, depth: int
) -> None:
    in_inbox = TaskFilter(list_id=await inbox_of(big_db), top_level=True)
    position = await a_position(big_db, "position", depth=depth)
    plan = await plan_of(big_db, listing("position", in_inbox, after=position))
    assert_keyset_scan(plan, "ix_tasks_user_list_position")
    assert_position_is_where_the_scan_starts(plan, "ix_tasks_user_list_position")


async def test_the_subtasks_of_a_task_come_from_the_parent_index(big_db: asyncpg.Connection) -> None:
    plan = await plan_of(big_db, listing("position", TaskFilter(parent_id=777_499)))
    assert index_scans(plan).get("ix_tasks_parent_position") == "Index Scan", json.dumps(plan, indent=1)
    assert "Seq Scan" not in node_types(plan)


async def test_a_list_filter_reads_an_index_not_the_table(big_db: asyncpg.Connection) -> None:
    plan = await plan_of(big_db, listing("-created_at", TaskFilter(list_id=await inbox_of(big_db))))
    assert index_scans(plan), json.dumps(plan, indent=1)
    assert "Seq Scan" not in node_types(plan)


async def a_needle(connection: asyncpg.Connection) -> str:
    """Six characters of the md5 noise in one of USER's titles (row 777,499 belongs to user 500)."""
    needle: str = await connection.fetchval("SELECT substr(md5('777499'), 2, 6)")
    assert await connection.fetchval(
        "SELECT count(*) FROM tasks WHERE user_id = $1 AND title LIKE $2", USER, f"%{needle}%"
    )
    return needle


def search_condition(text: str) -> ColumnElement[bool]:
    pattern = _like_pattern(text)
    return or_(tasks.c.title.ilike(pattern, escape="\\"), tasks.c.description.ilike(pattern, escape="\\"))


async def test_search_across_all_users_uses_both_trigram_indexes(big_db: asyncpg.Connection) -> None:
    needle = await a_needle(big_db)
    order = Sort.parse("-created_at")
    statement = Statement(select(tasks).where(search_condition(needle)).order_by(*_order_by(order)).limit(PAGE + 1))
    plan = await plan_of(big_db, (statement, statement.arguments({})))
    scans = index_scans(plan)
    assert scans.get("ix_tasks_title_trgm") == "Bitmap Index Scan", json.dumps(plan, indent=1)
    assert scans.get("ix_tasks_description_trgm") == "Bitmap Index Scan", json.dumps(plan, indent=1)
    assert "Seq Scan" not in node_types(plan)


async def test_search_within_one_user_ands_the_trigram_indexes_with_the_users_rows(
    big_db: asyncpg.Connection,
) -> None:
    needle = await a_needle(big_db)
    plan = await plan_of(big_db, listing("-created_at", TaskFilter(search=needle)))
    # What PostgreSQL 18 chooses here: a BitmapAnd of the user's rows (from whichever index leads
    # with user_id, e.g. ix_tasks_user_priority) with the BitmapOr of both trigram indexes, then a
    # top-N sort of the handful of matches. A sort is right for a search: the matches are few, and
    # walking the user's 1,000 rows in created_at order to filter them would cost more. Were a user's
    # set small enough for the planner to prefer reading it through ix_tasks_user_created and
    # filtering, that would be fine too; what must never happen is a sequential scan of the table.
    # Which of the two the planner takes depends on ANALYZE's sample (a fresh clone's CI once read
    # the user's rows through ix_tasks_user_updated and filtered them): both are right.
    scans = index_scans(plan)
    trigrams = {scans.get("ix_tasks_title_trgm"), scans.get("ix_tasks_description_trgm")}
    assert trigrams in ({"Bitmap Index Scan"}, {None}), json.dumps(plan, indent=1)
    assert any(name.startswith("ix_tasks_user_") for name in scans), json.dumps(plan, indent=1)
    assert "Seq Scan" not in node_types(plan)
