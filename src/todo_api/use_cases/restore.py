"""Undo of a deletion: what was deleted stays restorable for the retention window.

A task comes back with the subtasks deleted with it, its tags and its place; a list with the tasks
deleted with it. Each restored object is a new version and a `*.restored` event. Where its place is
gone meanwhile, it goes to the nearest place that is left: a task whose list was deleted goes to
the end of the Inbox, one whose parent was deleted (or moved too deep) to its list's top level.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from todo_api.domain.changes import Change
from todo_api.domain.errors import Conflict, InvalidInput, NotFound
from todo_api.domain.lists import MAX_LISTS_PER_USER, TaskList
from todo_api.domain.ordering import key_between, keys_between
from todo_api.domain.ports import Clock, UnitOfWork, UnitOfWorkFactory
from todo_api.domain.tasks import MAX_DEPTH, MAX_PAGE_SIZE, Position, Task, TaskPage
from todo_api.use_cases.lists import inbox_id, respread, take_turn
from todo_api.use_cases.retries import retry_transient
from todo_api.use_cases.tasks import rebalance


def _not_restorable(task_id: int) -> NotFound:
    return NotFound(
        f"Task {task_id} is not among your deleted tasks (or its retention window has passed).", code="task_not_found"
    )


class RestoreTask:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    @retry_transient
    async def execute(self, user_id: str, task_id: int) -> Task:
        async with self._uow() as uow:
            now = self._clock.now()
            await take_turn(uow, user_id, now)  # its place is read and written: see MoveTask
            deleted = await uow.tasks.trashed(user_id, task_id)
            if deleted is None:
                raise _not_restorable(task_id)
            if deleted.deleted_list_id is not None:
                raise Conflict(
                    f"Task {task_id} was deleted with list {deleted.deleted_list_id}: restore the list.",
                    code="deleted_with_list",
                )
            if deleted.root_id != task_id:
                raise Conflict(
                    f"Task {task_id} was deleted with task {deleted.root_id}: restore that one.",
                    code="deleted_with_parent",
                )
            task = deleted.task
            list_id, parent_id, position = await _place(uow, user_id, task, now)
            restored = await uow.tasks.restore(
                user_id, task_id, list_id=list_id, parent_id=parent_id, position=position, at=now
            )
            if parent_id is not None and await _too_deep(uow, user_id, task_id):
                # Its parent went deeper while it was deleted: the top level of its list instead.
                root = next(back for back in restored if back.id == task_id)
                last = await uow.tasks.last_position(user_id, list_id, None)
                placed = await uow.tasks.place(
                    root, list_id=list_id, parent_id=None, position=key_between(last, None), at=now
                )
                restored = [placed if back.id == task_id else back for back in restored]
            restored.sort(key=lambda back: (back.id != task_id, back.id))  # the task first, then its subtasks
            uow.changes.record(user_id, [Change("task.restored", back) for back in restored])
            await _rearm(uow, restored, now)  # before `_untied`, which may be the unit's last write
            restored[0] = await _untied(uow, user_id, restored[0], now)
            await uow.commit()
        return next(back for back in restored if back.id == task_id)


async def _untied(uow: UnitOfWork, user_id: str, task: Task, now: datetime) -> Task:
    """A sibling may have taken the key the task had while it was deleted: then the group gets
    fresh, evenly spread keys (as a move does when there is no room), so no two share one."""
    if task.position not in (await uow.tasks.neighbour(task, after=False), await uow.tasks.neighbour(task, after=True)):
        return task
    return (await rebalance(uow, user_id, task.list_id, task.parent_id, now))[task.id]


async def _too_deep(uow: UnitOfWork, user_id: str, task_id: int) -> bool:
    depth = await uow.tasks.depth(user_id, task_id) or 1
    return depth + max((await uow.tasks.descendants(user_id, task_id)).values(), default=0) > MAX_DEPTH


async def _place(uow: UnitOfWork, user_id: str, task: Task, now: datetime) -> tuple[int, int | None, str]:
    """Where it stood, if that place is still there; else the nearest place that is."""
    parent = await uow.tasks.get(user_id, task.parent_id) if task.parent_id is not None else None
    if parent is not None and parent.list_id == task.list_id:
        return task.list_id, parent.id, task.position
    point = await uow.lists.append_point(user_id, task.list_id)
    if point is not None:
        if task.parent_id is None:
            return task.list_id, None, task.position
        return task.list_id, None, key_between(point[1], None)
    inbox = await uow.lists.append_point(user_id, None)
    if inbox is None:
        await inbox_id(uow, user_id, now)
        inbox = await uow.lists.append_point(user_id, None)
    assert inbox is not None  # noqa: S101 - made just above
    return inbox[0], None, key_between(inbox[1], None)


class RestoreList:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    @retry_transient
    async def execute(self, user_id: str, list_id: int) -> TaskList:
        async with self._uow() as uow:
            now = self._clock.now()
            await take_turn(uow, user_id, now)  # the cap on lists holds under concurrent creations
            if await uow.lists.trashed(user_id, list_id) is None:
                raise NotFound(
                    f"List {list_id} is not among your deleted lists (or its retention window has passed).",
                    code="list_not_found",
                )
            if await uow.lists.count(user_id) >= MAX_LISTS_PER_USER:
                raise InvalidInput(f"You can have at most {MAX_LISTS_PER_USER} lists.", code="too_many_lists")
            restored = await uow.lists.restore(user_id, list_id, now)
            assert restored is not None  # noqa: S101 - found above, under the person's turn
            task_list, tasks = restored
            order = await uow.lists.order(user_id)
            if sum(position == task_list.position for _, position in order) > 1:  # its key was taken meanwhile
                fresh = dict(zip([list_id for list_id, _ in order], keys_between(None, None, len(order)), strict=True))
                task_list = (await respread(uow, user_id, fresh, now))[list_id]
            uow.changes.record(user_id, [Change("list.restored", task_list)])
            uow.changes.record(user_id, [Change("task.restored", task) for task in tasks])
            await _rearm(uow, tasks, now)
            await uow.commit()
        return task_list


class ListDeletedTasks:
    """The tasks deleted on their own (a subtask deleted with its parent comes back with it; a task
    deleted with its list, with the list), latest first."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def execute(self, user_id: str, limit: int, after: Position | None = None) -> TaskPage:
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidInput(f"`limit` is between 1 and {MAX_PAGE_SIZE}.", code="invalid_limit", field="limit")
        async with self._uow(read_only=True) as uow:
            rows = await uow.tasks.trashed_page(user_id, limit, after)
        page, more = rows[:limit], len(rows) > limit
        last = page[-1] if more else None
        return TaskPage(page, Position(last.deleted_at, last.id) if last is not None else None)


async def _rearm(uow: UnitOfWork, restored: Sequence[Task], now: datetime) -> None:
    """A deletion took the reminders' schedule with the rows: a restored task's come back armed
    (those whose time passed meanwhile as already fired)."""
    with_reminders = [task for task in restored if task.reminders]
    if with_reminders:
        await uow.reminders.arm(with_reminders, now)
