"""Lists, subtasks, order and bulk changes on a real PostgreSQL, through the use cases and the SQL
repositories (the HTTP routes have their own tests): the rules the database must keep under
concurrency, and the statements behind them."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from tests.integration.conftest import make_settings
from todo_api.adapters.calendar.rrule import RruleRecurrences
from todo_api.adapters.http.schemas import event_data
from todo_api.adapters.sql.engine import ConnectionPool, Statement
from todo_api.adapters.sql.unit_of_work import SqlUnitsOfWork
from todo_api.domain.bulk import BulkOperation
from todo_api.domain.errors import Conflict, InvalidInput, NotFound
from todo_api.domain.lists import MAX_LISTS_PER_USER
from todo_api.domain.ordering import is_strictly_ordered
from todo_api.domain.tasks import Priority, Sort, Task, TaskDraft, TaskFilter, TaskQuery
from todo_api.main import SystemClock, pool_options
from todo_api.use_cases.bulk import BulkChangeTasks
from todo_api.use_cases.lists import CreateList, DeleteList, GetList, MoveList, UpdateList
from todo_api.use_cases.tasks import CreateTask, ListTasks, Move, MoveTask, SetTaskCompletion

RULES = RruleRecurrences()

ADA, BOB = "ada", "bob"
ROUNDS = 30  # of a race: enough that one which can go wrong did, in every run before the fix


@pytest.fixture
async def units(database_url: str, db: asyncpg.Connection) -> AsyncIterator[SqlUnitsOfWork]:
    for user in (ADA, BOB):
        await db.execute("INSERT INTO users (id, email) VALUES ($1, $2)", user, f"{user}@example.com")
    pool = ConnectionPool(pool_options(make_settings(db_pool_size=25), database_url))
    yield SqlUnitsOfWork(pool, event_data)
    await pool.close()


async def add(units: SqlUnitsOfWork, title: str, **place: int) -> Task:
    draft = TaskDraft(title, list_id=place.get("list_id"), parent_id=place.get("parent_id"))
    return (await CreateTask(units, SystemClock(), RULES).execute(ADA, draft)).task


def pairs(rows: list[asyncpg.Record]) -> dict[Any, Any]:
    return {row[0]: row[1] for row in rows}


async def order_of(db: asyncpg.Connection, list_id: int, parent_id: int | None = None) -> list[str]:
    rows = await db.fetch(
        "SELECT title FROM tasks WHERE list_id = $1 AND parent_id IS NOT DISTINCT FROM $2 ORDER BY position, id",
        list_id,
        parent_id,
    )
    return [row["title"] for row in rows]


async def test_a_first_task_makes_the_inbox_and_later_ones_go_after_it(
    units: SqlUnitsOfWork, db: asyncpg.Connection
) -> None:
    first, second = await add(units, "First"), await add(units, "Second")
    assert first.list_id == second.list_id
    assert await db.fetchval("SELECT is_inbox FROM lists WHERE id = $1", first.list_id)
    assert await order_of(db, first.list_id) == ["First", "Second"]


async def test_list_names_are_unique_per_user_whatever_their_case_and_the_unit_stays_usable(
    units: SqlUnitsOfWork,
) -> None:
    create = CreateList(units, SystemClock())
    await create.execute(ADA, "Work")
    with pytest.raises(Conflict) as refused:
        await create.execute(ADA, "wORK")
    assert refused.value.code == "list_name_taken"
    assert (await create.execute(BOB, "Work")).user_id == BOB


async def test_counts_come_with_the_list(units: SqlUnitsOfWork) -> None:
    work = await CreateList(units, SystemClock()).execute(ADA, "Work")
    await add(units, "Open", list_id=work.id)
    done = await add(units, "Done", list_id=work.id)
    await SetTaskCompletion(units, SystemClock(), RULES).execute(ADA, done.id, True)
    counted = await GetList(units).execute(ADA, work.id)
    assert (counted.open_count, counted.total_count) == (1, 2)


async def test_renaming_onto_a_taken_name_is_a_409(units: SqlUnitsOfWork) -> None:
    create = CreateList(units, SystemClock())
    await create.execute(ADA, "Home")
    work = await create.execute(ADA, "Work")
    with pytest.raises(Conflict):
        await UpdateList(units, SystemClock()).execute(ADA, work.id, name="HOME")


async def test_a_cascade_delete_takes_the_tasks_and_subtasks_with_it(
    units: SqlUnitsOfWork, db: asyncpg.Connection
) -> None:
    work = await CreateList(units, SystemClock()).execute(ADA, "Work")
    parent = await add(units, "Report", list_id=work.id)
    await add(units, "Outline", parent_id=parent.id)
    with pytest.raises(Conflict):
        await DeleteList(units, SystemClock()).execute(ADA, work.id)
    await DeleteList(units, SystemClock()).execute(ADA, work.id, cascade=True)
    assert await db.fetchval("SELECT count(*) FROM tasks") == 0


async def create_into(units: SqlUnitsOfWork, list_id: int) -> Task | None:
    try:
        return await add(units, "Racing", list_id=list_id)
    except NotFound:
        return None


async def test_a_cascade_delete_racing_creates_into_the_list_leaves_no_orphan(
    units: SqlUnitsOfWork, db: asyncpg.Connection
) -> None:
    for round_ in range(5):
        work = await CreateList(units, SystemClock()).execute(ADA, f"Doomed {round_}")
        await add(units, "Seed", list_id=work.id)

        outcomes = await asyncio.gather(
            DeleteList(units, SystemClock()).execute(ADA, work.id, cascade=True),
            *(create_into(units, work.id) for _ in range(10)),
        )
        assert outcomes[0] is None
        assert await db.fetchval("SELECT count(*) FROM tasks WHERE list_id = $1", work.id) == 0
        assert (
            await db.fetchval("SELECT count(*) FROM tasks t LEFT JOIN lists l ON l.id = t.list_id WHERE l.id IS NULL")
            == 0
        )


async def test_a_create_takes_the_lists_lock_before_the_feeds_so_a_delete_holding_the_list_is_not_deadlocked(
    units: SqlUnitsOfWork, db: asyncpg.Connection, database_url: str
) -> None:
    """A cascade delete locks the list, then the person's feed counter; a create writes its row
    and its event in one statement, whose foreign-key checks run last. Unless that statement takes
    the list's lock before the counter's, each would wait for the other."""
    work = await CreateList(units, SystemClock()).execute(ADA, "Doomed")
    deleting = await asyncpg.connect(database_url)
    try:
        transaction = deleting.transaction()
        await transaction.start()
        await deleting.execute("SELECT 1 FROM lists WHERE id = $1 FOR UPDATE", work.id)
        creating = asyncio.ensure_future(add(units, "Late", list_id=work.id))
        await asyncio.sleep(0.5)  # the create reached the list's lock, and waits there
        assert not creating.done()
        await deleting.execute("SET LOCAL lock_timeout = '300ms'")  # under deadlock_timeout: no wait at all
        await deleting.execute("UPDATE change_feeds SET position = position WHERE user_id = $1", ADA)
        await deleting.execute("DELETE FROM lists WHERE id = $1", work.id)
        await transaction.commit()
        with pytest.raises(NotFound) as refused:
            await creating
    finally:
        await deleting.close()
    assert refused.value.code == "list_not_found"
    assert await db.fetchval("SELECT count(*) FROM tasks WHERE title = 'Late'") == 0
    assert await db.fetchval("SELECT count(*) FROM events WHERE payload->'data'->>'title' = 'Late'") == 0


async def test_concurrent_creations_at_the_cap_make_exactly_one_list_and_distinct_keys(
    units: SqlUnitsOfWork, db: asyncpg.Connection
) -> None:
    create = CreateList(units, SystemClock())
    await create.execute(ADA, "First")  # and the Inbox
    await db.execute(
        "INSERT INTO lists (user_id, name, position) SELECT $1::text, 'List ' || n, 'b' || lpad(n::text, 4, '0') "
        "FROM generate_series(1, $2::int) AS n",
        ADA,
        MAX_LISTS_PER_USER - 3,
    )
    outcomes = await asyncio.gather(*(create.execute(ADA, f"Racer {n}") for n in range(8)), return_exceptions=True)
    assert sum(not isinstance(outcome, BaseException) for outcome in outcomes) == 1, outcomes
    assert all(getattr(outcome, "code", "ok") in ("ok", "too_many_lists") for outcome in outcomes), outcomes
    assert await db.fetchval("SELECT count(*) FROM lists WHERE user_id = $1", ADA) == MAX_LISTS_PER_USER
    await db.execute("DELETE FROM lists WHERE user_id = $1 AND name LIKE 'List %'", ADA)
    racers = await asyncio.gather(*(create.execute(ADA, f"Sprinter {n}") for n in range(8)))
    assert len({racer.position for racer in racers}) == len(racers)


async def test_lists_dropped_into_one_gap_at_once_all_get_distinct_keys(
    units: SqlUnitsOfWork, db: asyncpg.Connection
) -> None:
    create, move = CreateList(units, SystemClock()), MoveList(units, SystemClock())
    first = await create.execute(ADA, "First")
    movers = [await create.execute(ADA, f"Mover {n}") for n in range(6)]
    for _ in range(3):
        await asyncio.gather(*(move.execute(ADA, mover.id, after_id=first.id) for mover in movers))
        keys = [row["position"] for row in await db.fetch("SELECT position FROM lists WHERE user_id = $1", ADA)]
        assert len(set(keys)) == len(keys), sorted(keys)


async def test_two_lists_renamed_to_one_name_at_once_give_one_list_name_taken(units: SqlUnitsOfWork) -> None:
    create, rename = CreateList(units, SystemClock()), UpdateList(units, SystemClock())
    for round_ in range(ROUNDS // 3):
        a, b = await create.execute(ADA, f"A{round_}"), await create.execute(ADA, f"B{round_}")
        outcomes = await asyncio.gather(
            rename.execute(ADA, a.id, name=f"Same {round_}"),
            rename.execute(ADA, b.id, name=f"same {round_}"),
            return_exceptions=True,
        )
        codes = sorted(getattr(outcome, "code", "ok") for outcome in outcomes)
        assert codes == ["list_name_taken", "ok"], outcomes


async def test_moving_writes_one_row_and_keeps_a_strict_order(units: SqlUnitsOfWork, db: asyncpg.Connection) -> None:
    a, _b, c = [await add(units, title) for title in "ABC"]
    versions: dict[int, int] = pairs(await db.fetch("SELECT id, version FROM tasks"))
    await MoveTask(units, SystemClock()).execute(ADA, c.id, Move(after_id=a.id))
    assert await order_of(db, a.list_id) == ["A", "C", "B"]
    after: dict[int, int] = pairs(await db.fetch("SELECT id, version FROM tasks"))
    assert {task_id for task_id in after if after[task_id] != versions[task_id]} == {c.id}


async def test_two_clients_moving_into_the_same_gap_at_once_both_succeed_in_a_total_order(
    units: SqlUnitsOfWork, db: asyncpg.Connection
) -> None:
    a, _b, c, d = [await add(units, title) for title in "ABCD"]
    move = MoveTask(units, SystemClock())
    await asyncio.gather(move.execute(ADA, c.id, Move(after_id=a.id)), move.execute(ADA, d.id, Move(after_id=a.id)))
    order = await order_of(db, a.list_id)
    assert order[0] == "A"
    assert set(order[1:3]) == {"C", "D"}
    assert order[3] == "B"
    keys = [row["position"] for row in await db.fetch("SELECT position FROM tasks ORDER BY position, id")]
    assert is_strictly_ordered(keys)  # the anchor lock made them take turns: no tie
    assert order == await order_of(db, a.list_id)  # stable


async def test_drops_into_one_gap_from_both_sides_at_once_get_distinct_keys(
    units: SqlUnitsOfWork, db: asyncpg.Connection
) -> None:
    move = MoveTask(units, SystemClock())
    for _ in range(10):
        await db.execute("DELETE FROM tasks")
        a, b, c, d = [await add(units, title) for title in "ABCD"]
        await asyncio.gather(
            move.execute(ADA, c.id, Move(after_id=a.id)), move.execute(ADA, d.id, Move(before_id=b.id))
        )
        keys = [row["position"] for row in await db.fetch("SELECT position FROM tasks ORDER BY position, id")]
        assert is_strictly_ordered(keys), keys
        order = await order_of(db, a.list_id)
        assert (order[0], set(order[1:3]), order[3]) == ("A", {"C", "D"}, "B")


async def parents(db: asyncpg.Connection) -> dict[int, int | None]:
    return pairs(await db.fetch("SELECT id, parent_id FROM tasks"))


async def test_moves_racing_to_close_a_loop_never_make_a_cycle(units: SqlUnitsOfWork, db: asyncpg.Connection) -> None:
    """Z > Y and X > W; at once X goes under Y and Z under W. Each check alone passes (Y is not
    under X, W is not under Z) and the two lock disjoint rows, yet together they close
    X > Y ... Z > W ... X: only a turn per person keeps the second check honest."""
    move = MoveTask(units, SystemClock())
    for _ in range(ROUNDS):
        await db.execute("DELETE FROM tasks")
        z, x = await add(units, "Z"), await add(units, "X")
        y, w = await add(units, "Y", parent_id=z.id), await add(units, "W", parent_id=x.id)
        outcomes = await asyncio.gather(
            move.execute(ADA, x.id, Move(parent_id=y.id)),
            move.execute(ADA, z.id, Move(parent_id=w.id)),
            return_exceptions=True,
        )
        refused = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        assert [getattr(error, "code", repr(error)) for error in refused] == ["cycle"], outcomes
        tree = await parents(db)
        for task_id in tree:  # every task reaches the top level
            seen: set[int] = set()
            node: int | None = task_id
            while node is not None:
                assert node not in seen, f"cycle through {node}: {tree}"
                seen.add(node)
                node = tree[node]


async def test_a_subtask_created_while_its_parent_changes_lists_lands_in_the_parents_new_list(
    units: SqlUnitsOfWork, db: asyncpg.Connection
) -> None:
    move = MoveTask(units, SystemClock())
    work = await CreateList(units, SystemClock()).execute(ADA, "Work")
    for round_ in range(10):
        parent = await add(units, f"Parent {round_}")
        await asyncio.gather(
            move.execute(ADA, parent.id, Move(list_id=work.id)),
            *(add(units, f"Child {round_}.{n}", parent_id=parent.id) for n in range(3)),
        )
        lists = {
            row["list_id"]
            for row in await db.fetch("SELECT list_id FROM tasks WHERE id = $1 OR parent_id = $1", parent.id)
        }
        assert lists == {work.id}


async def test_a_plain_delete_racing_a_create_into_the_list_never_loses_the_task(
    units: SqlUnitsOfWork, db: asyncpg.Connection
) -> None:
    for round_ in range(ROUNDS):
        work = await CreateList(units, SystemClock()).execute(ADA, f"Contested {round_}")
        deleted, created = await asyncio.gather(
            DeleteList(units, SystemClock()).execute(ADA, work.id), create_into(units, work.id), return_exceptions=True
        )
        if isinstance(deleted, Conflict):  # the task got in first: the list stays, with it
            assert isinstance(created, Task)
            assert await db.fetchval("SELECT list_id FROM tasks WHERE id = $1", created.id) == work.id
        else:  # the delete got in first: the create found no list
            assert (deleted, created) == (None, None)
            assert await db.fetchval("SELECT count(*) FROM tasks WHERE list_id = $1", work.id) == 0


async def test_subtasks_complete_with_their_parent_and_move_lists_with_it(
    units: SqlUnitsOfWork, db: asyncpg.Connection
) -> None:
    home = await CreateList(units, SystemClock()).execute(ADA, "Home")
    parent = await add(units, "Report")
    child = await add(units, "Outline", parent_id=parent.id)
    grandchild = await add(units, "Sources", parent_id=child.id)
    await MoveTask(units, SystemClock()).execute(ADA, parent.id, Move(list_id=home.id))
    assert [row["list_id"] for row in await db.fetch("SELECT DISTINCT list_id FROM tasks")] == [home.id]
    await SetTaskCompletion(units, SystemClock(), RULES).execute(ADA, parent.id, True)
    rows: dict[int, bool] = pairs(await db.fetch("SELECT id, completed FROM tasks"))
    assert rows == {parent.id: True, child.id: True, grandchild.id: True}
    with pytest.raises(InvalidInput) as refused:
        await MoveTask(units, SystemClock()).execute(ADA, parent.id, Move(parent_id=grandchild.id))
    assert refused.value.code == "cycle"


async def test_twenty_concurrent_bulk_completes_of_overlapping_sets_lose_no_update(
    units: SqlUnitsOfWork, db: asyncpg.Connection
) -> None:
    tasks = [await add(units, f"T{number}") for number in range(30)]
    ids = [task.id for task in tasks]
    bulk = BulkChangeTasks(units, SystemClock(), RULES)
    sets = [tuple(ids[start : start + 10]) for start in range(20)]
    outcomes = await asyncio.gather(
        *(
            # Each completes its set and leaves its mark, so a lost write would show.
            bulk.execute(ADA, [BulkOperation("complete", chosen), BulkOperation("update", chosen, add_tags=(f"b{n}",))])
            for n, chosen in enumerate(sets)
        )
    )
    assert all(outcome.outcome.applied for outcome in outcomes)
    assert await db.fetchval(
        "SELECT bool_and(completed AND completed_at IS NOT NULL) FROM tasks WHERE id = ANY($1)", ids[:29]
    )
    assert await db.fetchval("SELECT completed FROM tasks WHERE id = $1", ids[29]) is False  # in no set
    tags: dict[int, list[str]] = pairs(await db.fetch("SELECT id, tags FROM tasks"))
    versions: dict[int, int] = pairs(await db.fetch("SELECT id, version FROM tasks"))
    for task_id in ids:
        expected = {f"b{n}" for n, chosen in enumerate(sets) if task_id in chosen}
        assert set(tags[task_id]) == expected  # every bulk's tag landed: none overwrote another's
        assert versions[task_id] == 1 + len(expected)  # one version per bulk that changed it


async def test_a_bulk_reaching_into_a_named_subtree_leaves_what_single_calls_would(
    units: SqlUnitsOfWork, db: asyncpg.Connection
) -> None:
    work = await CreateList(units, SystemClock()).execute(ADA, "Work")
    p = await add(units, "P")
    c = await add(units, "C", parent_id=p.id)
    await add(units, "G", parent_id=c.id)
    operations = [
        BulkOperation("complete", (p.id,)),  # completes C and G ...
        BulkOperation("reopen", (c.id,)),  # ... then C is reopened; G stays completed
        BulkOperation("move", (p.id,), list_id=work.id),  # C and G follow P
        BulkOperation("update", (c.id,), priority=Priority.HIGH),
    ]
    outcome = await BulkChangeTasks(units, SystemClock(), RULES).execute(ADA, operations)
    assert [result.code for result in outcome.outcome.results] == ["ok"] * 4
    rows = {
        row["title"]: row for row in await db.fetch("SELECT title, completed, list_id, priority, version FROM tasks")
    }
    assert {title: (r["completed"], r["list_id"], r["priority"]) for title, r in rows.items()} == {
        "P": (True, work.id, 0),
        "C": (False, work.id, 3),
        "G": (True, work.id, 0),
    }
    assert (rows["C"]["version"], rows["G"]["version"]) == (2, 3)  # C written once; G completed, then moved


async def test_a_bulk_of_a_hundred_is_a_handful_of_statements(
    units: SqlUnitsOfWork, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = [await add(units, f"T{number}") for number in range(100)]
    children = [await add(units, f"Sub {number}", parent_id=tasks[number].id) for number in range(10)]
    sent: list[str] = []
    for name in ("fetch", "fetchrow", "fetchval", "execute"):
        original = getattr(Statement, name)

        async def counted(self: Statement, connection: Any, _original: Any = original, **values: Any) -> Any:
            sent.append(self.sql)
            return await _original(self, connection, **values)

        monkeypatch.setattr(Statement, name, counted)
    outcome = await BulkChangeTasks(units, SystemClock(), RULES).execute(
        ADA, [BulkOperation("complete", tuple(t.id for t in tasks))]
    )
    assert outcome.outcome.applied
    assert await db.fetchval("SELECT count(*) FROM tasks WHERE completed") == 110
    # Read the hundred, write them, complete their subtasks, append their events to the outbox.
    assert len(sent) <= 5, sent
    assert {child.id for child in children} <= {
        row["id"] for row in await db.fetch("SELECT id FROM tasks WHERE version = 2")
    }


def task_updates(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL of every statement that updates tasks from now on (a CTE may come first)."""
    sent: list[str] = []
    for name in ("fetch", "fetchrow", "fetchval", "execute"):
        original = getattr(Statement, name)

        async def counted(self: Statement, connection: Any, _original: Any = original, **values: Any) -> Any:
            sent.extend([self.sql] if "UPDATE tasks SET" in self.sql else [])
            return await _original(self, connection, **values)

        monkeypatch.setattr(Statement, name, counted)
    return sent


async def test_a_bulk_status_change_of_tasks_without_subtasks_writes_only_the_status(
    units: SqlUnitsOfWork, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await add(units, "A"), await add(units, "B")
    updates = task_updates(monkeypatch)
    assert (
        await BulkChangeTasks(units, SystemClock(), RULES).execute(ADA, [BulkOperation("complete", (a.id, b.id))])
    ).outcome.applied
    assert len(updates) == 1, updates  # neither has a subtask: no statement completes anything below them
    assert re.findall(r"(\w+)=", updates[0].partition(" FROM ")[0]) == [
        "completed",
        "completed_at",
        "updated_at",
        "version",
    ]


async def test_a_batch_whose_tasks_change_different_fields_lands_every_change(
    units: SqlUnitsOfWork, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = await CreateList(units, SystemClock()).execute(ADA, "Work")
    a, b = await add(units, "A"), await add(units, "B")
    updates = task_updates(monkeypatch)
    operations = [BulkOperation("update", (a.id,), priority=Priority.HIGH, add_tags=("x",)),
                  BulkOperation("move", (b.id,), list_id=work.id)]  # fmt: skip
    assert (await BulkChangeTasks(units, SystemClock(), RULES).execute(ADA, operations)).outcome.applied
    assert len(updates) == 1, updates  # B has no subtask: no statement moves anything below it
    rows = {row["title"]: row for row in await db.fetch("SELECT * FROM tasks WHERE id = ANY($1)", [a.id, b.id])}
    assert (rows["A"]["priority"], rows["A"]["tags"], rows["A"]["list_id"]) == (3, ["x"], a.list_id)
    assert (rows["B"]["priority"], rows["B"]["tags"], rows["B"]["list_id"]) == (0, [], work.id)
    assert (rows["A"]["version"], rows["B"]["version"]) == (2, 2)
    assert rows["B"]["parent_id"] is None
    assert await order_of(db, work.id) == ["B"]


async def test_a_list_pages_in_the_persons_order_through_the_repository(units: SqlUnitsOfWork) -> None:
    work = await CreateList(units, SystemClock()).execute(ADA, "Work")
    made = [await add(units, f"T{number}", list_id=work.id) for number in range(7)]
    await MoveTask(units, SystemClock()).execute(ADA, made[6].id, Move(before_id=made[0].id))
    query = TaskQuery(TaskFilter(list_id=work.id, top_level=True), Sort("position", descending=False), limit=3)
    seen: list[int] = []
    listing = ListTasks(units, SystemClock())
    while True:
        page = await listing.execute(ADA, query)
        seen += [task.id for task in page.tasks]
        if page.next_position is None:
            break
        query = TaskQuery(query.filter, query.sort, 3, page.next_position)
    assert seen == [made[6].id, *(task.id for task in made[:6])]
