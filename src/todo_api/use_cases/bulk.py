"""Bulk changes: complete, reopen, delete, move or update up to 100 tasks in one transaction.

Every task is read once, locked in id order (so concurrent bulk changes of overlapping sets queue
instead of deadlocking), changed in memory by the same domain rules a single-task call applies,
and written back in a handful of set-based statements, not one round trip per task. Each task
gets the result the single-task call would give; `atomic` (the default) writes nothing unless
every one of them is `ok`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from todo_api.domain.bulk import MAX_BULK_TASKS, BulkOperation, BulkOutcome, BulkResult
from todo_api.domain.changes import Change, task_change, task_deleted
from todo_api.domain.errors import DomainError, InvalidInput
from todo_api.domain.ordering import key_between
from todo_api.domain.ports import Clock, IdempotentOutcome, RecurrenceRules, UnitOfWork, UnitOfWorkFactory
from todo_api.domain.tasks import MAX_DEPTH, UNSET, Task, TaskChanges, Unset, normalise_tag
from todo_api.use_cases.idempotency import IDEMPOTENCY_WINDOW, check_same_request, committed_outcome, fingerprint
from todo_api.use_cases.lists import take_turn
from todo_api.use_cases.retries import retry_transient
from todo_api.use_cases.series import (
    after_completing,
    needs_rearming,
    next_occurrence,
    remove_successor,
    with_series_bound,
)


@dataclass(frozen=True, slots=True)
class BulkChanged:
    outcome: BulkOutcome
    replayed: bool = False


class BulkChangeTasks:
    """With an `Idempotency-Key`, an applied change is recorded with its results: a retry within
    24 hours answers the same results and changes nothing. A change that was not applied (atomic,
    with a failure) wrote nothing, so its key stays free for the corrected request."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, rules: RecurrenceRules) -> None:
        self._uow, self._clock, self._rules = uow, clock, rules

    async def execute(
        self,
        user_id: str,
        operations: Sequence[BulkOperation],
        *,
        atomic: bool = True,
        idempotency_key: str | None = None,
    ) -> BulkChanged:
        count = sum(len(operation.task_ids) for operation in operations)
        if not 1 <= count <= MAX_BULK_TASKS:
            raise InvalidInput(f"A bulk change names 1 to {MAX_BULK_TASKS} tasks.", code="too_many_tasks")
        now = self._clock.now()
        request_hash = _fingerprint(operations, atomic)
        changed = await self._change(user_id, operations, atomic, idempotency_key, request_hash, now)
        if changed is not None:
            return changed
        assert idempotency_key is not None  # noqa: S101 - narrows the type: only a lost claim answers None
        since = now - IDEMPOTENCY_WINDOW
        return _replay(await committed_outcome(self._uow, user_id, idempotency_key, since, request_hash))

    @retry_transient
    async def _change(
        self,
        user_id: str,
        operations: Sequence[BulkOperation],
        atomic: bool,
        key: str | None,
        request_hash: str,
        now: datetime,
    ) -> BulkChanged | None:
        async with self._uow() as uow:
            if key is not None and (earlier := await uow.idempotency_keys.find(user_id, key, now - IDEMPOTENCY_WINDOW)):
                check_same_request(earlier, request_hash)
                return _replay(earlier)
            if any(operation.list_id is not None for operation in operations):
                await take_turn(uow, user_id, now)  # subtrees change lists: see MoveTask
            ids = sorted({task_id for operation in operations for task_id in operation.task_ids})
            plan = _Plan(await uow.tasks.get_many(user_id, ids), await uow.tasks.subtrees(user_id, ids), self._rules)
            for operation in operations:
                await plan.apply(uow, user_id, operation, now)
            # Atomic: all or nothing. Otherwise what can be applied is, and nothing at all is a refusal too.
            if not (all if atomic else any)(result.ok for result in plan.results):
                await uow.rollback()
                return BulkChanged(BulkOutcome(False, tuple(plan.results)))
            await plan.write(uow, user_id, now)
            outcome = BulkOutcome(True, tuple(plan.results))
            if key is not None and not await uow.idempotency_keys.claim(
                user_id, key, IdempotentOutcome(request_hash, outcome), now, now - IDEMPOTENCY_WINDOW
            ):
                await uow.rollback()
                return None
            await uow.commit()
        return BulkChanged(outcome)


def _replay(earlier: IdempotentOutcome) -> BulkChanged:
    if not isinstance(earlier.result, BulkOutcome):  # another kind of request: its hash cannot match
        raise InvalidInput("This Idempotency-Key was used for another request.", code="idempotency_key_reused")
    return BulkChanged(earlier.result, replayed=True)


def _fingerprint(operations: Sequence[BulkOperation], atomic: bool) -> str:
    def values(operation: BulkOperation) -> dict[str, object]:
        return {
            "op": operation.op,
            "task_ids": list(operation.task_ids),
            "list_id": operation.list_id,
            "priority": None if isinstance(operation.priority, Unset) else operation.priority.label,
            "add_tags": list(operation.add_tags),
            "remove_tags": list(operation.remove_tags),
            "due_at": "unset"
            if isinstance(operation.due_at, Unset)
            else operation.due_at and operation.due_at.isoformat(),
        }

    return fingerprint({"bulk": [values(operation) for operation in operations], "atomic": atomic})


class _Plan:
    """The tasks as the operations leave them, in memory, and what each operation answered.

    A change that reaches a subtree (complete, delete, a new list) also changes, in memory, the
    named tasks inside that subtree, so each later operation meets them as the single-task calls
    made one after another would have left them: `[delete P, complete C]` answers C
    `task_not_found`, `[complete P, reopen C]` leaves C open. The rest of each subtree is written
    by set-based statements that skip the named tasks (`keep`)."""

    def __init__(self, tasks: dict[int, Task], tree: dict[int, int], rules: RecurrenceRules) -> None:
        self._rules = rules
        self.before = tasks
        self.now = dict(tasks)
        self._tree = tree  # every task under a named one -> its parent, as stored
        # The tasks with a subtask. Read after `get_many` locked the named ones: an insert or a
        # move under a task takes a KEY SHARE lock on it (the foreign key), which waits for ours.
        self._parents = set(tree.values())
        self.deleted: set[int] = set()
        self.completed_roots: set[int] = set()
        self.moved_roots: dict[int, int] = {}  # task -> the list its subtree goes to
        self.results: list[BulkResult] = []
        self._list_ends: dict[int, str | None] = {}
        # The tasks with a named task below them. The operations only ever cut links (a move goes
        # to a list's top level), so this stays a superset, and a task outside it has no named
        # task to find: a batch of 100 unrelated tasks was 10,000 steps of `_named_under`.
        self._above_named = self._ancestors(self.now)

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

    def _parent(self, task_id: int) -> int | None:
        return self.now[task_id].parent_id if task_id in self.now else self._tree.get(task_id)

    def _ancestors(self, task_ids: Iterable[int]) -> set[int]:
        found = set()
        for task_id in task_ids:
            parent, steps = self._parent(task_id), 0
            while parent is not None and steps <= MAX_DEPTH:  # as far as `_named_under` looks
                found.add(parent)
                parent, steps = self._parent(parent), steps + 1
        return found

    def _named_under(self, ancestor: int) -> list[int]:
        """The named tasks, not yet deleted, in `ancestor`'s subtree as it stands now."""
        if ancestor not in self._above_named:
            return []
        found = []
        for task_id in self.now.keys() - self.deleted - {ancestor}:
            parent, steps = self._parent(task_id), 0
            while parent is not None and parent != ancestor and steps < MAX_DEPTH:
                parent, steps = self._parent(parent), steps + 1
            if parent == ancestor:
                found.append(task_id)
        return found

    def _change(self, task: Task, operation: BulkOperation, now: datetime) -> None:
        match operation.op:
            case "delete":
                self.deleted.update([task.id, *self._named_under(task.id)])
                return
            case "complete" | "reopen":
                changes = TaskChanges(completed=operation.op == "complete")
            case "update" | "move":
                tags = UNSET if not (operation.add_tags or operation.remove_tags) else _retagged(task, operation)
                changes = TaskChanges(priority=operation.priority, tags=tags, due_at=operation.due_at)
        changed = with_series_bound(self._rules, task, changes.applied_to(task, now))
        if changed.completed and not task.completed:
            self.completed_roots.add(task.id)
            for below in self._named_under(task.id):
                self.now[below] = TaskChanges(completed=True).applied_to(self.now[below], now)
        # `move` always goes to the end of the list's top level, as its name says (its own list
        # too); `update` changes the list only when it is another.
        if operation.list_id is not None and (operation.op == "move" or operation.list_id != task.list_id):
            position = key_between(self._list_ends[operation.list_id], None)
            self._list_ends[operation.list_id] = position
            changed = replace(changed, list_id=operation.list_id, parent_id=None, position=position, updated_at=now)
            if operation.list_id != task.list_id:
                self.moved_roots[task.id] = operation.list_id
                for below in self._named_under(task.id):
                    self.now[below] = replace(self.now[below], list_id=operation.list_id, updated_at=now)
        self.now[task.id] = changed

    async def write(self, uow: UnitOfWork, user_id: str, now: datetime) -> None:
        """Write what changed and record each changed task in the change feed."""
        changed = [
            task for task_id, task in self.now.items() if task_id not in self.deleted and task != self.before[task_id]
        ]
        if changed:
            saved = await uow.tasks.save_many(changed, self.before)
            uow.changes.record(user_id, [task_change(self.before[task.id], task) for task in saved])
            await uow.reminders.arm([task for task in saved if needs_rearming(self.before[task.id], task)], now)
            for task in saved:
                before = self.before[task.id]
                if task.completed and not before.completed:
                    await next_occurrence(uow, self._rules, task, now)
                elif before.completed and not task.completed and before.recurrence is not None:
                    await remove_successor(uow, task, now)
        keep = sorted(self.now.keys() - self.deleted)
        # Only a task with a subtask has anything below it to complete or to move.
        if completed := sorted(self._parents & (self.completed_roots - self.deleted)):
            below = await uow.tasks.complete_descendants(user_id, completed, now, keep=keep)
            await after_completing(uow, self._rules, below, now)
        moved = {task_id: to for task_id, to in self.moved_roots.items() if task_id in self._parents}
        for list_id in sorted(set(moved.values())):
            roots = sorted(task_id for task_id, to in moved.items() if to == list_id)
            below = await uow.tasks.move_descendants_to(user_id, roots, list_id, now, keep=keep)
            uow.changes.record(user_id, [Change("task.moved", task) for task in below])
        if self.deleted:
            deleted = await uow.tasks.trash(user_id, sorted(self.deleted), now)
            in_order = sorted(deleted, key=lambda task_id: (task_id not in self.deleted, task_id))  # named first
            uow.changes.record(user_id, [task_deleted(task_id, now) for task_id in in_order])


def _retagged(task: Task, operation: BulkOperation) -> tuple[str, ...]:
    removed = {normalise_tag(tag) for tag in operation.remove_tags}
    return tuple(tag for tag in (*task.tags, *operation.add_tags) if normalise_tag(tag) not in removed)
