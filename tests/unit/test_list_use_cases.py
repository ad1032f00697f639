"""Lists, and tasks in lists and under parents, use case by use case against the in-memory fakes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.ordering_support import crowded_after
from tests.unit.fakes import FakeClock, FakeStore, FakeUnitOfWorkFactory
from todo_api.adapters.calendar.rrule import RruleRecurrences
from todo_api.domain.bulk import BulkOperation
from todo_api.domain.errors import Conflict, InvalidInput, NotFound, PreconditionFailed
from todo_api.domain.lists import MAX_LISTS_PER_USER, TaskList
from todo_api.domain.ordering import MAX_KEY_CHARS, is_strictly_ordered, key_between, needs_rebalance
from todo_api.domain.tasks import MAX_DEPTH, Priority, Sort, Task, TaskChanges, TaskDraft, TaskFilter, TaskQuery
from todo_api.use_cases.bulk import BulkChangeTasks
from todo_api.use_cases.lists import CreateList, DeleteList, GetList, ListLists, MoveList, UpdateList
from todo_api.use_cases.tasks import (
    CreateTask,
    DeleteTask,
    ListTasks,
    Move,
    MoveTask,
    SetTaskCompletion,
    UpdateTask,
)

RULES = RruleRecurrences()

ADA = "a" * 32
BOB = "b" * 32


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def uow(clock: FakeClock) -> FakeUnitOfWorkFactory:
    return FakeUnitOfWorkFactory(clock=clock)


@pytest.fixture
def store(uow: FakeUnitOfWorkFactory) -> FakeStore:
    return uow.store


@pytest.fixture
def create_list(uow: FakeUnitOfWorkFactory, clock: FakeClock) -> CreateList:
    return CreateList(uow, clock)


@pytest.fixture
def create_task(uow: FakeUnitOfWorkFactory, clock: FakeClock) -> CreateTask:
    return CreateTask(uow, clock, RULES)


async def add(create_task: CreateTask, title: str, *, list_id: int | None = None, parent_id: int | None = None) -> Task:
    return (await create_task.execute(ADA, TaskDraft(title, list_id=list_id, parent_id=parent_id))).task


# --- Lists -------------------------------------------------------------------------------------------


async def test_a_new_list_goes_after_the_others_with_no_tasks(create_list: CreateList, store: FakeStore) -> None:
    work = await create_list.execute(ADA, "  Work ", "Blue")
    home = await create_list.execute(ADA, "Home")
    assert (work.name, work.color, work.is_inbox, work.total_count, work.open_count) == ("Work", "blue", False, 0, 0)
    assert work.position < home.position
    # An account without an Inbox yet (one from an external issuer) gets it first: always exactly one.
    assert list_names(store) == ["Inbox", "Work", "Home"]


async def test_a_name_taken_in_any_case_is_a_409(create_list: CreateList) -> None:
    await create_list.execute(ADA, "Work")
    with pytest.raises(Conflict) as refused:
        await create_list.execute(ADA, "WORK")
    assert refused.value.code == "list_name_taken"


async def test_another_user_may_use_the_same_name(create_list: CreateList) -> None:
    await create_list.execute(ADA, "Work")
    assert (await create_list.execute(BOB, "Work")).user_id == BOB


async def test_past_the_cap_a_list_is_refused(create_list: CreateList, store: FakeStore, clock: FakeClock) -> None:
    for number in range(MAX_LISTS_PER_USER):
        store.lists[number + 1] = TaskList(
            number + 1, ADA, f"L{number}", None, "a0", False, clock.now(), clock.now(), 1
        )
    store.last_list_id = MAX_LISTS_PER_USER
    with pytest.raises(InvalidInput) as refused:
        await create_list.execute(ADA, "One too many")
    assert refused.value.code == "too_many_lists"


async def test_lists_page_in_the_persons_order(
    create_list: CreateList, uow: FakeUnitOfWorkFactory, store: FakeStore
) -> None:
    made = [await create_list.execute(ADA, f"List {number}") for number in range(5)]
    pages, after = [], None
    while True:
        page = await ListLists(uow).execute(ADA, 2, after)
        pages.append([x.id for x in page.lists])
        if (after := page.next_position) is None:
            break
    ids = [next(x.id for x in store.lists.values() if x.is_inbox), *(x.id for x in made)]  # the Inbox first
    assert pages == [ids[0:2], ids[2:4], ids[4:6]]


async def test_a_list_counts_its_open_and_all_tasks(
    create_list: CreateList, create_task: CreateTask, uow: FakeUnitOfWorkFactory
) -> None:
    work = await create_list.execute(ADA, "Work")
    await add(create_task, "Open", list_id=work.id)
    await create_task.execute(ADA, TaskDraft("Done", list_id=work.id, completed=True))
    counted = await GetList(uow).execute(ADA, work.id)
    assert (counted.open_count, counted.total_count) == (1, 2)


async def test_another_users_list_is_not_found(create_list: CreateList, uow: FakeUnitOfWorkFactory) -> None:
    work = await create_list.execute(BOB, "Work")
    with pytest.raises(NotFound) as refused:
        await GetList(uow).execute(ADA, work.id)
    assert refused.value.code == "list_not_found"


async def test_renaming_bumps_the_version_and_a_stale_if_match_is_refused(
    create_list: CreateList, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    work = await create_list.execute(ADA, "Work")
    renamed = await UpdateList(uow, clock).execute(ADA, work.id, name="Office", if_match=frozenset({1}))
    assert (renamed.name, renamed.version) == ("Office", 2)
    with pytest.raises(PreconditionFailed):
        await UpdateList(uow, clock).execute(ADA, work.id, color="red", if_match=frozenset({1}))


async def test_renaming_onto_another_lists_name_is_a_409(
    create_list: CreateList, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    await create_list.execute(ADA, "Home")
    work = await create_list.execute(ADA, "Work")
    with pytest.raises(Conflict):
        await UpdateList(uow, clock).execute(ADA, work.id, name="home")


async def test_the_inbox_can_be_renamed_but_not_deleted(
    create_task: CreateTask, uow: FakeUnitOfWorkFactory, clock: FakeClock, store: FakeStore
) -> None:
    task = await add(create_task, "Milk")
    inbox = store.lists[task.list_id]
    assert inbox.is_inbox
    assert (await UpdateList(uow, clock).execute(ADA, inbox.id, name="Tray")).is_inbox
    with pytest.raises(Conflict) as refused:
        await DeleteList(uow, uow.clock).execute(ADA, inbox.id, cascade=True)
    assert refused.value.code == "inbox_not_deletable"


async def test_a_list_with_tasks_is_kept_unless_cascade_which_deletes_them_too(
    create_list: CreateList, create_task: CreateTask, uow: FakeUnitOfWorkFactory, store: FakeStore
) -> None:
    work = await create_list.execute(ADA, "Work")
    task = await add(create_task, "Report", list_id=work.id)
    with pytest.raises(Conflict) as refused:
        await DeleteList(uow, uow.clock).execute(ADA, work.id)
    assert refused.value.code == "list_not_empty"
    assert task.id in store.tasks
    await DeleteList(uow, uow.clock).execute(ADA, work.id, cascade=True)
    assert work.id not in store.lists
    assert task.id not in store.tasks


# --- Tasks in lists and under parents ----------------------------------------------------------------


def list_names(store: FakeStore, user_id: str = ADA) -> list[str]:
    mine = [x for x in store.lists.values() if x.user_id == user_id]
    return [x.name for x in sorted(mine, key=lambda x: (x.position, x.id))]


@pytest.fixture
def move_list(uow: FakeUnitOfWorkFactory, clock: FakeClock) -> MoveList:
    return MoveList(uow, clock)


async def test_a_list_moves_before_or_after_another_or_last_writing_one_row(
    create_list: CreateList, move_list: MoveList, store: FakeStore
) -> None:
    a, b, c = [await create_list.execute(ADA, name) for name in "ABC"]
    moved = await move_list.execute(ADA, c.id, before_id=a.id)
    assert (list_names(store), moved.version) == (["Inbox", "C", "A", "B"], 2)
    assert [store.lists[x.id].version for x in (a, b)] == [1, 1]
    await move_list.execute(ADA, c.id, after_id=a.id)
    assert list_names(store) == ["Inbox", "A", "C", "B"]
    await move_list.execute(ADA, a.id)
    assert list_names(store) == ["Inbox", "C", "B", "A"]


async def test_a_list_move_into_a_gap_whose_key_would_grow_too_long_rebalances_first(
    create_list: CreateList, move_list: MoveList, store: FakeStore
) -> None:
    a, b, c = [await create_list.execute(ADA, name) for name in "ABC"]
    store.lists[b.id] = replace(store.lists[b.id], position=crowded_after(store.lists[a.id].position))
    assert needs_rebalance(key_between(store.lists[a.id].position, store.lists[b.id].position))
    await move_list.execute(ADA, c.id, after_id=a.id)
    assert list_names(store) == ["Inbox", "A", "C", "B"]
    keys = [store.lists[x.id].position for x in (a, c, b)]
    assert is_strictly_ordered(keys)
    assert max(map(len, keys)) <= MAX_KEY_CHARS
    assert store.lists[a.id].version > 1  # it never moved: only a rebalance gave it a new key


async def test_a_tie_between_two_lists_is_rebalanced_before_one_goes_between(
    create_list: CreateList, move_list: MoveList, store: FakeStore
) -> None:
    a, b, c = [await create_list.execute(ADA, name) for name in "ABC"]
    store.lists[b.id] = replace(store.lists[b.id], position=store.lists[a.id].position)
    await move_list.execute(ADA, c.id, after_id=a.id)
    assert list_names(store) == ["Inbox", "A", "C", "B"]
    assert is_strictly_ordered([store.lists[x.id].position for x in (a, c, b)])


async def test_a_list_move_next_to_itself_a_foreign_list_or_with_a_stale_etag_is_refused(
    create_list: CreateList, move_list: MoveList, store: FakeStore
) -> None:
    a, b = await create_list.execute(ADA, "A"), await create_list.execute(ADA, "B")
    theirs = await create_list.execute(BOB, "Theirs")
    before = store.snapshot()
    with pytest.raises(InvalidInput) as itself:
        await move_list.execute(ADA, a.id, after_id=a.id)
    with pytest.raises(InvalidInput) as both:
        await move_list.execute(ADA, a.id, before_id=b.id, after_id=b.id)
    with pytest.raises(NotFound) as foreign_anchor:
        await move_list.execute(ADA, a.id, after_id=theirs.id)
    with pytest.raises(NotFound) as foreign_list:
        await move_list.execute(ADA, theirs.id, after_id=a.id)
    with pytest.raises(PreconditionFailed):
        await move_list.execute(ADA, a.id, after_id=b.id, if_match=frozenset({7}))
    assert [e.value.code for e in (itself, both, foreign_anchor, foreign_list)] == [
        "invalid_move", "invalid_move", "list_not_found", "list_not_found",
    ]  # fmt: skip
    assert store == before


async def test_a_task_without_a_list_goes_to_the_inbox_made_on_first_need(
    create_task: CreateTask, store: FakeStore
) -> None:
    first, second = await add(create_task, "First"), await add(create_task, "Second")
    assert first.list_id == second.list_id
    assert store.lists[first.list_id].is_inbox
    assert first.position < second.position


async def test_a_task_in_another_users_list_is_refused_as_not_found(
    create_list: CreateList, create_task: CreateTask, store: FakeStore
) -> None:
    theirs = await create_list.execute(BOB, "Secret")
    with pytest.raises(NotFound) as refused:
        await add(create_task, "Sneak", list_id=theirs.id)
    assert refused.value.code == "list_not_found"
    assert store.tasks == {}


async def test_a_subtask_lives_in_its_parents_list_after_its_siblings(
    create_list: CreateList, create_task: CreateTask
) -> None:
    work = await create_list.execute(ADA, "Work")
    parent = await add(create_task, "Report", list_id=work.id)
    first = await add(create_task, "Outline", parent_id=parent.id)
    second = await add(create_task, "Draft", parent_id=parent.id)
    assert (first.list_id, first.parent_id) == (work.id, parent.id)
    assert first.position < second.position


async def test_a_subtask_naming_another_list_than_its_parents_is_refused(
    create_list: CreateList, create_task: CreateTask
) -> None:
    work, home = await create_list.execute(ADA, "Work"), await create_list.execute(ADA, "Home")
    parent = await add(create_task, "Report", list_id=work.id)
    with pytest.raises(InvalidInput) as refused:
        await add(create_task, "Outline", parent_id=parent.id, list_id=home.id)
    assert refused.value.code == "list_mismatch"


async def test_nesting_stops_at_the_maximum_depth(create_task: CreateTask, store: FakeStore) -> None:
    parent = await add(create_task, "Level 1")
    for level in range(2, MAX_DEPTH + 1):
        parent = await add(create_task, f"Level {level}", parent_id=parent.id)
    with pytest.raises(InvalidInput) as refused:
        await add(create_task, "Too deep", parent_id=parent.id)
    assert refused.value.code == "too_deep"
    assert len(store.tasks) == MAX_DEPTH


async def test_a_parent_of_another_user_is_not_found(create_task: CreateTask, uow: FakeUnitOfWorkFactory) -> None:
    theirs = (await CreateTask(uow, FakeClock(), RULES).execute(BOB, TaskDraft("Theirs"))).task
    with pytest.raises(NotFound) as refused:
        await add(create_task, "Mine", parent_id=theirs.id)
    assert refused.value.code == "parent_not_found"


async def test_a_list_in_the_persons_order_pages_its_top_level_tasks(
    create_list: CreateList, create_task: CreateTask, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    work = await create_list.execute(ADA, "Work")
    tasks = [await add(create_task, f"Task {number}", list_id=work.id) for number in range(5)]
    await add(create_task, "A subtask", parent_id=tasks[0].id)
    await add(create_task, "Elsewhere")
    query = TaskQuery(TaskFilter(list_id=work.id, top_level=True), Sort("position", descending=False), limit=10)
    page = await ListTasks(uow, clock).execute(ADA, query)
    assert [task.id for task in page.tasks] == [task.id for task in tasks]
    assert is_strictly_ordered([task.position for task in page.tasks])


def test_a_filter_cannot_ask_for_top_level_tasks_under_a_parent() -> None:
    with pytest.raises(InvalidInput) as refused:
        TaskFilter(parent_id=1, top_level=True)
    assert refused.value.code == "invalid_parent"


# --- Moving: order, parents, lists ------------------------------------------------------------------


@pytest.fixture
def move(uow: FakeUnitOfWorkFactory, clock: FakeClock) -> MoveTask:
    return MoveTask(uow, clock)


def in_order(store: FakeStore, list_id: int, parent_id: int | None = None) -> list[str]:
    group = [t for t in store.tasks.values() if (t.list_id, t.parent_id) == (list_id, parent_id)]
    return [t.title for t in sorted(group, key=lambda t: (t.position, t.id))]


async def test_moving_after_a_sibling_writes_only_the_moved_task(
    create_task: CreateTask, move: MoveTask, store: FakeStore
) -> None:
    a, _, c = [await add(create_task, title) for title in "ABC"]
    before = dict(store.tasks)
    moved = await move.execute(ADA, c.id, Move(after_id=a.id))
    assert in_order(store, a.list_id) == ["A", "C", "B"]
    assert moved.version == c.version + 1
    assert {i for i in store.tasks if store.tasks[i] != before[i]} == {c.id}


async def test_moving_before_the_first_puts_it_first(create_task: CreateTask, move: MoveTask, store: FakeStore) -> None:
    a, _, c = [await add(create_task, title) for title in "ABC"]
    await move.execute(ADA, c.id, Move(before_id=a.id))
    assert in_order(store, a.list_id) == ["C", "A", "B"]


async def test_moving_to_another_list_takes_the_subtree_and_puts_it_last_at_the_top_level(
    create_list: CreateList, create_task: CreateTask, move: MoveTask, store: FakeStore
) -> None:
    home = await create_list.execute(ADA, "Home")
    await add(create_task, "Already home", list_id=home.id)
    parent = await add(create_task, "Report")
    child = await add(create_task, "Outline", parent_id=parent.id)
    grandchild = await add(create_task, "Sources", parent_id=child.id)
    await move.execute(ADA, parent.id, Move(list_id=home.id))
    assert in_order(store, home.id) == ["Already home", "Report"]
    assert {store.tasks[t.id].list_id for t in (parent, child, grandchild)} == {home.id}
    assert store.tasks[grandchild.id].parent_id == child.id


async def test_a_task_cannot_go_under_its_own_subtask(create_task: CreateTask, move: MoveTask) -> None:
    parent = await add(create_task, "Report")
    child = await add(create_task, "Outline", parent_id=parent.id)
    with pytest.raises(InvalidInput) as refused:
        await move.execute(ADA, parent.id, Move(parent_id=child.id))
    assert refused.value.code == "cycle"


async def test_moving_a_subtree_under_a_deep_parent_is_refused_past_the_depth(
    create_task: CreateTask, move: MoveTask
) -> None:
    deep = await add(create_task, "1")
    for level in range(2, MAX_DEPTH):
        deep = await add(create_task, str(level), parent_id=deep.id)
    parent = await add(create_task, "Report")
    await add(create_task, "Outline", parent_id=parent.id)
    with pytest.raises(InvalidInput) as refused:
        await move.execute(ADA, parent.id, Move(parent_id=deep.id))
    assert refused.value.code == "too_deep"


async def test_a_subtask_moved_to_the_top_level_keeps_its_list(
    create_task: CreateTask, move: MoveTask, store: FakeStore
) -> None:
    parent = await add(create_task, "Report")
    child = await add(create_task, "Outline", parent_id=parent.id)
    moved = await move.execute(ADA, child.id, Move(parent_id=None))
    assert (moved.parent_id, moved.list_id) == (None, parent.list_id)
    assert in_order(store, parent.list_id) == ["Report", "Outline"]


async def test_a_foreign_sibling_parent_or_list_is_not_found(
    create_list: CreateList, create_task: CreateTask, move: MoveTask, uow: FakeUnitOfWorkFactory
) -> None:
    mine = await add(create_task, "Mine")
    theirs = (await CreateTask(uow, FakeClock(), RULES).execute(BOB, TaskDraft("Theirs"))).task
    their_list = await create_list.execute(BOB, "Theirs")
    for move_it, code in [
        (Move(after_id=theirs.id), "task_not_found"),
        (Move(parent_id=theirs.id), "parent_not_found"),
        (Move(list_id=their_list.id), "list_not_found"),
    ]:
        with pytest.raises(NotFound) as refused:
            await move.execute(ADA, mine.id, move_it)
        assert refused.value.code == code


async def test_two_tasks_with_the_same_key_get_the_group_rebalanced_before_one_goes_between(
    create_task: CreateTask, move: MoveTask, store: FakeStore
) -> None:
    a, b, c = [await add(create_task, title) for title in "ABC"]
    store.tasks[b.id] = replace(
        store.tasks[b.id], position=store.tasks[a.id].position
    )  # a tie, as two racing moves leave
    await move.execute(ADA, c.id, Move(after_id=a.id))
    assert in_order(store, a.list_id) == ["A", "C", "B"]
    assert is_strictly_ordered([store.tasks[t.id].position for t in (a, c, b)])


async def test_a_move_into_a_gap_whose_key_would_grow_too_long_rebalances_first(
    create_task: CreateTask, move: MoveTask, store: FakeStore
) -> None:
    a, b, c = [await add(create_task, title) for title in "ABC"]
    store.tasks[b.id] = replace(store.tasks[b.id], position=crowded_after(store.tasks[a.id].position))
    assert needs_rebalance(key_between(store.tasks[a.id].position, store.tasks[b.id].position))
    await move.execute(ADA, c.id, Move(after_id=a.id))
    assert in_order(store, a.list_id) == ["A", "C", "B"]
    keys = [store.tasks[t.id].position for t in (a, c, b)]
    assert is_strictly_ordered(keys)
    assert max(map(len, keys)) <= MAX_KEY_CHARS
    assert store.tasks[a.id].version > 1  # it never moved: only a rebalance gave it a new key


async def test_before_and_after_together_are_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        Move(before_id=1, after_id=2)
    assert refused.value.code == "invalid_move"


# --- Completion and deletion through the tree -------------------------------------------------------


async def test_completing_a_parent_completes_its_open_subtasks_each_as_a_new_version(
    create_task: CreateTask, uow: FakeUnitOfWorkFactory, clock: FakeClock, store: FakeStore
) -> None:
    parent = await add(create_task, "Report")
    child = await add(create_task, "Outline", parent_id=parent.id)
    grandchild = await add(create_task, "Sources", parent_id=child.id)
    done = (await create_task.execute(ADA, TaskDraft("Done already", parent_id=parent.id, completed=True))).task
    await SetTaskCompletion(uow, clock, RULES).execute(ADA, parent.id, True)
    assert all(store.tasks[t.id].completed for t in (parent, child, grandchild))
    assert (store.tasks[child.id].version, store.tasks[grandchild.id].version) == (2, 2)
    assert store.tasks[done.id] == done


async def test_reopening_a_parent_leaves_its_subtasks_as_they_are(
    create_task: CreateTask, uow: FakeUnitOfWorkFactory, clock: FakeClock, store: FakeStore
) -> None:
    parent = await add(create_task, "Report")
    child = await add(create_task, "Outline", parent_id=parent.id)
    await SetTaskCompletion(uow, clock, RULES).execute(ADA, parent.id, True)
    await SetTaskCompletion(uow, clock, RULES).execute(ADA, parent.id, False)
    assert not store.tasks[parent.id].completed
    assert store.tasks[child.id].completed


async def test_deleting_a_parent_deletes_its_subtree(
    create_task: CreateTask, uow: FakeUnitOfWorkFactory, store: FakeStore
) -> None:
    parent = await add(create_task, "Report")
    child = await add(create_task, "Outline", parent_id=parent.id)
    await add(create_task, "Sources", parent_id=child.id)
    kept = await add(create_task, "Other")
    await DeleteTask(uow, uow.clock).execute(ADA, parent.id)
    assert list(store.tasks) == [kept.id]


# --- Bulk changes ------------------------------------------------------------------------------------


@pytest.fixture
def bulk(uow: FakeUnitOfWorkFactory, clock: FakeClock) -> BulkChangeTasks:
    return BulkChangeTasks(uow, clock, RULES)


async def test_a_bulk_complete_completes_each_task_with_its_own_new_version(
    create_task: CreateTask, bulk: BulkChangeTasks, store: FakeStore
) -> None:
    tasks = [await add(create_task, f"T{number}") for number in range(3)]
    outcome = await bulk.execute(ADA, [BulkOperation("complete", tuple(t.id for t in tasks))])
    assert outcome.outcome.applied
    assert [(r.task_id, r.code) for r in outcome.outcome.results] == [(t.id, "ok") for t in tasks]
    assert all(store.tasks[t.id].completed and store.tasks[t.id].version == 2 for t in tasks)


async def test_an_atomic_bulk_with_one_failure_writes_nothing_and_says_which_failed(
    create_task: CreateTask, bulk: BulkChangeTasks, store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    mine = await add(create_task, "Mine")
    theirs = (await CreateTask(uow, FakeClock(), RULES).execute(BOB, TaskDraft("Theirs"))).task
    before = dict(store.tasks)
    outcome = await bulk.execute(ADA, [BulkOperation("complete", (mine.id, theirs.id))])
    assert not outcome.outcome.applied
    assert [(r.task_id, r.code) for r in outcome.outcome.results] == [(mine.id, "ok"), (theirs.id, "task_not_found")]
    assert store.tasks == before


async def test_a_non_atomic_bulk_writes_what_succeeded(
    create_task: CreateTask, bulk: BulkChangeTasks, store: FakeStore
) -> None:
    mine = await add(create_task, "Mine")
    outcome = await bulk.execute(ADA, [BulkOperation("complete", (mine.id, 999_999))], atomic=False)
    assert outcome.outcome.applied
    assert [r.code for r in outcome.outcome.results] == ["ok", "task_not_found"]
    assert store.tasks[mine.id].completed


async def test_a_bulk_update_adds_and_removes_tags_and_sets_priority_and_due(
    create_task: CreateTask, bulk: BulkChangeTasks, store: FakeStore, clock: FakeClock
) -> None:
    task = (await create_task.execute(ADA, TaskDraft("Tagged", tags=("home", "old")))).task
    due = clock.now()
    operation = BulkOperation(
        "update", (task.id,), priority=Priority.HIGH, add_tags=(" Work ",), remove_tags=("OLD",), due_at=due
    )
    assert (await bulk.execute(ADA, [operation])).outcome.applied
    assert (store.tasks[task.id].tags, store.tasks[task.id].priority, store.tasks[task.id].due_at) == (
        ("home", "work"),
        Priority.HIGH,
        due,
    )


async def test_a_bulk_move_puts_the_tasks_at_the_end_of_the_list_in_the_order_given(
    create_list: CreateList, create_task: CreateTask, bulk: BulkChangeTasks, store: FakeStore
) -> None:
    home = await create_list.execute(ADA, "Home")
    await add(create_task, "Already home", list_id=home.id)
    a, b = await add(create_task, "A"), await add(create_task, "B")
    child = await add(create_task, "B's subtask", parent_id=b.id)
    assert (await bulk.execute(ADA, [BulkOperation("move", (b.id, a.id), list_id=home.id)])).outcome.applied
    assert in_order(store, home.id) == ["Already home", "B", "A"]
    assert store.tasks[child.id].list_id == home.id


async def test_a_bulk_delete_and_complete_of_a_parent_cascade_to_subtasks(
    create_task: CreateTask, bulk: BulkChangeTasks, store: FakeStore
) -> None:
    done, gone = await add(create_task, "Done"), await add(create_task, "Gone")
    done_child = await add(create_task, "Done's", parent_id=done.id)
    await add(create_task, "Gone's", parent_id=gone.id)
    await bulk.execute(ADA, [BulkOperation("complete", (done.id,)), BulkOperation("delete", (gone.id,))])
    assert store.tasks[done_child.id].completed
    assert set(store.tasks) == {done.id, done_child.id}


@pytest.mark.parametrize(
    ("script", "codes"),
    [
        # (op, task) in order; "P" is the parent, "C" its subtask, "G" C's subtask.
        ([("delete", "P"), ("complete", "C")], ["ok", "task_not_found"]),
        ([("complete", "P"), ("reopen", "C")], ["ok", "ok"]),
        ([("complete", "C"), ("delete", "P"), ("reopen", "G")], ["ok", "ok", "task_not_found"]),
        ([("move", "P"), ("update", "C")], ["ok", "ok"]),
        ([("move", "C"), ("complete", "P"), ("reopen", "G")], ["ok", "ok", "ok"]),
    ],
)
async def test_a_bulk_answers_and_leaves_what_the_single_task_calls_one_after_another_would(
    uow: FakeUnitOfWorkFactory,
    clock: FakeClock,
    create_task: CreateTask,
    store: FakeStore,
    script: list[tuple[str, str]],
    codes: list[str],
) -> None:
    """The same tree twice: once changed by one bulk, once by the single-task use cases."""
    work = await CreateList(uow, clock).execute(ADA, "Work")
    trees = []
    for _ in range(2):
        p = await add(create_task, "P")
        c = await add(create_task, "C", parent_id=p.id)
        g = await add(create_task, "G", parent_id=c.id)
        trees.append({"P": p.id, "C": c.id, "G": g.id})
    bulked, single = trees

    def operation(op: str, task_id: int) -> BulkOperation:
        if op == "move":
            return BulkOperation("move", (task_id,), list_id=work.id)
        if op == "update":
            return BulkOperation("update", (task_id,), priority=Priority.HIGH)
        return BulkOperation(op, (task_id,))  # type: ignore[arg-type]

    operations = [operation(op, bulked[name]) for op, name in script]
    outcome = await BulkChangeTasks(uow, clock, RULES).execute(ADA, operations, atomic=False)  # a failure is expected
    assert [result.code for result in outcome.outcome.results] == codes
    single_codes = []
    for op, name in script:
        try:
            task_id = single[name]
            if op == "delete":
                await DeleteTask(uow, uow.clock).execute(ADA, task_id)
            elif op in ("complete", "reopen"):
                await SetTaskCompletion(uow, clock, RULES).execute(ADA, task_id, op == "complete")
            elif op == "move":
                await MoveTask(uow, clock).execute(ADA, task_id, Move(list_id=work.id, parent_id=None))
            else:
                await UpdateTask(uow, clock, RULES).execute(ADA, task_id, TaskChanges(priority=Priority.HIGH))
        except NotFound as error:
            single_codes.append(error.code)
        else:
            single_codes.append("ok")
    assert single_codes == codes

    def state(ids: dict[str, int]) -> dict[str, tuple[object, ...] | None]:
        def of(task_id: int) -> tuple[object, ...] | None:
            task = store.tasks.get(task_id)
            if task is None:
                return None
            parent = next((name for name, i in ids.items() if i == task.parent_id), task.parent_id)
            return (task.completed, task.list_id, parent, task.priority)

        return {name: of(task_id) for name, task_id in ids.items()}

    assert state(bulked) == state(single)


async def test_more_than_a_hundred_tasks_is_refused(bulk: BulkChangeTasks) -> None:
    with pytest.raises(InvalidInput) as refused:
        await bulk.execute(ADA, [BulkOperation("complete", tuple(range(1, 102)))])
    assert refused.value.code == "too_many_tasks"


async def test_a_bulk_move_to_a_foreign_list_fails_each_task_with_list_not_found(
    create_list: CreateList, create_task: CreateTask, bulk: BulkChangeTasks
) -> None:
    theirs = await create_list.execute(BOB, "Theirs")
    mine = await add(create_task, "Mine")
    outcome = await bulk.execute(ADA, [BulkOperation("move", (mine.id,), list_id=theirs.id)])
    assert [r.code for r in outcome.outcome.results] == ["list_not_found"]
    assert not outcome.outcome.applied
