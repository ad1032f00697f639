"""Task use cases: create (idempotently), list, get, replace, update, set completion, delete.

Writes lock the task they change, so concurrent writers queue instead of failing or losing a
change; with `If-Match`, a write also refuses a task that moved past the version the caller saw.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from todo_api.domain.errors import InvalidInput, NotFound, PreconditionFailed, ServiceUnavailable
from todo_api.domain.ports import Clock, IdempotentOutcome, UnitOfWorkFactory
from todo_api.domain.tasks import Position, Task, TaskChanges, TaskDraft, TaskPage, TaskQuery, sort_value
from todo_api.use_cases.retries import retry_transient

IDEMPOTENCY_WINDOW = timedelta(hours=24)


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

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    async def execute(self, user_id: str, draft: TaskDraft, idempotency_key: str | None = None) -> Created:
        now = self._clock.now()
        if idempotency_key is None:
            return Created(await self._add(user_id, draft, now))
        since = now - IDEMPOTENCY_WINDOW
        request_hash = _fingerprint(draft)
        created = await self._add_once(user_id, draft, idempotency_key, request_hash, now)
        if created is not None:
            return created
        # A concurrent request with the same key committed first; ours was rolled back: answer theirs.
        async with self._uow(read_only=True) as uow:
            earlier = await uow.idempotency_keys.find(user_id, idempotency_key, since)
        if earlier is None:
            raise ServiceUnavailable("A request with this Idempotency-Key is in progress.", retry_after_s=1)
        return _replay(earlier, request_hash)

    @retry_transient
    async def _add(self, user_id: str, draft: TaskDraft, now: datetime) -> Task:
        async with self._uow() as uow:
            task = await uow.tasks.add(user_id, draft, now)
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
            task = await uow.tasks.add(user_id, draft, now)
            if not await uow.idempotency_keys.claim(user_id, key, IdempotentOutcome(request_hash, task), now, since):
                await uow.rollback()
                return None
            await uow.commit()
        return Created(task)


def _fingerprint(draft: TaskDraft) -> str:
    values = asdict(draft)
    values["priority"] = draft.priority.label
    values["due_at"] = draft.due_at.isoformat() if draft.due_at else None
    values["tags"] = list(draft.tags)
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def _replay(earlier: IdempotentOutcome, request_hash: str) -> Created:
    if earlier.request_hash != request_hash:
        raise InvalidInput(
            "This Idempotency-Key was used with a different request body.", code="idempotency_key_reused"
        )
    return Created(earlier.task, replayed=True)


class ListTasks:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    async def execute(self, user_id: str, query: TaskQuery, *, include_total: bool = False) -> TaskPage:
        now = self._clock.now()
        async with self._uow(read_only=True) as uow:
            rows = await uow.tasks.list(user_id, query, now)
            total = await uow.tasks.count(user_id, query.filter, now) if include_total else None
        tasks, more = rows[: query.limit], len(rows) > query.limit
        position = Position(sort_value(tasks[-1], query.sort.field), tasks[-1].id) if more else None
        return TaskPage(tasks, position, total)


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

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    @retry_transient
    async def execute(
        self, user_id: str, task_id: int, changes: TaskChanges, *, if_match: frozenset[int] | None = None
    ) -> Task:
        return await _write(self._uow, self._clock, user_id, task_id, lambda _: changes, if_match)


class SetTaskCompletion:
    """`completed` given: set it; not given: toggle what is stored now (not what the client saw)."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    @retry_transient
    async def execute(
        self, user_id: str, task_id: int, completed: bool | None = None, *, if_match: frozenset[int] | None = None
    ) -> Task:
        def changes(task: Task) -> TaskChanges:
            return TaskChanges(completed=(not task.completed) if completed is None else completed)

        return await _write(self._uow, self._clock, user_id, task_id, changes, if_match)


async def _write(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    user_id: str,
    task_id: int,
    make_changes: Callable[[Task], TaskChanges],
    if_match: frozenset[int] | None,
) -> Task:
    """Read the task locked, check If-Match against it, change it, save it: concurrent writers
    queue on the row lock instead of failing, and none of their changes is lost."""
    async with uow_factory() as uow:
        task = await uow.tasks.get(user_id, task_id, for_update=True)
        if task is None:
            raise _not_found(task_id)
        if if_match is not None and task.version not in if_match:
            raise _stale(task)
        changed = make_changes(task).applied_to(task, clock.now())
        if changed == task:
            return task
        saved = await uow.tasks.save(changed, expected_version=task.version)
        if saved is None:  # cannot happen under the lock; refuse rather than guess
            raise _stale(task)
        await uow.commit()
        return saved


class DeleteTask:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    @retry_transient
    async def execute(self, user_id: str, task_id: int, *, if_match: frozenset[int] | None = None) -> None:
        async with self._uow() as uow:
            task = await uow.tasks.get(user_id, task_id, for_update=True)
            if task is None:
                raise _not_found(task_id)
            if if_match is not None and task.version not in if_match:
                raise _stale(task)
            await uow.tasks.delete(user_id, task_id, expected_version=task.version)
            await uow.commit()
