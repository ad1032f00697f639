"""Task use cases: create (idempotently), list, get, replace, update, set completion, delete.

Writes lock the task they change, so concurrent writers queue instead of failing or losing a
change; with `If-Match`, a write also refuses a task that moved past the version the caller saw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime

from todo_api.domain.changes import Change, task_change, task_deleted
from todo_api.domain.errors import InvalidInput, NotFound, PreconditionFailed
from todo_api.domain.ordering import OrderKeyError, key_between, key_with_room, keys_between
from todo_api.domain.ports import Clock, IdempotentOutcome, RecurrenceRules, UnitOfWork, UnitOfWorkFactory
from todo_api.domain.recurrence import check_series, in_series_years
from todo_api.domain.tasks import (
    MAX_DEPTH,
    UNSET,
    Position,
    Task,
    TaskChanges,
    TaskDraft,
    TaskPage,
    TaskQuery,
    Unset,
    sort_value,
)
from todo_api.use_cases.idempotency import IDEMPOTENCY_WINDOW, check_same_request, committed_outcome, fingerprint
from todo_api.use_cases.lists import inbox_id, list_not_found, take_turn
from todo_api.use_cases.retries import retry_transient
from todo_api.use_cases.series import (
    after_completing,
    bound_to_due_date,
    next_occurrence,
    rearm_if_needed,
    remove_successor,
    with_series_bound,
)


def _not_found(task_id: int) -> NotFound:
    return NotFound(f"Task {task_id} was not found.", code="task_not_found")


def _stale(task: Task) -> PreconditionFailed:
    return PreconditionFailed(
        f"Task {task.id} has changed since the version you sent (it is at version {task.version}).",
        current_version=task.version,
    )


@dataclass(frozen=True, slots=True)
class Created:
    task: Task
    replayed: bool = False


class CreateTask:
    """With an idempotency key, a retry of the same request within 24 hours returns the first
    outcome; the same key with a different request is refused."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, rules: RecurrenceRules) -> None:
        self._uow, self._clock, self._rules = uow, clock, rules

    async def execute(self, user_id: str, draft: TaskDraft, idempotency_key: str | None = None) -> Created:
        now = self._clock.now()
        if draft.recurrence is not None:
            assert draft.due_at is not None  # noqa: S101 - a recurring draft has one, checked on construction
            draft = replace(draft, recurrence=bound_to_due_date(self._rules, draft.recurrence, draft.due_at))
        if idempotency_key is None:
            return Created(await self._add(user_id, draft, now))
        request_hash = _fingerprint(draft)
        created = await self._add_once(user_id, draft, idempotency_key, request_hash, now)
        if created is not None:
            return created
        since = now - IDEMPOTENCY_WINDOW
        return _replay(await committed_outcome(self._uow, user_id, idempotency_key, since, request_hash), request_hash)

    @retry_transient
    async def _add(self, user_id: str, draft: TaskDraft, now: datetime) -> Task:
        async with self._uow() as uow:
            task = await _add_task(uow, user_id, draft, now, last=True)
            await uow.commit()
        return task

    @retry_transient
    async def _add_once(
        self, user_id: str, draft: TaskDraft, key: str, request_hash: str, now: datetime
    ) -> Created | None:
        """The task and its key in one transaction; None when a concurrent request claimed the key."""
        since = now - IDEMPOTENCY_WINDOW
        async with self._uow() as uow:
            earlier = await uow.idempotency_keys.find(user_id, key, since)
            if earlier is not None:
                return _replay(earlier, request_hash)
            task = await _add_task(uow, user_id, draft, now)
            if not await uow.idempotency_keys.claim(user_id, key, IdempotentOutcome(request_hash, task), now, since):
                await uow.rollback()
                return None
            await uow.commit()
        return Created(task)


async def _add_task(uow: UnitOfWork, user_id: str, draft: TaskDraft, now: datetime, *, last: bool = False) -> Task:
    """At the end of its list (the Inbox by default) or of its parent's subtasks, in the parent's list.
    `last`: the unit writes nothing after the task, so its event may travel with it."""
    if draft.parent_id is not None:
        # The turn: the parent's list and depth must not change under us (see MoveTask).
        await take_turn(uow, user_id, now)
        parent = await uow.tasks.get(user_id, draft.parent_id)
        if parent is None:
            raise NotFound(f"Parent task {draft.parent_id} was not found.", code="parent_not_found")
        if draft.list_id is not None and draft.list_id != parent.list_id:
            raise InvalidInput(
                "A subtask lives in its parent's list; leave `list_id` out.", code="list_mismatch", field="list_id"
            )
        depth = await uow.tasks.depth(user_id, parent.id) or 1
        if depth >= MAX_DEPTH:
            raise InvalidInput(f"Subtasks nest at most {MAX_DEPTH} levels deep.", code="too_deep", field="parent_id")
        list_id, after = parent.list_id, await uow.tasks.last_position(user_id, parent.list_id, parent.id)
    elif (point := await uow.lists.append_point(user_id, draft.list_id)) is not None:
        list_id, after = point
    elif draft.list_id is not None:
        raise list_not_found(draft.list_id)
    else:
        list_id, after = await inbox_id(uow, user_id, now), None
    if draft.reminders:
        last = False  # its reminders are armed after the row is written
    add = uow.tasks.add_and_record if last else uow.tasks.add
    try:
        task = await add(user_id, draft, now, list_id=list_id, position=key_between(after, None))
    except NotFound as gone:  # the list (or parent) was deleted after we read it: say which, as above
        if draft.parent_id is not None:
            raise NotFound(f"Parent task {draft.parent_id} was not found.", code="parent_not_found") from gone
        raise list_not_found(list_id) from gone
    if not last:
        uow.changes.record(user_id, [task_change(None, task)])
    if task.reminders:
        await uow.reminders.arm([task], now)
    return task


def _fingerprint(draft: TaskDraft) -> str:
    # A placement left out is not hashed, so a retry of a request older than lists (the same key
    # across the deploy that added them) still matches its first answer.
    values = {name: value for name, value in asdict(draft).items() if value is not None or name not in _PLACEMENT}
    values["priority"] = draft.priority.label
    values["due_at"] = draft.due_at.isoformat() if draft.due_at else None
    values["tags"] = list(draft.tags)
    values["recurrence"] = draft.recurrence and [
        draft.recurrence.rule,
        draft.recurrence.timezone,
        draft.recurrence.from_,
    ]
    values["reminders"] = [[str(item.before), item.at and item.at.isoformat()] for item in draft.reminders]
    if not draft.recurrence and not draft.reminders:  # hashed as before they existed (keys across the deploy)
        del values["recurrence"], values["reminders"]
    return fingerprint(values)


_PLACEMENT = ("list_id", "parent_id")


def _replay(earlier: IdempotentOutcome, request_hash: str) -> Created:
    check_same_request(earlier, request_hash)
    if not isinstance(earlier.result, Task):  # another kind of request: its hash cannot match
        raise InvalidInput("This Idempotency-Key was used for another request.", code="idempotency_key_reused")
    return Created(earlier.result, replayed=True)


class ListTasks:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    async def execute(self, user_id: str, query: TaskQuery, *, include_total: bool = False) -> TaskPage:
        now = self._clock.now()
        async with self._uow(read_only=True) as uow:
            synced = await uow.changes.position(user_id) if query.after is None else None
            rows = await uow.tasks.list(user_id, query, now)
            total = await uow.tasks.count(user_id, query.filter, now) if include_total else None
        tasks, more = rows[: query.limit], len(rows) > query.limit
        position = Position(sort_value(tasks[-1], query.sort.field), tasks[-1].id) if more else None
        return TaskPage(tasks, position, total, synced)


class GetTask:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def execute(self, user_id: str, task_id: int) -> Task:
        async with self._uow(read_only=True) as uow:
            task = await uow.tasks.get(user_id, task_id)
        if task is None:
            raise _not_found(task_id)
        return task


class UpdateTask:
    """PUT (every field, via `TaskChanges.replacing_with`), PATCH and the completion toggle."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, rules: RecurrenceRules) -> None:
        self._uow, self._clock, self._rules = uow, clock, rules

    @retry_transient
    async def execute(
        self, user_id: str, task_id: int, changes: TaskChanges, *, if_match: frozenset[int] | None = None
    ) -> Task:
        return await _write(self._uow, self._clock, self._rules, user_id, task_id, lambda _: changes, if_match)


class SetTaskCompletion:
    """`completed` given: set it; not given: toggle what is stored now (not what the client saw)."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, rules: RecurrenceRules) -> None:
        self._uow, self._clock, self._rules = uow, clock, rules

    @retry_transient
    async def execute(
        self, user_id: str, task_id: int, completed: bool | None = None, *, if_match: frozenset[int] | None = None
    ) -> Task:
        def changes(task: Task) -> TaskChanges:
            return TaskChanges(completed=(not task.completed) if completed is None else completed)

        return await _write(self._uow, self._clock, self._rules, user_id, task_id, changes, if_match)


async def _write(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rules: RecurrenceRules,
    user_id: str,
    task_id: int,
    make_changes: Callable[[Task], TaskChanges],
    if_match: frozenset[int] | None,
) -> Task:
    """Read the task locked, check If-Match against it, change it, save it: concurrent writers
    queue on the row lock instead of failing, and none of their changes is lost. Completing a
    task completes its open subtasks in the same transaction; reopening leaves them as they are.

    Completing an occurrence of a series also creates the next one (after the completion's event,
    as a second event of the transaction); reopening one removes a next occurrence nobody touched."""
    async with uow_factory() as uow:
        task = await uow.tasks.get(user_id, task_id, for_update=True)
        if task is None:
            raise _not_found(task_id)
        if if_match is not None and task.version not in if_match:
            raise _stale(task)
        now = clock.now()
        changed = with_series_bound(rules, task, make_changes(task).applied_to(task, now))
        if changed == task:
            return task
        completing = changed.completed and not task.completed
        if completing:  # first, so the task's own write is the last
            below = await uow.tasks.complete_descendants(user_id, [task_id], now)
            await after_completing(uow, rules, below, now)
        await rearm_if_needed(uow, task, changed, now)
        reopening = task.completed and not changed.completed
        if (completing and changed.recurrence is not None) or (reopening and task.recurrence is not None):
            # The task's own event first, then its next occurrence's: not the one-statement last write.
            saved = await uow.tasks.save(changed, expected_version=task.version)
            if saved is None:
                raise _stale(task)
            uow.changes.record(user_id, [task_change(task, saved)])
            if completing:
                await next_occurrence(uow, rules, saved, now)
            else:
                await remove_successor(uow, saved, now)
            await uow.commit()
            return saved
        saved = await uow.tasks.save_and_record(changed, before=task)
        if saved is None:  # cannot happen under the lock; refuse rather than guess
            raise _stale(task)
        await uow.commit()
        return saved


class SkipOccurrence:
    """Move a recurring task to its next occurrence without completing it."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, rules: RecurrenceRules) -> None:
        self._uow, self._clock, self._rules = uow, clock, rules

    @retry_transient
    async def execute(self, user_id: str, task_id: int, *, if_match: frozenset[int] | None = None) -> Task:
        async with self._uow() as uow:
            task = await uow.tasks.get(user_id, task_id, for_update=True)
            if task is None:
                raise _not_found(task_id)
            if if_match is not None and task.version not in if_match:
                raise _stale(task)
            if task.recurrence is None or task.due_at is None:
                raise InvalidInput(f"Task {task_id} does not recur: there is nothing to skip to.", code="not_recurring")
            if task.completed:
                raise InvalidInput(f"Task {task_id} is completed: reopen it to skip.", code="task_completed")
            check_series(task.due_at, task.recurrence, task.reminders)  # a row stored before the years were checked
            due = self._rules.next_after(task.recurrence, task.due_at)
            if due is None or not in_series_years(due):
                raise InvalidInput(f"Task {task_id} is its series' last occurrence.", code="series_ended")
            now = self._clock.now()
            changed = replace(task, due_at=due, updated_at=now)
            await rearm_if_needed(uow, task, changed, now)
            saved = await uow.tasks.save_and_record(changed, before=task)
            if saved is None:
                raise _stale(task)
            await uow.commit()
        return saved


class DeleteTask:
    """The task goes with its subtasks; all stay restorable for the retention window (RestoreTask)."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    @retry_transient
    async def execute(self, user_id: str, task_id: int, *, if_match: frozenset[int] | None = None) -> None:
        async with self._uow() as uow:
            task = await uow.tasks.get(user_id, task_id, for_update=True)
            if task is None:
                raise _not_found(task_id)
            if if_match is not None and task.version not in if_match:
                raise _stale(task)
            now = self._clock.now()
            deleted = await uow.tasks.trash(user_id, [task_id], now)
            below = sorted(set(deleted) - {task_id})
            uow.changes.record(user_id, [task_deleted(gone, now) for gone in (task_id, *below)])
            await uow.commit()


@dataclass(frozen=True, slots=True)
class Move:
    """Where a task goes. Left out, each keeps what it is: `list_id` (another list puts the task at
    its top level), `parent_id` (None: the top level); `before_id` / `after_id` name a sibling to
    stand next to, whose list and parent are then the destination; without one, the end."""

    list_id: int | None = None
    parent_id: int | Unset | None = UNSET
    before_id: int | None = None
    after_id: int | None = None

    def __post_init__(self) -> None:
        if self.before_id is not None and self.after_id is not None:
            raise InvalidInput("Send `before_id` or `after_id`, not both.", code="invalid_move")


class MoveTask:
    """Reorder, re-parent or move a task to another list, with its subtree: one row is written for
    a reorder (its new order key lies between its new neighbours'); a subtree changing lists is
    one more statement. Keys that ran out of room between two neighbours get the group rebalanced.

    Moves take the person's turn first: a cycle check (is the new parent under the task?), a depth
    check and the neighbours' keys are reads that only stay true if no other move or subtask
    creation of the same person runs meanwhile, and row locks alone cannot say which rows those
    are (two moves can each pass their cycle check and make a cycle together)."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    @retry_transient
    async def execute(self, user_id: str, task_id: int, move: Move, *, if_match: frozenset[int] | None = None) -> Task:
        async with self._uow() as uow:
            await take_turn(uow, user_id, self._clock.now())
            task = await uow.tasks.get(user_id, task_id, for_update=True)
            if task is None:
                raise _not_found(task_id)
            if if_match is not None and task.version not in if_match:
                raise _stale(task)
            anchor_id = move.before_id if move.before_id is not None else move.after_id
            anchor = await _sibling(uow, user_id, task, anchor_id)
            list_id, parent_id = await _destination(uow, user_id, task, move, anchor)
            subtree = await uow.tasks.descendants(user_id, task.id)
            if parent_id is not None:
                await _check_parent(uow, user_id, task, parent_id, subtree)
            now = self._clock.now()
            position = await _position_in(uow, user_id, list_id, parent_id, move, anchor, now)
            moved = await uow.tasks.place(task, list_id=list_id, parent_id=parent_id, position=position, at=now)
            uow.changes.record(user_id, [task_change(task, moved)])
            if list_id != task.list_id and subtree:
                below = await uow.tasks.move_descendants_to(user_id, [task.id], list_id, now)
                uow.changes.record(user_id, [Change("task.moved", follower) for follower in below])
            await uow.commit()
        return moved


async def _sibling(uow: UnitOfWork, user_id: str, task: Task, anchor_id: int | None) -> Task | None:
    if anchor_id is None:
        return None
    if anchor_id == task.id:
        raise InvalidInput("A task cannot be placed next to itself.", code="invalid_move")
    # Locked: two moves next to the same task take turns, so the second sees the first's key.
    anchor = await uow.tasks.get(user_id, anchor_id, for_update=True)
    if anchor is None:
        raise NotFound(f"Task {anchor_id} was not found.", code="task_not_found")
    return anchor


async def _destination(
    uow: UnitOfWork, user_id: str, task: Task, move: Move, anchor: Task | None
) -> tuple[int, int | None]:
    """The list and parent the task ends up in; what was left out follows the sibling, or stays."""
    if anchor is not None:
        if (move.list_id is not None and move.list_id != anchor.list_id) or (
            not isinstance(move.parent_id, Unset) and move.parent_id != anchor.parent_id
        ):
            named = "before_id" if move.before_id is not None else "after_id"  # the one the request sent
            raise InvalidInput(f"`{named}` must be a task of the destination.", code="not_a_sibling", field=named)
        return anchor.list_id, anchor.parent_id
    if not isinstance(move.parent_id, Unset) and move.parent_id is not None:
        parent = await uow.tasks.get(user_id, move.parent_id)
        if parent is None:
            raise NotFound(f"Parent task {move.parent_id} was not found.", code="parent_not_found")
        if move.list_id is not None and move.list_id != parent.list_id:
            raise InvalidInput(
                "A subtask lives in its parent's list; leave `list_id` out.", code="list_mismatch", field="list_id"
            )
        return parent.list_id, parent.id
    if move.list_id is not None and move.list_id != task.list_id:
        if await uow.lists.append_point(user_id, move.list_id) is None:
            raise list_not_found(move.list_id)
        return move.list_id, None
    return task.list_id, None if not isinstance(move.parent_id, Unset) else task.parent_id


async def _check_parent(uow: UnitOfWork, user_id: str, task: Task, parent_id: int, subtree: dict[int, int]) -> None:
    if parent_id == task.id or parent_id in subtree:
        raise InvalidInput("A task cannot go under itself or one of its subtasks.", code="cycle", field="parent_id")
    depth = await uow.tasks.depth(user_id, parent_id) or 1
    if depth + 1 + max(subtree.values(), default=0) > MAX_DEPTH:
        raise InvalidInput(f"Subtasks nest at most {MAX_DEPTH} levels deep.", code="too_deep", field="parent_id")


async def _position_in(
    uow: UnitOfWork,
    user_id: str,
    list_id: int,
    parent_id: int | None,
    move: Move,
    anchor: Task | None,
    now: datetime,
) -> str:
    """A key between the new neighbours; when there is no room (two equal keys, or keys grown too
    long), the group gets fresh, evenly spread keys first."""
    for _ in range(2):
        if anchor is None:
            low, high = await uow.tasks.last_position(user_id, list_id, parent_id), None
        elif move.after_id is not None:
            low, high = anchor.position, await uow.tasks.neighbour(anchor, after=True)
        else:
            low, high = await uow.tasks.neighbour(anchor, after=False), anchor.position
        if (key := key_with_room(low, high)) is not None:
            return key
        rebalanced = await rebalance(uow, user_id, list_id, parent_id, now)
        if anchor is not None:
            anchor = rebalanced[anchor.id]
    raise OrderKeyError("no room between the neighbours even after a rebalance")


async def rebalance(
    uow: UnitOfWork, user_id: str, list_id: int, parent_id: int | None, now: datetime
) -> dict[int, Task]:
    """Fresh, evenly spread keys for a group of siblings, in their order: each a new version and a
    `task.moved` event. What a move does when its neighbours leave no room, and a restore when a
    sibling took the restored task's key."""
    siblings = await uow.tasks.sibling_ids(user_id, list_id, parent_id)
    fresh = dict(zip(siblings, keys_between(None, None, len(siblings)), strict=True))
    rebalanced = await uow.tasks.set_positions(user_id, fresh, now)
    uow.changes.record(user_id, [Change("task.moved", sibling) for sibling in rebalanced])
    return {sibling.id: sibling for sibling in rebalanced}
