"""Tasks, use case by use case, against the in-memory fakes: create (idempotently), list, get,
update, set completion, delete, and what concurrent writers and failures leave behind."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from tests.unit.fakes import Change, FakeClock, FakeStore, FakeUnitOfWorkFactory, IdempotencyRecord
from todo_api.adapters.calendar.rrule import RruleRecurrences
from todo_api.domain.errors import InvalidInput, NotFound, PreconditionFailed, TransientConflict
from todo_api.domain.ports import IdempotentOutcome
from todo_api.domain.tasks import (
    Position,
    Priority,
    Sort,
    Task,
    TaskChanges,
    TaskDraft,
    TaskFilter,
    TaskQuery,
    sort_value,
)
from todo_api.use_cases.idempotency import IDEMPOTENCY_WINDOW, fingerprint
from todo_api.use_cases.overview import CompleteAll
from todo_api.use_cases.tasks import (
    Created,
    CreateTask,
    DeleteTask,
    GetTask,
    ListTasks,
    SetTaskCompletion,
    UpdateTask,
)

RULES = RruleRecurrences()

ADA = "a" * 32
BOB = "b" * 32
KEY = "9b2f0c1e-create-oat-milk"
MILK = TaskDraft("Buy oat milk")


class StoreUnavailable(Exception):
    """A failure half-way through a transaction, after something was written."""


# --- Fixtures ----------------------------------------------------------------------------------------


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
def create(uow: FakeUnitOfWorkFactory, clock: FakeClock) -> CreateTask:
    return CreateTask(uow, clock, RULES)


@pytest.fixture
def list_tasks(uow: FakeUnitOfWorkFactory, clock: FakeClock) -> ListTasks:
    return ListTasks(uow, clock)


@pytest.fixture
def get(uow: FakeUnitOfWorkFactory) -> GetTask:
    return GetTask(uow)


@pytest.fixture
def update(uow: FakeUnitOfWorkFactory, clock: FakeClock) -> UpdateTask:
    return UpdateTask(uow, clock, RULES)


@pytest.fixture
def complete(uow: FakeUnitOfWorkFactory, clock: FakeClock) -> SetTaskCompletion:
    return SetTaskCompletion(uow, clock, RULES)


@pytest.fixture
def delete(uow: FakeUnitOfWorkFactory, clock: FakeClock) -> DeleteTask:
    return DeleteTask(uow, clock)


@pytest.fixture
async def milk(create: CreateTask, clock: FakeClock) -> Task:
    """Ada's task, created a minute ago at version 1."""
    task = (await create.execute(ADA, MILK)).task
    clock.advance(60)
    return task


# --- Helpers -----------------------------------------------------------------------------------------


async def create_tasks(create: CreateTask, clock: FakeClock, *titles: str, user_id: str = ADA) -> list[Task]:
    """One task per title, a second apart, so each is newer than the one before."""
    tasks = []
    for title in titles:
        tasks.append((await create.execute(user_id, TaskDraft(title))).task)
        clock.advance(1)
    return tasks


def written_elsewhere(task_id: int, **values: Any) -> Change:
    """Another client's committed write to the task: the given values, at the next version."""

    def change(store: FakeStore) -> None:
        task = store.tasks[task_id]
        store.tasks[task_id] = replace(task, version=task.version + 1, **values)

    return change


def deleted_elsewhere(task_id: int) -> Change:
    def change(store: FakeStore) -> None:
        del store.tasks[task_id]

    return change


def failing(store: FakeStore) -> None:
    raise StoreUnavailable


def aborted(store: FakeStore) -> None:
    """The database aborting the transaction as a serialisation failure or deadlock."""
    raise TransientConflict("Too many concurrent writes; try again.", retry_after_s=1)


async def served_elsewhere(clock: FakeClock, draft: TaskDraft, *, task_id: int) -> Change:
    """The same request, served by another worker that claimed `KEY` first: its task and its record."""
    elsewhere = FakeUnitOfWorkFactory(clock=clock)
    created = await CreateTask(elsewhere, clock, RULES).execute(ADA, draft, KEY)
    record = elsewhere.store.idempotency_keys[(ADA, KEY)]
    task = replace(created.task, id=task_id)
    record = IdempotencyRecord(IdempotentOutcome(record.outcome.request_hash, task), record.created_at)

    def change(store: FakeStore) -> None:
        store.tasks[task_id] = task
        store.idempotency_keys[(ADA, KEY)] = record
        store.last_task_id = max(store.last_task_id, task_id)

    return change


async def refused_as_stale(call: Any) -> PreconditionFailed:
    with pytest.raises(PreconditionFailed) as refused:
        await call
    return refused.value


async def not_found_code(call: Any) -> str:
    with pytest.raises(NotFound) as refused:
        await call
    return refused.value.code


# --- The fake unit of work: tasks and keys roll back too ---------------------------------------------


async def test_tasks_and_keys_a_unit_of_work_does_not_commit_are_rolled_back(
    uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    async with uow() as unit:
        task = await unit.tasks.add(ADA, MILK, clock.now(), list_id=1, position="a0")
        await unit.idempotency_keys.claim(ADA, KEY, IdempotentOutcome("hash", task), clock.now(), clock.now())
        await unit.rollback()
    assert uow.store == FakeStore()


async def test_a_write_another_transaction_commits_outlives_this_ones_rollback(
    uow: FakeUnitOfWorkFactory, milk: Task
) -> None:
    uow.others.before_task_save.append(written_elsewhere(milk.id, title="Theirs"))
    async with uow() as unit:
        await unit.tasks.save(replace(milk, title="Ours"), expected_version=milk.version)
    assert (uow.store.tasks[milk.id].title, uow.store.tasks[milk.id].version) == ("Theirs", 2)


# --- CreateTask --------------------------------------------------------------------------------------


async def test_a_created_task_is_stored_with_the_normalised_draft(
    create: CreateTask, store: FakeStore, clock: FakeClock
) -> None:
    draft = TaskDraft("  Buy oat milk ", description="  ", priority=Priority.HIGH, tags=("Shop", " shop", "Home"))
    created = await create.execute(ADA, draft)
    assert store.tasks == {
        created.task.id: Task(
            id=created.task.id,
            user_id=ADA,
            title="Buy oat milk",
            description=None,
            completed=False,
            completed_at=None,
            priority=Priority.HIGH,
            tags=("shop", "home"),
            due_at=None,
            created_at=clock.now(),
            updated_at=clock.now(),
            version=1,
            list_id=created.task.list_id,
            parent_id=None,
            position="a0",
        )
    }
    assert created == Created(store.tasks[created.task.id], replayed=False)


async def test_a_task_created_completed_is_completed_at_its_creation_time(create: CreateTask, clock: FakeClock) -> None:
    task = (await create.execute(ADA, TaskDraft("Buy oat milk", completed=True))).task
    assert (task.completed, task.completed_at) == (True, clock.now())


async def test_every_created_task_gets_an_id_of_its_own(create: CreateTask, store: FakeStore) -> None:
    first = await create.execute(ADA, MILK)
    second = await create.execute(ADA, MILK)
    assert first.task.id != second.task.id
    assert len(store.tasks) == 2


async def test_a_retry_with_the_same_idempotency_key_replays_the_first_task(
    create: CreateTask, store: FakeStore, clock: FakeClock
) -> None:
    first = await create.execute(ADA, MILK, KEY)
    clock.advance(30)
    retry = await create.execute(ADA, MILK, KEY)
    assert (retry.task, retry.replayed) == (first.task, True)
    assert list(store.tasks.values()) == [first.task]


async def test_the_first_request_with_a_key_is_not_a_replay(create: CreateTask) -> None:
    assert (await create.execute(ADA, MILK, KEY)).replayed is False


async def test_a_retry_differing_only_in_what_normalisation_removes_is_a_replay(create: CreateTask) -> None:
    first = await create.execute(ADA, TaskDraft("Buy oat milk", tags=("home",)), KEY)
    retry = await create.execute(ADA, TaskDraft("  Buy oat milk ", tags=(" Home", "home")), KEY)
    assert (retry.task, retry.replayed) == (first.task, True)


async def test_a_replay_returns_the_task_as_it_was_created(
    create: CreateTask, update: UpdateTask, clock: FakeClock
) -> None:
    first = await create.execute(ADA, MILK, KEY)
    clock.advance(60)
    await update.execute(ADA, first.task.id, TaskChanges(title="Buy soy milk"))
    assert (await create.execute(ADA, MILK, KEY)).task == first.task


async def test_the_same_key_with_a_different_request_is_refused_with_code_idempotency_key_reused(
    create: CreateTask, store: FakeStore
) -> None:
    await create.execute(ADA, MILK, KEY)
    before = store.snapshot()
    with pytest.raises(InvalidInput) as refused:
        await create.execute(ADA, TaskDraft("Buy soy milk"), KEY)
    assert refused.value.code == "idempotency_key_reused"
    assert store == before


async def test_the_same_key_from_another_user_creates_their_own_task(create: CreateTask, store: FakeStore) -> None:
    adas = await create.execute(ADA, MILK, KEY)
    bobs = await create.execute(BOB, MILK, KEY)
    assert (bobs.replayed, bobs.task.user_id) == (False, BOB)
    assert bobs.task.id != adas.task.id
    assert len(store.tasks) == 2


async def test_another_key_creates_another_task(create: CreateTask, store: FakeStore) -> None:
    await create.execute(ADA, MILK, KEY)
    assert (await create.execute(ADA, MILK, "another-key")).replayed is False
    assert len(store.tasks) == 2


async def test_a_key_is_replayed_until_just_before_24_hours_have_passed(create: CreateTask, clock: FakeClock) -> None:
    first = await create.execute(ADA, MILK, KEY)
    clock.advance(IDEMPOTENCY_WINDOW.total_seconds() - 1)
    assert (await create.execute(ADA, MILK, KEY)).task == first.task


async def test_a_key_is_fresh_again_24_hours_after_its_first_use(
    create: CreateTask, store: FakeStore, clock: FakeClock
) -> None:
    first = await create.execute(ADA, MILK, KEY)
    clock.advance(IDEMPOTENCY_WINDOW.total_seconds())
    again = await create.execute(ADA, TaskDraft("Buy soy milk"), KEY)
    assert again.replayed is False
    assert again.task.id != first.task.id
    assert len(store.tasks) == 2


async def test_a_key_used_again_after_24_hours_replays_its_new_task(create: CreateTask, clock: FakeClock) -> None:
    await create.execute(ADA, MILK, KEY)
    clock.advance(IDEMPOTENCY_WINDOW.total_seconds())
    second = await create.execute(ADA, MILK, KEY)
    clock.advance(60)
    assert (await create.execute(ADA, MILK, KEY)).task == second.task


async def test_a_create_that_loses_the_race_for_its_key_replays_the_winner(
    create: CreateTask, uow: FakeUnitOfWorkFactory, store: FakeStore, clock: FakeClock
) -> None:
    uow.others.before_key_claim.append(await served_elsewhere(clock, MILK, task_id=42))
    created = await create.execute(ADA, MILK, KEY)
    assert (created.task.id, created.replayed) == (42, True)
    assert list(store.tasks) == [42]


async def test_a_create_that_loses_the_race_to_a_different_request_with_its_key_is_refused(
    create: CreateTask, uow: FakeUnitOfWorkFactory, store: FakeStore, clock: FakeClock
) -> None:
    uow.others.before_key_claim.append(await served_elsewhere(clock, TaskDraft("Buy soy milk"), task_id=42))
    with pytest.raises(InvalidInput) as refused:
        await create.execute(ADA, MILK, KEY)
    assert refused.value.code == "idempotency_key_reused"
    assert list(store.tasks) == [42]


async def test_a_create_that_fails_after_adding_its_task_leaves_no_task_and_no_key(
    create: CreateTask, uow: FakeUnitOfWorkFactory, store: FakeStore, milk: Task
) -> None:
    before = store.snapshot()
    uow.others.before_key_claim.append(failing)
    with pytest.raises(StoreUnavailable):
        await create.execute(ADA, TaskDraft("Buy soy milk"), KEY)
    assert store == before


async def test_a_create_aborted_as_a_transient_conflict_is_run_again_and_stores_one_task(
    create: CreateTask, uow: FakeUnitOfWorkFactory, store: FakeStore
) -> None:
    uow.others.before_key_claim.append(aborted)
    created = await create.execute(ADA, MILK, KEY)
    assert created.replayed is False
    assert list(store.tasks.values()) == [created.task]
    assert store.idempotency_keys[(ADA, KEY)].outcome.result == created.task


async def test_a_create_aborted_on_every_attempt_gives_up_with_the_conflict_and_stores_nothing(
    create: CreateTask, uow: FakeUnitOfWorkFactory, store: FakeStore
) -> None:
    uow.others.before_key_claim.extend([aborted] * 3)
    with pytest.raises(TransientConflict):
        await create.execute(ADA, MILK, KEY)
    assert store == FakeStore()


# --- ListTasks ---------------------------------------------------------------------------------------


async def test_a_page_lists_the_callers_tasks_newest_first(
    create: CreateTask, list_tasks: ListTasks, clock: FakeClock
) -> None:
    older, newer = await create_tasks(create, clock, "Older", "Newer")
    await create_tasks(create, clock, "Bob's", user_id=BOB)
    page = await list_tasks.execute(ADA, TaskQuery())
    assert page.tasks == [newer, older]


async def test_a_page_shorter_than_the_limit_has_no_next_position(
    create: CreateTask, list_tasks: ListTasks, clock: FakeClock
) -> None:
    await create_tasks(create, clock, "One", "Two")
    assert (await list_tasks.execute(ADA, TaskQuery(limit=3))).next_position is None


async def test_a_page_holding_exactly_the_last_tasks_has_no_next_position(
    create: CreateTask, list_tasks: ListTasks, clock: FakeClock
) -> None:
    await create_tasks(create, clock, "One", "Two", "Three")
    page = await list_tasks.execute(ADA, TaskQuery(limit=3))
    assert (len(page.tasks), page.next_position) == (3, None)


async def test_a_page_with_more_tasks_after_it_ends_at_its_last_tasks_position(
    create: CreateTask, list_tasks: ListTasks, clock: FakeClock
) -> None:
    _, two, three = await create_tasks(create, clock, "One", "Two", "Three")
    page = await list_tasks.execute(ADA, TaskQuery(limit=2))
    assert page.tasks == [three, two]
    assert page.next_position == Position(two.created_at, two.id)


async def test_following_the_next_position_lists_the_rest(
    create: CreateTask, list_tasks: ListTasks, clock: FakeClock
) -> None:
    one, _, _ = await create_tasks(create, clock, "One", "Two", "Three")
    first = await list_tasks.execute(ADA, TaskQuery(limit=2))
    rest = await list_tasks.execute(ADA, TaskQuery(limit=2, after=first.next_position))
    assert (rest.tasks, rest.next_position) == ([one], None)


async def test_the_next_position_holds_the_sort_value_of_the_sort_in_use(
    create: CreateTask, list_tasks: ListTasks, clock: FakeClock
) -> None:
    await create_tasks(create, clock, "Banana", "apple", "Cherry")
    sort = Sort("title", descending=False)
    page = await list_tasks.execute(ADA, TaskQuery(sort=sort, limit=2))
    assert [task.title for task in page.tasks] == ["apple", "Banana"]
    assert page.next_position == Position("Banana", page.tasks[-1].id)


async def test_a_page_has_no_total_unless_asked_for_one(
    create: CreateTask, list_tasks: ListTasks, clock: FakeClock
) -> None:
    await create_tasks(create, clock, "One", "Two")
    assert (await list_tasks.execute(ADA, TaskQuery())).total is None


async def test_the_total_counts_every_matching_task_not_just_the_page(
    create: CreateTask, list_tasks: ListTasks, clock: FakeClock
) -> None:
    await create_tasks(create, clock, "One", "Two", "Three")
    await create_tasks(create, clock, "Bob's", user_id=BOB)
    page = await list_tasks.execute(ADA, TaskQuery(limit=1), include_total=True)
    assert (len(page.tasks), page.total) == (1, 3)


async def test_an_empty_list_is_an_empty_last_page(list_tasks: ListTasks) -> None:
    page = await list_tasks.execute(ADA, TaskQuery(), include_total=True)
    assert (page.tasks, page.next_position, page.total) == ([], None, 0)


async def test_sorting_by_due_date_puts_tasks_without_one_last_in_either_direction(
    create: CreateTask, list_tasks: ListTasks, clock: FakeClock
) -> None:
    soon = (await create.execute(ADA, TaskDraft("Soon", due_at=clock.now() + timedelta(days=1)))).task
    undated = (await create.execute(ADA, TaskDraft("Whenever"))).task
    later = (await create.execute(ADA, TaskDraft("Later", due_at=clock.now() + timedelta(days=2)))).task
    ascending = await list_tasks.execute(ADA, TaskQuery(sort=Sort("due_at", descending=False)))
    descending = await list_tasks.execute(ADA, TaskQuery(sort=Sort("due_at", descending=True)))
    assert (ascending.tasks, descending.tasks) == ([soon, later, undated], [later, soon, undated])


async def test_a_filter_narrows_both_the_page_and_the_total(
    create: CreateTask, list_tasks: ListTasks, clock: FakeClock
) -> None:
    tagged = (await create.execute(ADA, TaskDraft("Oat milk", tags=("shop", "home")))).task
    await create.execute(ADA, TaskDraft("Oat milk", tags=("shop",)))
    await create.execute(ADA, TaskDraft("Call mum", tags=("home", "shop")))
    query = TaskQuery(filter=TaskFilter(tags=("Home", "shop"), search="OAT"))
    page = await list_tasks.execute(ADA, query, include_total=True)
    assert (page.tasks, page.total) == ([tagged], 1)


@pytest.mark.parametrize(
    ("task_filter", "expected"),
    [
        (TaskFilter(status="pending"), ["Open, overdue", "Open, due later", "Open, undated"]),
        (TaskFilter(status="completed"), ["Done, overdue"]),
        (TaskFilter(priorities=frozenset({Priority.HIGH})), ["Open, overdue", "Done, overdue"]),
        (TaskFilter(search="DUE LATER"), ["Open, due later"]),
        (TaskFilter(search="%"), []),
        (TaskFilter(overdue=True), ["Open, overdue"]),
    ],
)
async def test_a_filter_lists_only_the_tasks_it_matches(
    create: CreateTask, list_tasks: ListTasks, clock: FakeClock, task_filter: TaskFilter, expected: list[str]
) -> None:
    yesterday, tomorrow = clock.now() - timedelta(days=1), clock.now() + timedelta(days=1)
    for draft in [
        TaskDraft("Open, overdue", priority=Priority.HIGH, due_at=yesterday),
        TaskDraft("Open, due later", due_at=tomorrow),
        TaskDraft("Open, undated"),
        TaskDraft("Done, overdue", priority=Priority.HIGH, due_at=yesterday, completed=True),
    ]:
        await create.execute(ADA, draft)
    page = await list_tasks.execute(ADA, TaskQuery(filter=task_filter, sort=Sort("created_at", descending=False)))
    assert [task.title for task in page.tasks] == expected


async def test_due_bounds_exclude_the_bound_and_tasks_without_a_due_date(
    create: CreateTask, list_tasks: ListTasks, clock: FakeClock
) -> None:
    days = [clock.now() + timedelta(days=n) for n in range(4)]
    for day in days:
        await create.execute(ADA, TaskDraft(f"Due {day:%d}", due_at=day))
    await create.execute(ADA, TaskDraft("Undated"))
    query = TaskQuery(filter=TaskFilter(due_after=days[0], due_before=days[3]), sort=Sort("due_at", descending=False))
    page = await list_tasks.execute(ADA, query)
    assert [task.due_at for task in page.tasks] == days[1:3]


async def test_walking_the_pages_of_a_sort_lists_every_task_once(
    create: CreateTask, list_tasks: ListTasks, clock: FakeClock
) -> None:
    tasks = await create_tasks(create, clock, "b", "A", "a", "C", "B", "c", "a")
    sort = Sort("title", descending=True)
    walked: list[Task] = []
    after: Position | None = None
    for _ in tasks:
        page = await list_tasks.execute(ADA, TaskQuery(sort=sort, limit=2, after=after))
        walked += page.tasks
        if (after := page.next_position) is None:
            break
    assert sorted(task.id for task in walked) == sorted(task.id for task in tasks)
    assert [str(sort_value(task, "title")).lower() for task in walked] == ["c", "c", "b", "b", "a", "a", "a"]


# --- GetTask -----------------------------------------------------------------------------------------


async def test_getting_a_task_returns_it_as_stored(get: GetTask, milk: Task) -> None:
    assert await get.execute(ADA, milk.id) == milk


async def test_getting_a_missing_task_is_not_found_with_code_task_not_found(get: GetTask) -> None:
    assert await not_found_code(get.execute(ADA, 404)) == "task_not_found"


async def test_another_users_task_is_not_found_just_like_a_missing_one(get: GetTask, milk: Task) -> None:
    with pytest.raises(NotFound) as someone_elses:
        await get.execute(BOB, milk.id)
    with pytest.raises(NotFound) as missing:
        await get.execute(BOB, milk.id + 1)
    assert someone_elses.value.code == missing.value.code == "task_not_found"
    assert someone_elses.value.message == f"Task {milk.id} was not found."


# --- UpdateTask --------------------------------------------------------------------------------------


async def test_an_update_changes_the_task_and_its_version_and_updated_at(
    update: UpdateTask, store: FakeStore, clock: FakeClock, milk: Task
) -> None:
    updated = await update.execute(ADA, milk.id, TaskChanges(title=" Buy soy milk ", priority=Priority.LOW))
    assert updated == replace(
        milk, title="Buy soy milk", priority=Priority.LOW, updated_at=clock.now(), version=milk.version + 1
    )
    assert store.tasks[milk.id] == updated


async def test_an_update_that_changes_nothing_keeps_the_version_and_updated_at(
    update: UpdateTask, store: FakeStore, milk: Task
) -> None:
    unchanged = await update.execute(ADA, milk.id, TaskChanges(title=milk.title, description=None))
    assert unchanged == milk
    assert store.tasks[milk.id] == milk


async def test_an_update_with_the_current_version_in_if_match_is_applied(update: UpdateTask, milk: Task) -> None:
    updated = await update.execute(ADA, milk.id, TaskChanges(title="Buy soy milk"), if_match=frozenset({7, 1}))
    assert (updated.title, updated.version) == ("Buy soy milk", 2)


async def test_an_update_with_a_stale_if_match_is_refused_with_the_current_version(
    update: UpdateTask, store: FakeStore, milk: Task
) -> None:
    await update.execute(ADA, milk.id, TaskChanges(title="Buy soy milk"))
    refused = await refused_as_stale(
        update.execute(ADA, milk.id, TaskChanges(title="Buy rice milk"), if_match=frozenset({1}))
    )
    assert refused.current_version == 2
    assert store.tasks[milk.id].title == "Buy soy milk"


async def test_an_update_of_a_missing_task_is_not_found(update: UpdateTask) -> None:
    assert await not_found_code(update.execute(ADA, 404, TaskChanges(title="Buy soy milk"))) == "task_not_found"


async def test_an_update_of_another_users_task_is_not_found_and_changes_nothing(
    update: UpdateTask, store: FakeStore, milk: Task
) -> None:
    assert await not_found_code(update.execute(BOB, milk.id, TaskChanges(title="Mine"))) == "task_not_found"
    assert store.tasks[milk.id] == milk


async def test_an_invalid_update_is_refused_and_changes_nothing(
    update: UpdateTask, store: FakeStore, milk: Task
) -> None:
    with pytest.raises(InvalidInput):
        await update.execute(ADA, milk.id, TaskChanges(title="  "))
    assert store.tasks[milk.id] == milk


async def test_replacing_a_task_resets_what_the_new_draft_leaves_out(
    update: UpdateTask, create: CreateTask, clock: FakeClock
) -> None:
    full = TaskDraft("Buy oat milk", "The barista one.", Priority.HIGH, ("shop",), clock.now(), completed=True)
    task = (await create.execute(ADA, full)).task
    replaced = await update.execute(ADA, task.id, TaskChanges.replacing_with(TaskDraft("Buy soy milk")))
    assert (replaced.description, replaced.priority, replaced.tags, replaced.due_at) == (None, Priority.NONE, (), None)
    assert (replaced.completed, replaced.completed_at) == (False, None)


async def test_an_update_racing_a_concurrent_write_is_retried_on_top_of_it(
    update: UpdateTask, uow: FakeUnitOfWorkFactory, store: FakeStore, milk: Task
) -> None:
    uow.others.before_task_save.append(written_elsewhere(milk.id, priority=Priority.HIGH))
    updated = await update.execute(ADA, milk.id, TaskChanges(title="Buy soy milk"))
    assert (updated.title, updated.priority, updated.version) == ("Buy soy milk", Priority.HIGH, 3)
    assert store.tasks[milk.id] == updated


async def test_an_update_with_if_match_racing_a_concurrent_write_is_refused_with_the_new_version(
    update: UpdateTask, uow: FakeUnitOfWorkFactory, store: FakeStore, milk: Task
) -> None:
    uow.others.before_task_save.append(written_elsewhere(milk.id, title="Theirs"))
    refused = await refused_as_stale(update.execute(ADA, milk.id, TaskChanges(title="Ours"), if_match=frozenset({1})))
    assert refused.current_version == 2
    assert (store.tasks[milk.id].title, store.tasks[milk.id].version) == ("Theirs", 2)


async def test_an_update_racing_a_write_to_a_version_its_if_match_also_lists_is_applied(
    update: UpdateTask, uow: FakeUnitOfWorkFactory, milk: Task
) -> None:
    uow.others.before_task_save.append(written_elsewhere(milk.id, priority=Priority.HIGH))
    updated = await update.execute(ADA, milk.id, TaskChanges(title="Ours"), if_match=frozenset({1, 2}))
    assert (updated.title, updated.priority, updated.version) == ("Ours", Priority.HIGH, 3)


async def test_an_update_racing_a_concurrent_delete_is_not_found(
    update: UpdateTask, uow: FakeUnitOfWorkFactory, store: FakeStore, milk: Task
) -> None:
    uow.others.before_task_save.append(deleted_elsewhere(milk.id))
    assert await not_found_code(update.execute(ADA, milk.id, TaskChanges(title="Ours"))) == "task_not_found"
    assert store.tasks == {}


async def test_an_update_of_a_task_other_writers_keep_changing_applies_after_theirs(
    update: UpdateTask, uow: FakeUnitOfWorkFactory, store: FakeStore, milk: Task
) -> None:
    """Writers queue on the row lock: no attempt limit, no 503, every change applied in turn."""
    uow.others.before_task_save.extend(written_elsewhere(milk.id) for _ in range(10))
    updated = await update.execute(ADA, milk.id, TaskChanges(title="Ours"))
    assert updated.title == "Ours"
    assert updated.version == store.tasks[milk.id].version
    assert store.tasks[milk.id] == updated


async def test_an_update_aborted_as_a_transient_conflict_is_applied_once(
    update: UpdateTask, uow: FakeUnitOfWorkFactory, store: FakeStore, milk: Task
) -> None:
    uow.others.before_task_save.append(aborted)
    updated = await update.execute(ADA, milk.id, TaskChanges(title="Buy soy milk"))
    assert (updated.title, updated.version) == ("Buy soy milk", 2)
    assert store.tasks[milk.id] == updated


# --- SetTaskCompletion -------------------------------------------------------------------------------


async def test_toggling_an_open_task_completes_it_now(
    complete: SetTaskCompletion, store: FakeStore, clock: FakeClock, milk: Task
) -> None:
    done = await complete.execute(ADA, milk.id)
    assert (done.completed, done.completed_at, done.updated_at, done.version) == (True, clock.now(), clock.now(), 2)
    assert store.tasks[milk.id] == done


async def test_toggling_a_completed_task_reopens_it(complete: SetTaskCompletion, clock: FakeClock, milk: Task) -> None:
    await complete.execute(ADA, milk.id)
    clock.advance(60)
    reopened = await complete.execute(ADA, milk.id)
    assert (reopened.completed, reopened.completed_at, reopened.version) == (False, None, 3)


async def test_completing_an_open_task_completes_it(complete: SetTaskCompletion, milk: Task) -> None:
    assert (await complete.execute(ADA, milk.id, True)).completed is True


async def test_reopening_a_completed_task_reopens_it(complete: SetTaskCompletion, milk: Task) -> None:
    await complete.execute(ADA, milk.id, True)
    assert (await complete.execute(ADA, milk.id, False)).completed is False


async def test_completing_a_completed_task_changes_nothing(
    complete: SetTaskCompletion, store: FakeStore, clock: FakeClock, milk: Task
) -> None:
    done = await complete.execute(ADA, milk.id, True)
    clock.advance(60)
    assert await complete.execute(ADA, milk.id, True) == done
    assert store.tasks[milk.id] == done


async def test_reopening_an_open_task_changes_nothing(
    complete: SetTaskCompletion, store: FakeStore, milk: Task
) -> None:
    assert await complete.execute(ADA, milk.id, False) == milk
    assert store.tasks[milk.id] == milk


async def test_a_toggle_flips_what_is_stored_when_it_writes_not_what_it_first_read(
    complete: SetTaskCompletion, uow: FakeUnitOfWorkFactory, clock: FakeClock, milk: Task
) -> None:
    uow.others.before_task_save.append(written_elsewhere(milk.id, completed=True, completed_at=clock.now()))
    toggled = await complete.execute(ADA, milk.id)
    assert (toggled.completed, toggled.completed_at, toggled.version) == (False, None, 3)


async def test_a_completion_with_a_stale_if_match_is_refused(
    complete: SetTaskCompletion, update: UpdateTask, store: FakeStore, milk: Task
) -> None:
    await update.execute(ADA, milk.id, TaskChanges(title="Buy soy milk"))
    refused = await refused_as_stale(complete.execute(ADA, milk.id, True, if_match=frozenset({1})))
    assert refused.current_version == 2
    assert store.tasks[milk.id].completed is False


async def test_completing_another_users_task_is_not_found(complete: SetTaskCompletion, milk: Task) -> None:
    assert await not_found_code(complete.execute(BOB, milk.id)) == "task_not_found"


# --- DeleteTask --------------------------------------------------------------------------------------


async def test_a_deleted_task_is_gone(delete: DeleteTask, get: GetTask, store: FakeStore, milk: Task) -> None:
    await delete.execute(ADA, milk.id)
    assert store.tasks == {}
    assert await not_found_code(get.execute(ADA, milk.id)) == "task_not_found"


async def test_deleting_a_missing_task_is_not_found(delete: DeleteTask) -> None:
    assert await not_found_code(delete.execute(ADA, 404)) == "task_not_found"


async def test_deleting_another_users_task_is_not_found_and_keeps_it(
    delete: DeleteTask, store: FakeStore, milk: Task
) -> None:
    assert await not_found_code(delete.execute(BOB, milk.id)) == "task_not_found"
    assert store.tasks == {milk.id: milk}


async def test_a_delete_with_the_current_version_in_if_match_deletes(
    delete: DeleteTask, store: FakeStore, milk: Task
) -> None:
    await delete.execute(ADA, milk.id, if_match=frozenset({1}))
    assert store.tasks == {}


async def test_a_delete_with_a_stale_if_match_is_refused_and_keeps_the_task(
    delete: DeleteTask, update: UpdateTask, store: FakeStore, milk: Task
) -> None:
    updated = await update.execute(ADA, milk.id, TaskChanges(title="Buy soy milk"))
    refused = await refused_as_stale(delete.execute(ADA, milk.id, if_match=frozenset({1})))
    assert refused.current_version == 2
    assert store.tasks == {milk.id: updated}


async def test_a_delete_with_if_match_racing_a_concurrent_write_is_refused_with_the_new_version(
    delete: DeleteTask, uow: FakeUnitOfWorkFactory, store: FakeStore, milk: Task
) -> None:
    uow.others.before_task_delete.append(written_elsewhere(milk.id, title="Theirs"))
    refused = await refused_as_stale(delete.execute(ADA, milk.id, if_match=frozenset({1})))
    assert refused.current_version == 2
    assert store.tasks[milk.id].title == "Theirs"


async def test_a_delete_without_if_match_racing_a_concurrent_write_still_deletes(
    delete: DeleteTask, uow: FakeUnitOfWorkFactory, store: FakeStore, milk: Task
) -> None:
    uow.others.before_task_delete.append(written_elsewhere(milk.id, title="Theirs"))
    await delete.execute(ADA, milk.id)
    assert store.tasks == {}


async def test_a_delete_racing_a_concurrent_delete_is_not_found(
    delete: DeleteTask, uow: FakeUnitOfWorkFactory, store: FakeStore, milk: Task
) -> None:
    uow.others.before_task_delete.append(deleted_elsewhere(milk.id))
    assert await not_found_code(delete.execute(ADA, milk.id)) == "task_not_found"
    assert store.tasks == {}


async def test_a_delete_that_fails_half_way_keeps_the_task(
    delete: DeleteTask, uow: FakeUnitOfWorkFactory, store: FakeStore, milk: Task
) -> None:
    before = store.snapshot()
    uow.others.before_task_delete.append(failing)
    with pytest.raises(StoreUnavailable):
        await delete.execute(ADA, milk.id)
    assert store == before


async def test_a_create_without_a_placement_hashes_as_before_lists_existed(
    uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    """A retry with the same key across the deploy that added lists must still match its first answer."""
    await CreateTask(uow, clock, RULES).execute(ADA, TaskDraft("Buy oat milk", tags=("shop",)), KEY)
    before_lists = {
        "title": "Buy oat milk", "description": None, "priority": "none", "tags": ["shop"], "due_at": None,
        "completed": False,
    }  # fmt: skip
    assert uow.store.idempotency_keys[(ADA, KEY)].outcome.request_hash == fingerprint(before_lists)


# --- complete-all is capped like /bulk --------------------------------------------------------------


async def test_complete_all_over_its_cap_is_too_many_tasks_and_completes_nothing(
    uow: FakeUnitOfWorkFactory, clock: FakeClock, store: FakeStore, create: CreateTask
) -> None:
    for title in ("One", "Two", "Three"):
        await create.execute(ADA, TaskDraft(title))
    with pytest.raises(InvalidInput) as refused:
        await CompleteAll(uow, clock, RULES, max_tasks=2).execute(ADA, TaskFilter())
    assert refused.value.code == "too_many_tasks"
    assert not any(task.completed for task in store.tasks.values())


async def test_complete_all_counts_the_subtasks_under_the_matches_toward_its_cap(
    uow: FakeUnitOfWorkFactory, clock: FakeClock, store: FakeStore, create: CreateTask
) -> None:
    parent = (await create.execute(ADA, TaskDraft("Move house", tags=("home",)))).task
    for title in ("Boxes", "Van"):
        await create.execute(ADA, TaskDraft(title, parent_id=parent.id))
    events_before = len(store.events.get(ADA, []))
    with pytest.raises(InvalidInput) as refused:
        await CompleteAll(uow, clock, RULES, max_tasks=2).execute(ADA, TaskFilter(tags=("home",)))
    assert refused.value.code == "too_many_tasks"
    assert not any(task.completed for task in store.tasks.values())
    assert len(store.events.get(ADA, [])) == events_before

    done = await CompleteAll(uow, clock, RULES, max_tasks=3).execute(ADA, TaskFilter(tags=("home",)))
    assert done.count == 3
