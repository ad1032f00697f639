"""The repository contract: one set of tests run on the in-memory fakes (tests/unit/fakes.py) and on
PostgreSQL, through the ports only.

The unit tests trust the fakes to behave as the SQL does; these tests are what earns that trust.
Expectations are written out by hand over a small fixture (ties on every sort field, undated tasks,
another owner's tasks between the ids), and a property test stores random tasks in both backends
and requires the same answer from both to random queries.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.fakes import FakeUnitOfWorkFactory
from todo_api.adapters.http.schemas import event_data
from todo_api.adapters.sql.engine import ConnectionPool, PoolOptions
from todo_api.adapters.sql.unit_of_work import SqlUnitsOfWork
from todo_api.domain.errors import Conflict
from todo_api.domain.ordering import key_between, keys_between
from todo_api.domain.ports import IdempotentOutcome, UnitOfWork, UnitOfWorkFactory
from todo_api.domain.tasks import (
    Position,
    Priority,
    Sort,
    SortValue,
    Task,
    TaskDraft,
    TaskFilter,
    TaskQuery,
    sort_value,
)
from todo_api.domain.users import User

# --- The two backends --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def sql_units(database_url: str) -> AsyncIterator[UnitOfWorkFactory]:
    """The one place that knows how the SQL adapter is put together."""
    pool = ConnectionPool(PoolOptions(url=database_url, size=2))
    yield SqlUnitsOfWork(pool, event_data)
    await pool.close()


@pytest.fixture(params=["fake", "sql"])
def units(request: pytest.FixtureRequest, sql_units: UnitOfWorkFactory) -> UnitOfWorkFactory:
    return FakeUnitOfWorkFactory() if request.param == "fake" else sql_units


# --- The fixture -------------------------------------------------------------------------------------

ANN, BOB = "ann", "bob"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)  # what `list` and `count` are told the time is (overdue)
PAST30, PAST2 = NOW - timedelta(days=30), NOW - timedelta(days=2)
SOON, LATER = NOW + timedelta(days=3), NOW + timedelta(days=10)
MAY1, MAY2, MAY3, MAY4 = (datetime(2025, 5, day, 9, 0, tzinfo=UTC) for day in (1, 2, 3, 4))
MAY10, MAY11, MAY12 = (datetime(2025, 5, day, 9, 0, tzinfo=UTC) for day in (10, 11, 12))
NONE, LOW, MEDIUM, HIGH = Priority.NONE, Priority.LOW, Priority.MEDIUM, Priority.HIGH


@dataclass(frozen=True)
class Row:
    """A task to store: what a client gives, plus when it was created and last updated."""

    title: str
    description: str | None
    priority: Priority
    tags: tuple[str, ...]
    due_at: datetime | None
    completed: bool
    created_at: datetime
    updated_at: datetime
    owner: str = ANN


# Bob's task matches every search, tag and due filter below: it shows up wherever the owner is forgotten.
BOBS_TEXT = "buy milk, litres, 100% done, 1000 done, snake_case, back\\slash, Reporting"

# Stored in this order, so ids follow it. Titles sort the same under the C and en_US collations.
# fmt: off
FIXTURE: Final[dict[str, Row]] = {
    "a": Row("Buy milk",     None,                         HIGH,   ("home",),          PAST2,  False, MAY2, MAY2),
    "b": Row("buy MILK",     "Two litres",                 LOW,    (),                 None,   True,  MAY1, MAY11),
    "c": Row("Write report", "Quarterly REPORT for Sam",   MEDIUM, ("work", "urgent"), SOON,   False, MAY2, MAY10),
    "d": Row("Call plumber", "Reporting line",             HIGH,   ("home", "urgent"), PAST2,  True,  MAY1, MAY10),
    "x": Row("Report for Bob", BOBS_TEXT, HIGH, ("work", "urgent", "home"), PAST2, False, MAY1, MAY1, BOB),
    "e": Row("100% done",    "snake_case and back\\slash", NONE,   ("work",),          SOON,   False, MAY3, MAY11),
    "f": Row("Zebra",        "1000 done",                  NONE,   (),                 None,   False, MAY2, MAY12),
    "g": Row("snakeXcase",   "backslash",                  LOW,    ("work", "home"),   LATER,  False, MAY1, MAY12),
    "h": Row("report",       "50% off",                    MEDIUM, ("errand",),        PAST30, False, MAY3, MAY10),
    "y": Row("Zebra",        None,                         NONE,   (),                 None,   False, MAY3, MAY3, BOB),
    "i": Row("ZEBRA",        None,                         MEDIUM, (),                 NOW,    False, MAY3, MAY11),
    "j": Row("Dentist",      None,                         NONE,   ("home",),          None,   True,  MAY4, MAY12),
}
# fmt: on
ANNS = "a b c d e f g h i j"
BOBS = "x y"


def labels(text: str) -> list[str]:
    return text.split()


def user(user_id: str) -> User:
    return User(user_id, f"{user_id}@example.com", None, None, MAY1, MAY1)


async def store(units: UnitOfWorkFactory, rows: Sequence[Row], owners: Sequence[str]) -> list[Task]:
    """The users, then the tasks in order (each created, then saved at its update time), committed."""
    stored = []
    async with units() as uow:
        inboxes: dict[str, int] = {}
        last: dict[str, str] = {}
        for owner in owners:
            await uow.users.add(user(owner))
            inboxes[owner] = (await uow.lists.add(owner, "Inbox", None, "a0", MAY1, is_inbox=True)).id
        for row in rows:
            draft = TaskDraft(row.title, row.description, row.priority, row.tags, row.due_at, row.completed)
            last[row.owner] = key_between(last.get(row.owner), None)
            task = await uow.tasks.add(
                row.owner, draft, row.created_at, list_id=inboxes[row.owner], position=last[row.owner]
            )
            if row.updated_at != row.created_at:
                saved = await uow.tasks.save(replace(task, updated_at=row.updated_at), expected_version=task.version)
                assert saved is not None
                task = saved
            stored.append(task)
        await uow.commit()
    return stored


@dataclass(frozen=True)
class Seeded:
    tasks: dict[str, Task]  # by label, as stored

    def labels(self, tasks: Sequence[Task]) -> list[str]:
        label_of = {task.id: label for label, task in self.tasks.items()}
        return [label_of[task.id] for task in tasks]


@pytest.fixture
async def seeded(units: UnitOfWorkFactory) -> Seeded:
    return Seeded(dict(zip(FIXTURE, await store(units, list(FIXTURE.values()), [ANN, BOB]), strict=True)))


async def listed(units: UnitOfWorkFactory, owner: str, query: TaskQuery) -> list[Task]:
    async with units(read_only=True) as uow:
        return await uow.tasks.list(owner, query, NOW)


async def counted(units: UnitOfWorkFactory, owner: str, task_filter: TaskFilter) -> int:
    async with units(read_only=True) as uow:
        return await uow.tasks.count(owner, task_filter, NOW)


async def inbox_of(uow: UnitOfWork, owner: str) -> int:
    inbox = await uow.lists.inbox(owner)
    assert inbox is not None
    return inbox.id


async def stored_task(units: UnitOfWorkFactory, owner: str, task_id: int) -> Task | None:
    async with units(read_only=True) as uow:
        return await uow.tasks.get(owner, task_id)


def position_of(task: Task, sort: Sort) -> Position:
    return Position(sort_value(task, sort.field), task.id)


async def walk(units: UnitOfWorkFactory, owner: str, query: TaskQuery) -> list[list[Task]]:
    """Every answer of `list` (up to limit + 1 tasks) as the use case pages: from `query.after`, then
    from the last task of each page, until an answer has nothing beyond the limit."""
    answers: list[list[Task]] = []
    after = query.after
    for _ in range(100):
        answer = await listed(units, owner, replace(query, after=after))
        answers.append(answer)
        if len(answer) <= query.limit:
            return answers
        after = position_of(answer[query.limit - 1], query.sort)
    raise AssertionError("the pages never ended")


def pages_of(expected: list[str], limit: int) -> list[list[str]]:
    """What each answer of a walk holds: its page and the first task of the next one, if any."""
    return [expected[start : start + limit + 1] for start in range(0, max(len(expected), 1), limit)]


# --- Filters and counts ------------------------------------------------------------------------------

FAR_PAST, FAR_FUTURE = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
FILTERS: Final[dict[str, tuple[TaskFilter, str]]] = {
    "no filter": (TaskFilter(), ANNS),
    "status=all": (TaskFilter(status="all"), ANNS),
    "pending": (TaskFilter(status="pending"), "a c e f g h i"),
    "completed": (TaskFilter(status="completed"), "b d j"),
    "priority high": (TaskFilter(priorities=frozenset({HIGH})), "a d"),
    "priority low or medium": (TaskFilter(priorities=frozenset({LOW, MEDIUM})), "b c g h i"),
    "priority none": (TaskFilter(priorities=frozenset({NONE})), "e f j"),
    "tag work": (TaskFilter(tags=("work",)), "c e g"),
    "tags work and urgent, both needed": (TaskFilter(tags=("work", "urgent")), "c"),
    "tag in capitals and spaces": (TaskFilter(tags=("  HOME ",)), "a d g j"),
    "tag nobody has": (TaskFilter(tags=("nobody",)), ""),
    "search in titles": (TaskFilter(search="milk"), "a b"),
    "search in descriptions": (TaskFilter(search="litres"), "b"),
    "search in either, any case": (TaskFilter(search="REPORT"), "c d h"),
    "search trimmed, mixed case": (TaskFilter(search="  rEpOrT  "), "c d h"),
    "search %": (TaskFilter(search="%"), "e h"),
    "search 0%": (TaskFilter(search="0%"), "e h"),
    "search _": (TaskFilter(search="_"), "e"),
    "search e_c": (TaskFilter(search="e_c"), "e"),
    "search backslash": (TaskFilter(search="\\"), "e"),
    "search k backslash s": (TaskFilter(search="k\\s"), "e"),
    "search %_%": (TaskFilter(search="%_%"), ""),
    "due_before excludes its bound": (TaskFilter(due_before=SOON), "a d h i"),
    "due_after excludes its bound": (TaskFilter(due_after=PAST2), "c e g i"),
    "due between, bounds excluded": (TaskFilter(due_after=PAST30, due_before=LATER), "a c d e i"),
    "overdue: past due and pending": (TaskFilter(overdue=True), "a h"),
    "undated match no due_before": (TaskFilter(due_before=FAR_FUTURE), "a c d e g h i"),
    "undated match no due_after": (TaskFilter(due_after=FAR_PAST), "a c d e g h i"),
    "overdue and completed": (TaskFilter(status="completed", overdue=True), ""),
    "overdue and high": (TaskFilter(overdue=True, priorities=frozenset({HIGH})), "a"),
    "pending at home": (TaskFilter(status="pending", tags=("home",)), "a g"),
    "search, tag, priority and status": (
        TaskFilter(status="pending", priorities=frozenset({MEDIUM}), tags=("work",), search="re"),
        "c",
    ),
}


@pytest.mark.parametrize(("task_filter", "expected"), FILTERS.values(), ids=FILTERS.keys())
async def test_a_filter_lists_exactly_the_owners_matching_tasks(
    units: UnitOfWorkFactory, seeded: Seeded, task_filter: TaskFilter, expected: str
) -> None:
    tasks = await listed(units, ANN, TaskQuery(filter=task_filter, limit=100))
    assert sorted(seeded.labels(tasks)) == labels(expected)


async def test_count_is_the_number_of_tasks_the_same_filter_lists(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    for name, (task_filter, expected) in FILTERS.items():
        assert await counted(units, ANN, task_filter) == len(labels(expected)), name


# --- Sorts -------------------------------------------------------------------------------------------

# The field then the id, both one way; tasks without a due date last either way.
ORDERS: Final[dict[str, str]] = {
    "created_at": "b d g a c f e h i j",
    "-created_at": "j i h e f c a g d b",
    "updated_at": "a c d h b e i f g j",
    "-updated_at": "j g f i e b h d c a",
    "due_at": "h a d i c e g b f j",
    "-due_at": "g e c i d a h j f b",
    "priority": "e f j b g c h i a d",
    "-priority": "d a i h c g b j f e",
    "title": "e a b d j h g c f i",
    "-title": "i f c g h j d b a e",
}
EVERY_SORT = [Sort.parse(name) for name in ORDERS]
every_sort = pytest.mark.parametrize("sort", EVERY_SORT, ids=str)


def test_the_fixture_ties_on_every_sort_field() -> None:
    """Guards the sort tests: without equal values the id would never have to break a tie."""
    anns = [row for row in FIXTURE.values() if row.owner == ANN]
    for values in (
        [row.created_at for row in anns],
        [row.updated_at for row in anns],
        [row.due_at for row in anns if row.due_at is not None],
        [row.priority for row in anns],
        [row.title.lower() for row in anns],
    ):
        assert len(set(values)) < len(values)


@every_sort
async def test_a_sort_orders_by_the_field_then_the_id_with_undated_tasks_last(
    units: UnitOfWorkFactory, seeded: Seeded, sort: Sort
) -> None:
    tasks = await listed(units, ANN, TaskQuery(sort=sort, limit=100))
    assert seeded.labels(tasks) == labels(ORDERS[str(sort)])


# --- Keyset positions --------------------------------------------------------------------------------


@every_sort
async def test_walking_the_pages_at_any_limit_yields_each_task_once_in_order(
    units: UnitOfWorkFactory, seeded: Seeded, sort: Sort
) -> None:
    expected = labels(ORDERS[str(sort)])
    for limit in (1, 2, 3, 9, 10, 11):
        answers = await walk(units, ANN, TaskQuery(sort=sort, limit=limit))
        assert [seeded.labels(answer) for answer in answers] == pages_of(expected, limit), f"limit {limit}"


@every_sort
async def test_walking_a_filtered_listing_yields_each_match_once_in_order(
    units: UnitOfWorkFactory, seeded: Seeded, sort: Sort
) -> None:
    pending = labels(FILTERS["pending"][1])
    expected = [label for label in labels(ORDERS[str(sort)]) if label in pending]
    answers = await walk(units, ANN, TaskQuery(TaskFilter(status="pending"), sort, limit=2))
    assert [seeded.labels(answer) for answer in answers] == pages_of(expected, 2)


@every_sort
async def test_a_position_at_the_last_task_gives_an_empty_page(
    units: UnitOfWorkFactory, seeded: Seeded, sort: Sort
) -> None:
    last = seeded.tasks[labels(ORDERS[str(sort)])[-1]]
    assert await listed(units, ANN, TaskQuery(sort=sort, after=position_of(last, sort))) == []


@every_sort
async def test_a_position_at_a_deleted_task_pages_on_from_where_it_stood(
    units: UnitOfWorkFactory, seeded: Seeded, sort: Sort
) -> None:
    expected = labels(ORDERS[str(sort)])
    gone = seeded.tasks[expected[4]]
    async with units() as uow:
        assert await uow.tasks.trash(ANN, [gone.id], NOW) == [gone.id]
        await uow.commit()
    tasks = await listed(units, ANN, TaskQuery(sort=sort, limit=100, after=position_of(gone, sort)))
    assert seeded.labels(tasks) == expected[5:]


# --- Owners ------------------------------------------------------------------------------------------


async def test_another_owners_task_is_not_found(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    bobs = seeded.tasks["x"]
    assert await stored_task(units, ANN, bobs.id) is None
    assert await stored_task(units, BOB, bobs.id) == bobs


async def test_saving_another_owners_task_writes_nothing(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    bobs = seeded.tasks["x"]
    async with units() as uow:
        taken = replace(bobs, user_id=ANN, title="Taken over", updated_at=NOW)
        assert await uow.tasks.save(taken, expected_version=bobs.version) is None
        await uow.commit()
    assert await stored_task(units, BOB, bobs.id) == bobs
    assert await stored_task(units, ANN, bobs.id) is None


async def test_deleting_another_owners_task_deletes_nothing(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    bobs = seeded.tasks["x"]
    async with units() as uow:
        assert await uow.tasks.trash(ANN, [bobs.id], NOW) == []
        assert await uow.tasks.trashed(ANN, bobs.id) is None
        await uow.commit()
    assert await stored_task(units, BOB, bobs.id) == bobs


async def test_each_owner_lists_and_counts_only_their_own_tasks(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    for owner, theirs in ((ANN, ANNS), (BOB, BOBS)):
        assert sorted(seeded.labels(await listed(units, owner, TaskQuery(limit=100)))) == labels(theirs)
        assert await counted(units, owner, TaskFilter()) == len(labels(theirs))
    assert await listed(units, "nobody", TaskQuery()) == []
    assert await counted(units, "nobody", TaskFilter()) == 0


# --- Writes and their conflicts ----------------------------------------------------------------------


async def test_an_added_task_is_stored_as_returned_at_version_1(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    draft = TaskDraft("New", "Details", HIGH, ("work",), SOON, completed=True)
    async with units() as uow:
        inbox = await inbox_of(uow, ANN)
        added = await uow.tasks.add(ANN, draft, NOW, list_id=inbox, position="z0")
        await uow.commit()
    expected = Task(
        id=added.id,
        user_id=ANN,
        title="New",
        description="Details",
        completed=True,
        completed_at=NOW,
        priority=HIGH,
        tags=("work",),
        due_at=SOON,
        created_at=NOW,
        updated_at=NOW,
        version=1,
        list_id=inbox,
        parent_id=None,
        position="z0",
    )
    assert added == expected
    assert added.id not in {task.id for task in seeded.tasks.values()}
    assert await stored_task(units, ANN, added.id) == added


async def test_a_save_at_the_current_version_writes_the_task_at_the_next_version(
    units: UnitOfWorkFactory, seeded: Seeded
) -> None:
    task = seeded.tasks["c"]
    changed = replace(task, title="Rewritten", tags=("home",), due_at=None, updated_at=NOW)
    async with units() as uow:
        saved = await uow.tasks.save(changed, expected_version=task.version)
        await uow.commit()
    assert saved == replace(changed, version=task.version + 1)
    assert await stored_task(units, ANN, task.id) == saved


async def test_a_save_with_a_stale_version_returns_none_and_writes_nothing(
    units: UnitOfWorkFactory, seeded: Seeded
) -> None:
    task = seeded.tasks["c"]
    async with units() as uow:
        assert await uow.tasks.save(replace(task, title="Lost"), expected_version=task.version - 1) is None
        assert await uow.tasks.save(replace(task, title="Lost"), expected_version=task.version + 1) is None
        await uow.commit()
    assert await stored_task(units, ANN, task.id) == task


async def test_a_save_of_a_task_that_is_gone_returns_none(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    task = seeded.tasks["a"]
    async with units() as uow:
        assert await uow.tasks.trash(ANN, [task.id], NOW) == [task.id]
        assert await uow.tasks.save(replace(task, title="Back"), expected_version=task.version) is None
        await uow.commit()
    assert await stored_task(units, ANN, task.id) is None


async def test_a_trashed_task_leaves_every_query_and_comes_back_as_a_new_version(
    units: UnitOfWorkFactory, seeded: Seeded
) -> None:
    task = seeded.tasks["a"]
    async with units() as uow:
        assert await uow.tasks.trash(ANN, [task.id], NOW) == [task.id]
        await uow.commit()
    assert await stored_task(units, ANN, task.id) is None
    assert await counted(units, ANN, TaskFilter()) == len(labels(ANNS)) - 1
    async with units() as uow:
        trashed = await uow.tasks.trashed(ANN, task.id)
        assert trashed is not None
        assert (trashed.root_id, trashed.deleted_list_id, trashed.task.deleted_at) == (task.id, None, NOW)
        assert [t.id for t in await uow.tasks.trashed_page(ANN, 10, None)] == [task.id]
        back = await uow.tasks.restore(
            ANN, task.id, list_id=task.list_id, parent_id=None, position=task.position, at=NOW
        )
        await uow.commit()
    assert back == [replace(task, updated_at=NOW, version=task.version + 1)]
    assert await stored_task(units, ANN, task.id) == back[0]
    assert await counted(units, ANN, TaskFilter()) == len(labels(ANNS))


async def test_a_trash_of_a_task_that_never_was_trashes_nothing(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    async with units() as uow:
        assert await uow.tasks.trash(ANN, [max(task.id for task in seeded.tasks.values()) + 1], NOW) == []
        await uow.commit()


async def test_a_rollback_undoes_the_units_writes(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    task = seeded.tasks["c"]
    async with units() as uow:
        added = await uow.tasks.add(ANN, TaskDraft("Undone"), NOW, list_id=await inbox_of(uow, ANN), position="z0")
        assert await uow.tasks.trash(ANN, [task.id], NOW) == [task.id]
        await uow.rollback()
    assert await stored_task(units, ANN, added.id) is None
    assert await stored_task(units, ANN, task.id) == task


# --- Idempotency keys --------------------------------------------------------------------------------

WINDOW = timedelta(hours=24)


async def claim(units: UnitOfWorkFactory, owner: str, key: str, outcome: IdempotentOutcome, at: datetime) -> bool:
    async with units() as uow:
        claimed = await uow.idempotency_keys.claim(owner, key, outcome, at, at - WINDOW)
        await uow.commit()
    return claimed


async def found(units: UnitOfWorkFactory, owner: str, key: str, since: datetime) -> IdempotentOutcome | None:
    async with units(read_only=True) as uow:
        return await uow.idempotency_keys.find(owner, key, since)


async def test_a_claimed_key_is_found_with_its_outcome_as_it_was(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    outcome = IdempotentOutcome("hash-1", seeded.tasks["c"])
    assert await claim(units, ANN, "key", outcome, NOW)
    assert await found(units, ANN, "key", NOW - WINDOW) == outcome
    assert await found(units, ANN, "another key", NOW - WINDOW) is None


async def test_claiming_a_key_claimed_within_the_window_returns_false_and_keeps_the_first_outcome(
    units: UnitOfWorkFactory, seeded: Seeded
) -> None:
    first, second = IdempotentOutcome("hash-1", seeded.tasks["c"]), IdempotentOutcome("hash-2", seeded.tasks["d"])
    assert await claim(units, ANN, "key", first, NOW)
    assert not await claim(units, ANN, "key", second, NOW + WINDOW - timedelta(microseconds=1))
    assert await found(units, ANN, "key", NOW - WINDOW) == first


async def test_a_key_whose_record_expired_can_be_claimed_again(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    first, second = IdempotentOutcome("hash-1", seeded.tasks["c"]), IdempotentOutcome("hash-2", seeded.tasks["d"])
    assert await claim(units, ANN, "key", first, NOW)
    later = NOW + WINDOW  # the first record is at exactly `since`: expired
    assert await claim(units, ANN, "key", second, later)
    assert await found(units, ANN, "key", later - WINDOW) == second


async def test_find_ignores_a_record_at_or_before_since(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    outcome = IdempotentOutcome("hash-1", seeded.tasks["c"])
    assert await claim(units, ANN, "key", outcome, NOW)
    assert await found(units, ANN, "key", NOW - timedelta(microseconds=1)) == outcome
    assert await found(units, ANN, "key", NOW) is None
    assert await found(units, ANN, "key", NOW + timedelta(days=1)) is None


async def test_idempotency_keys_are_per_owner(units: UnitOfWorkFactory, seeded: Seeded) -> None:
    anns, bobs = IdempotentOutcome("hash-a", seeded.tasks["c"]), IdempotentOutcome("hash-b", seeded.tasks["x"])
    assert await claim(units, ANN, "key", anns, NOW)
    assert await found(units, BOB, "key", NOW - WINDOW) is None
    assert await claim(units, BOB, "key", bobs, NOW)
    assert await found(units, ANN, "key", NOW - WINDOW) == anns
    assert await found(units, BOB, "key", NOW - WINDOW) == bobs


# --- Users -------------------------------------------------------------------------------------------


async def test_adding_a_user_whose_email_is_taken_raises_email_taken_and_the_unit_carries_on(
    units: UnitOfWorkFactory,
) -> None:
    async with units() as uow:
        await uow.users.add(user(ANN))
        inbox = (await uow.lists.add(ANN, "Inbox", None, "a0", MAY1, is_inbox=True)).id
        await uow.commit()
    async with units() as uow:
        task = await uow.tasks.add(ANN, TaskDraft("Written before the conflict"), NOW, list_id=inbox, position="a0")
        with pytest.raises(Conflict) as refused:
            await uow.users.add(replace(user(BOB), email=user(ANN).email))
        assert refused.value.code == "email_taken"
        assert await uow.users.get(ANN) == user(ANN)
        await uow.users.add(user("carol"))
        await uow.commit()
    async with units(read_only=True) as uow:
        assert await uow.tasks.get(ANN, task.id) == task
        assert await uow.users.get(BOB) is None
        assert await uow.users.get("carol") == user("carol")


# --- Both backends give the same answers -------------------------------------------------------------

# Few values, so ties are common; titles of ASCII letters and digits (the same order under any collation).
MOMENTS = [NOW - timedelta(days=1), NOW - timedelta(microseconds=1), NOW, NOW + timedelta(days=1)]
TITLES = ["a", "A", "ab", "aB", "Ab0", "b", "B", "0"]
TAGS = ["home", "work", "urgent"]
TEXT = "aB%_\\ "  # LIKE's wildcards and escape among ordinary characters
STATUSES: tuple[Literal["all", "pending", "completed"], ...] = ("all", "pending", "completed")
MINE, THEIRS = "mine", "theirs"
T = TypeVar("T")


@st.composite
def random_rows(draw: st.DrawFn) -> Row:
    return Row(
        title=draw(st.sampled_from(TITLES)),
        description=draw(st.none() | st.text(TEXT, max_size=5)),
        priority=draw(st.sampled_from(list(Priority))),
        tags=tuple(draw(st.lists(st.sampled_from(TAGS), max_size=2, unique=True))),
        due_at=draw(st.none() | st.sampled_from(MOMENTS)),
        completed=draw(st.booleans()),
        created_at=draw(st.sampled_from(MOMENTS)),
        updated_at=draw(st.sampled_from(MOMENTS)),
        owner=draw(st.sampled_from([MINE, MINE, THEIRS])),
    )


@dataclass(frozen=True)
class RandomQuery:
    query: TaskQuery  # without a position: ids differ between the backends
    start: tuple[SortValue, int] | None  # a sort value and the index of the task whose id completes it


def position_values(sort: Sort) -> st.SearchStrategy[SortValue]:
    match sort.field:
        case "priority":
            return st.integers(0, 3)
        case "title":
            return st.sampled_from(TITLES)
        case "due_at":
            return st.none() | st.sampled_from(MOMENTS)
        case "created_at" | "updated_at":
            return st.sampled_from(MOMENTS)
        case "position":
            return st.sampled_from(keys_between(None, None, 20))


def sometimes(draw: st.DrawFn, strategy: st.SearchStrategy[T], otherwise: T) -> T:
    """One time in four: filters that all narrow at once would mostly leave nothing to order."""
    return draw(strategy) if draw(st.integers(0, 3)) == 0 else otherwise


@st.composite
def random_queries(draw: st.DrawFn) -> RandomQuery:
    task_filter = TaskFilter(
        status=sometimes(draw, st.sampled_from(STATUSES), "all"),
        priorities=sometimes(draw, st.frozensets(st.sampled_from(list(Priority)), min_size=1, max_size=2), frozenset()),
        tags=sometimes(draw, st.lists(st.sampled_from(TAGS), min_size=1, max_size=2, unique=True).map(tuple), ()),
        search=sometimes(draw, st.text(TEXT, min_size=1, max_size=3), None),
        due_before=sometimes(draw, st.sampled_from(MOMENTS), None),
        due_after=sometimes(draw, st.sampled_from(MOMENTS), None),
        overdue=sometimes(draw, st.just(True), False),
    )
    sort = draw(st.sampled_from(EVERY_SORT))
    start = sometimes(draw, st.tuples(position_values(sort), st.integers(0, 15)), None)
    return RandomQuery(TaskQuery(task_filter, sort, limit=draw(st.integers(1, 4))), start)


Answer = tuple[list[list[Task]], int]  # a walk's answers and the count, ids replaced by the order of storing


async def answers_of(
    units: UnitOfWorkFactory, rows: list[Row], owners: list[str], queries: list[RandomQuery]
) -> list[Answer]:
    """Store the rows, then walk and count each query for the first owner."""
    stored = await store(units, rows, owners)
    order = {task.id: i for i, task in enumerate(stored)}  # ids differ between the backends; this does not
    answers: list[Answer] = []
    for random_query in queries:
        query = random_query.query
        if random_query.start is not None:
            value, at = random_query.start
            query = replace(query, after=Position(value, stored[at % len(stored)].id))
        pages = [
            [replace(task, id=order[task.id], list_id=0) for task in page]  # ids differ between the backends
            for page in await walk(units, owners[0], query)
        ]
        answers.append((pages, await counted(units, owners[0], query.filter)))
    return answers


_examples = itertools.count()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(random_rows(), min_size=2, max_size=16),
    queries=st.lists(random_queries(), min_size=1, max_size=6),
)
async def test_the_fake_and_the_sql_give_the_same_pages_and_counts(
    sql_units: UnitOfWorkFactory, rows: list[Row], queries: list[RandomQuery]
) -> None:
    """Each example stores the tasks of owners of its own, so the examples share the database safely
    (the per-test TRUNCATE runs once, after all of them: hence the health check left out)."""
    example = next(_examples)
    owners = {MINE: f"mine-{example}", THEIRS: f"theirs-{example}"}
    rows = [replace(row, owner=owners[row.owner]) for row in rows]
    fake = await answers_of(FakeUnitOfWorkFactory(), rows, list(owners.values()), queries)
    sql = await answers_of(sql_units, rows, list(owners.values()), queries)
    assert fake == sql
