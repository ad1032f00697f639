"""The change feed and restore, use case by use case against the in-memory fakes."""

from __future__ import annotations

import pytest

from tests.unit.fakes import FakeClock, FakeStore, FakeUnitOfWorkFactory
from todo_api.adapters.calendar.rrule import RruleRecurrences
from todo_api.domain.changes import Change, Deleted, coalesced, task_change
from todo_api.domain.errors import Conflict, Gone, InvalidInput, NotFound, PreconditionFailed
from todo_api.domain.tasks import MAX_DEPTH, TaskChanges, TaskDraft
from todo_api.use_cases.changes import ReadChanges
from todo_api.use_cases.lists import CreateList, DeleteList
from todo_api.use_cases.restore import ListDeletedTasks, RestoreList, RestoreTask
from todo_api.use_cases.tasks import CreateTask, DeleteTask, Move, MoveTask, SetTaskCompletion, UpdateTask

RULES = RruleRecurrences()

ADA = "a" * 32


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def uow(clock: FakeClock) -> FakeUnitOfWorkFactory:
    return FakeUnitOfWorkFactory(clock=clock)


@pytest.fixture
def store(uow: FakeUnitOfWorkFactory) -> FakeStore:
    return uow.store


def feed(store: FakeStore) -> list[tuple[str, str]]:
    return [(event.payload["type"], event.payload["subject"]) for event in store.events.get(ADA, [])]


async def add(uow: FakeUnitOfWorkFactory, title: str, **place: int) -> int:
    return (await CreateTask(uow, uow.clock, RULES).execute(ADA, TaskDraft(title, **place))).task.id  # type: ignore[arg-type]


async def test_writes_record_their_events_and_a_refused_write_records_none(
    uow: FakeUnitOfWorkFactory, store: FakeStore
) -> None:
    parent = await add(uow, "Report")
    child = await add(uow, "Outline", parent_id=parent)
    inbox = feed(store)[0]
    assert inbox[0] == "list.created"  # the Inbox, made on first need
    with pytest.raises(PreconditionFailed):
        await UpdateTask(uow, uow.clock, RULES).execute(ADA, parent, TaskChanges(title="x"), if_match=frozenset({7}))
    await SetTaskCompletion(uow, uow.clock, RULES).execute(ADA, parent, True)
    await DeleteTask(uow, uow.clock).execute(ADA, parent)
    assert feed(store)[1:] == [
        ("task.created", f"tasks/{parent}"),
        ("task.created", f"tasks/{child}"),
        ("task.completed", f"tasks/{child}"),  # subtasks first: the task's own write is the unit's last
        ("task.completed", f"tasks/{parent}"),
        ("task.deleted", f"tasks/{parent}"),
        ("task.deleted", f"tasks/{child}"),
    ]
    assert [event.position for event in store.events[ADA]] == list(range(1, 8))


def test_one_event_per_object_per_transaction_with_its_last_state_and_first_name() -> None:
    from tests.unit.fakes import START
    from todo_api.domain.tasks import Priority, Task

    made = Task(1, ADA, "a", None, False, None, Priority.NONE, (), None, START, START, 1, 1, None, "a0")
    renamed = TaskChanges(title="b").applied_to(made, START)
    other = Task(2, ADA, "c", None, False, None, Priority.NONE, (), None, START, START, 1, 1, None, "a1")
    merged = coalesced([task_change(None, made), task_change(None, other), task_change(made, renamed)])
    assert merged == [Change("task.created", renamed), Change("task.created", other)]
    gone = Change("task.deleted", Deleted("task", 1, START))
    assert coalesced([task_change(None, made), gone]) == [gone]


async def test_restore_brings_the_subtree_back_as_new_versions(uow: FakeUnitOfWorkFactory, store: FakeStore) -> None:
    parent = await add(uow, "Report")
    child = await add(uow, "Outline", parent_id=parent)
    before = dict(store.tasks)
    await DeleteTask(uow, uow.clock).execute(ADA, parent)
    assert store.tasks.keys() == before.keys() - {parent, child}
    listed = await ListDeletedTasks(uow).execute(ADA, 10)
    assert [task.id for task in listed.tasks] == [parent]  # the subtask comes back with it
    with pytest.raises(Conflict) as with_parent:
        await RestoreTask(uow, uow.clock).execute(ADA, child)
    assert with_parent.value.code == "deleted_with_parent"
    back = await RestoreTask(uow, uow.clock).execute(ADA, parent)
    assert back.version == before[parent].version + 1
    assert back.deleted_at is None
    assert store.tasks[child].parent_id == parent
    assert feed(store)[-2:] == [("task.restored", f"tasks/{parent}"), ("task.restored", f"tasks/{child}")]
    with pytest.raises(NotFound):
        await RestoreTask(uow, uow.clock).execute(ADA, parent)


async def test_a_task_whose_parent_or_list_is_gone_comes_back_where_it_still_can(
    uow: FakeUnitOfWorkFactory, store: FakeStore
) -> None:
    work = await CreateList(uow, uow.clock).execute(ADA, "Work")
    parent = await add(uow, "Report", list_id=work.id)
    child = await add(uow, "Outline", parent_id=parent)
    await DeleteTask(uow, uow.clock).execute(ADA, child)
    await DeleteTask(uow, uow.clock).execute(ADA, parent)
    back = await RestoreTask(uow, uow.clock).execute(ADA, child)
    assert (back.list_id, back.parent_id) == (work.id, None)  # its parent is still deleted
    await DeleteTask(uow, uow.clock).execute(ADA, child)
    await DeleteList(uow, uow.clock).execute(ADA, work.id)
    back = await RestoreTask(uow, uow.clock).execute(ADA, child)
    inbox = next(x for x in store.lists.values() if x.is_inbox)
    assert (back.list_id, back.parent_id) == (inbox.id, None)


async def test_a_subtask_restored_under_a_parent_that_went_too_deep_goes_to_the_top_level(
    uow: FakeUnitOfWorkFactory,
) -> None:
    chain = [await add(uow, "level 1")]
    for level in range(2, MAX_DEPTH + 1):
        chain.append(await add(uow, f"level {level}", parent_id=chain[-1]))
    loose = await add(uow, "loose")
    leaf = await add(uow, "leaf", parent_id=loose)
    await DeleteTask(uow, uow.clock).execute(ADA, leaf)
    await MoveTask(uow, uow.clock).execute(ADA, loose, Move(parent_id=chain[-2]))  # now at MAX_DEPTH
    back = await RestoreTask(uow, uow.clock).execute(ADA, leaf)
    assert back.parent_id is None


async def test_a_list_comes_back_unless_its_name_was_taken(uow: FakeUnitOfWorkFactory, store: FakeStore) -> None:
    work = await CreateList(uow, uow.clock).execute(ADA, "Work")
    task = await add(uow, "Report", list_id=work.id)
    await DeleteList(uow, uow.clock).execute(ADA, work.id, cascade=True)
    with pytest.raises(Conflict) as with_list:
        await RestoreTask(uow, uow.clock).execute(ADA, task)
    assert with_list.value.code == "deleted_with_list"
    taken = await CreateList(uow, uow.clock).execute(ADA, "work")
    with pytest.raises(Conflict) as name:
        await RestoreList(uow, uow.clock).execute(ADA, work.id)
    assert name.value.code == "list_name_taken"
    await DeleteList(uow, uow.clock).execute(ADA, taken.id)
    back = await RestoreList(uow, uow.clock).execute(ADA, work.id)
    assert (back.total_count, store.tasks[task].list_id) == (1, work.id)


async def test_reading_changes_refuses_what_retention_removed_and_what_never_was(
    uow: FakeUnitOfWorkFactory, store: FakeStore, clock: FakeClock
) -> None:
    await add(uow, "a")
    await add(uow, "b")
    read = ReadChanges(uow)
    assert (await read.execute(ADA, None)).position == 3
    page = await read.execute(ADA, 0, limit=2)
    assert ([e.position for e in page.events], page.position, page.has_more) == ([1, 2], 2, True)
    store.pruned_through[ADA] = 1
    with pytest.raises(Gone):
        await read.execute(ADA, 0)
    assert [e.position for e in (await read.execute(ADA, 1)).events] == [2, 3]
    with pytest.raises(Gone):
        await read.execute(ADA, 4)
    with pytest.raises(InvalidInput):
        await read.execute(ADA, 0, limit=0)


async def test_a_restored_task_whose_key_a_sibling_took_meanwhile_gets_the_group_fresh_keys(
    uow: FakeUnitOfWorkFactory, store: FakeStore
) -> None:
    first, gone = await add(uow, "First"), await add(uow, "Gone")
    await DeleteTask(uow, uow.clock).execute(ADA, gone)
    taker = await add(uow, "Taker")  # the end of the list is where `gone` stood: the same key
    assert store.tasks[taker].position == store.deleted_tasks[gone].task.position
    back = await RestoreTask(uow, uow.clock).execute(ADA, gone)
    keys = [store.tasks[task_id].position for task_id in (first, back.id, taker)]
    assert keys == sorted(keys)
    assert len(set(keys)) == 3
    assert feed(store)[-3:] == [
        ("task.restored", f"tasks/{gone}"),
        ("task.moved", f"tasks/{first}"),
        ("task.moved", f"tasks/{taker}"),
    ]


async def test_a_restored_list_whose_key_another_took_meanwhile_gets_fresh_keys_for_all(
    uow: FakeUnitOfWorkFactory, store: FakeStore
) -> None:
    work = await CreateList(uow, uow.clock).execute(ADA, "Work")
    await DeleteList(uow, uow.clock).execute(ADA, work.id)
    home = await CreateList(uow, uow.clock).execute(ADA, "Home")
    assert home.position == work.position
    back = await RestoreList(uow, uow.clock).execute(ADA, work.id)
    positions = [x.position for x in store.lists.values()]
    assert len(set(positions)) == len(positions)
    assert back.position == store.lists[work.id].position
