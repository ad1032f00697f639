"""Bulk changes: complete, reopen, delete, move or update up to 100 tasks in one transaction.

Every task is read once, locked in id order (so concurrent bulk changes of overlapping sets queue
instead of deadlocking), changed in memory by the same domain rules a single-task call applies,
and written back in a handful of set-based statements, not one round trip per task. Each task
gets the result the single-task call would give; `atomic` (the default) writes nothing unless
every one of them is `ok`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final, Literal

from todo_api.domain.errors import DomainError, InvalidInput
from todo_api.domain.ordering import key_between
from todo_api.domain.ports import Clock, UnitOfWork, UnitOfWorkFactory
from todo_api.domain.tasks import UNSET, Priority, Task, TaskChanges, Unset, normalise_tag
from todo_api.use_cases.retries import retry_transient

MAX_BULK_TASKS: Final = 100
BulkOp = Literal["complete", "reopen", "delete", "move", "update"]


@dataclass(frozen=True, slots=True)
class BulkOperation:
    """One kind of change for some tasks. `move` needs `list_id` (the tasks go to the end of its
    top level, with their subtrees); `update` sets what is given."""

    op: BulkOp
    task_ids: tuple[int, ...]
    list_id: int | None = None
    priority: Priority | Unset = UNSET
    add_tags: tuple[str, ...] = ()
    remove_tags: tuple[str, ...] = ()
    due_at: datetime | Unset | None = UNSET

    def __post_init__(self) -> None:
        if self.op == "move" and self.list_id is None:
            raise InvalidInput("A `move` names the `list_id` the tasks go to.", code="invalid_bulk_operation")


@dataclass(frozen=True, slots=True)
class BulkResult:
    task_id: int
    op: BulkOp
    code: str = "ok"  # or the code the single-task call would answer with
    message: str | None = None


@dataclass(frozen=True, slots=True)
class BulkOutcome:
    applied: bool  # False only when `atomic` and some task failed: then nothing was written
    results: list[BulkResult]


class BulkChangeTasks:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    @retry_transient
    async def execute(self, user_id: str, operations: list[BulkOperation], *, atomic: bool = True) -> BulkOutcome:
        count = sum(len(operation.task_ids) for operation in operations)
        if not 1 <= count <= MAX_BULK_TASKS:
            raise InvalidInput(f"A bulk change names 1 to {MAX_BULK_TASKS} tasks.", code="too_many_tasks")
        async with self._uow() as uow:
            now = self._clock.now()
            ids = sorted({task_id for operation in operations for task_id in operation.task_ids})
            before = await uow.tasks.get_many(user_id, ids, for_update=True)
            plan = _Plan(before)
            for operation in operations:
                await plan.apply(uow, user_id, operation, now)
            failed = any(result.code != "ok" for result in plan.results)
            if failed and atomic:
                await uow.rollback()
                return BulkOutcome(False, plan.results)
            await plan.write(uow, user_id, now)
            await uow.commit()
        return BulkOutcome(True, plan.results)


class _Plan:
    """The tasks as the operations leave them, in memory, and what each operation answered."""

    def __init__(self, tasks: dict[int, Task]) -> None:
        self.before = tasks
        self.now = dict(tasks)
        self.deleted: set[int] = set()
        self.completed_roots: set[int] = set()
        self.moved_roots: dict[int, int] = {}  # task -> the list its subtree goes to
        self.results: list[BulkResult] = []
        self._list_ends: dict[int, str | None] = {}

    async def apply(self, uow: UnitOfWork, user_id: str, operation: BulkOperation, now: datetime) -> None:
        list_error = None
        if operation.list_id is not None and operation.list_id not in self._list_ends:
            point = await uow.lists.append_point(user_id, operation.list_id)
            if point is None:
                list_error = BulkResult(0, operation.op, "list_not_found", f"List {operation.list_id} was not found.")
            else:
                self._list_ends[operation.list_id] = point[1]
        for task_id in operation.task_ids:
            task = self.now.get(task_id)
            if task is None or task_id in self.deleted:
                self.results.append(
                    BulkResult(task_id, operation.op, "task_not_found", f"Task {task_id} was not found.")
                )
            elif list_error is not None:
                self.results.append(replace(list_error, task_id=task_id))
            else:
                try:
                    self._change(task, operation, now)
                except DomainError as error:
                    self.results.append(BulkResult(task_id, operation.op, error.code, error.message))
                else:
                    self.results.append(BulkResult(task_id, operation.op))

    def _change(self, task: Task, operation: BulkOperation, now: datetime) -> None:
        match operation.op:
            case "delete":
                self.deleted.add(task.id)
                return
            case "complete" | "reopen":
                changes = TaskChanges(completed=operation.op == "complete")
            case "update" | "move":
                tags = UNSET if not (operation.add_tags or operation.remove_tags) else _retagged(task, operation)
                changes = TaskChanges(priority=operation.priority, tags=tags, due_at=operation.due_at)
        changed = changes.applied_to(task, now)
        if changed.completed and not task.completed:
            self.completed_roots.add(task.id)
        if operation.list_id is not None and operation.list_id != task.list_id:
            position = key_between(self._list_ends[operation.list_id], None)
            self._list_ends[operation.list_id] = position
            changed = replace(changed, list_id=operation.list_id, parent_id=None, position=position, updated_at=now)
            self.moved_roots[task.id] = operation.list_id
        self.now[task.id] = changed

    async def write(self, uow: UnitOfWork, user_id: str, now: datetime) -> None:
        changed = [
            task for task_id, task in self.now.items() if task_id not in self.deleted and task != self.before[task_id]
        ]
        if changed:
            await uow.tasks.save_many(changed, {task.id: self.before[task.id].version for task in changed})
        completed = self.completed_roots - self.deleted
        if completed:
            await uow.tasks.complete_descendants(user_id, sorted(completed), now)
        for list_id in sorted(set(self.moved_roots.values())):
            roots = sorted(task_id for task_id, to in self.moved_roots.items() if to == list_id)
            await uow.tasks.move_descendants_to(user_id, roots, list_id, now)
        if self.deleted:
            await uow.tasks.delete_many(user_id, sorted(self.deleted))


def _retagged(task: Task, operation: BulkOperation) -> tuple[str, ...]:
    removed = {normalise_tag(tag) for tag in operation.remove_tags}
    return tuple(tag for tag in (*task.tags, *operation.add_tags) if normalise_tag(tag) not in removed)
