"""What an SPA builds first: the counts on its home screen, the tag cloud, and the two buttons
every todo app has ("complete all", "clear completed"). Each is one statement; the two writes
record one event per task they changed, like any write."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from todo_api.domain.changes import task_deleted
from todo_api.domain.errors import InvalidInput
from todo_api.domain.overview import MAX_COMPLETE_ALL_TASKS, Completed, TagCount, TaskSummary, today_in
from todo_api.domain.ports import Clock, RecurrenceRules, UnitOfWorkFactory
from todo_api.domain.tasks import TaskFilter
from todo_api.use_cases.retries import retry_transient
from todo_api.use_cases.series import after_completing


class GetSummary:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    async def execute(self, user_id: str, time_zone: str) -> TaskSummary:
        now = self._clock.now()
        day = today_in(time_zone, now)  # 422 unknown_time_zone before any query
        async with self._uow(read_only=True) as uow:
            return await uow.tasks.summary(user_id, now, day)


class ListTags:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def execute(self, user_id: str) -> Sequence[TagCount]:
        async with self._uow(read_only=True) as uow:
            return await uow.tasks.tag_counts(user_id)


class CompleteAll:
    """Every open task the filter matches, with the open tasks under each (as completing one task
    completes its subtasks), each a new version and a `task.completed` event.

    At most `max_tasks` at once, as `/bulk` caps its tasks: more is `422 too_many_tasks` and
    nothing is written. The matches are counted first, so a filter that is far too wide is refused
    before any row is locked; the subtasks under them count too, checked on what was completed."""

    def __init__(
        self, uow: UnitOfWorkFactory, clock: Clock, rules: RecurrenceRules, *, max_tasks: int = MAX_COMPLETE_ALL_TASKS
    ) -> None:
        self._uow, self._clock, self._rules, self._max = uow, clock, rules, max_tasks

    @retry_transient
    async def execute(self, user_id: str, task_filter: TaskFilter) -> Completed:
        scope = replace(task_filter, status="pending")
        async with self._uow() as uow:
            now = self._clock.now()
            if await uow.tasks.count(user_id, scope, now) > self._max:
                raise self._too_many()
            done = await uow.tasks.complete_matching(user_id, scope, now)
            if len(done) > self._max:
                await uow.rollback()
                raise self._too_many()
            await after_completing(uow, self._rules, done, now)
            await uow.commit()
        return Completed(len(done), tuple(task.id for task in done))

    def _too_many(self) -> InvalidInput:
        return InvalidInput(
            f"complete-all completes at most {self._max} tasks (subtasks included) at once; "
            "narrow it with list_id, parent_id, priority, tag or overdue.",
            code="too_many_tasks",
        )


class ClearCompleted:
    """Deletes the completed tasks the filter matches, with everything under each, into the trash
    as `DELETE` does: each stays restorable for the retention window, and is a `task.deleted` event."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    @retry_transient
    async def execute(self, user_id: str, task_filter: TaskFilter) -> Completed:
        async with self._uow() as uow:
            now = self._clock.now()
            deleted = await uow.tasks.trash_matching(user_id, replace(task_filter, status="completed"), now)
            uow.changes.record(user_id, [task_deleted(task_id, now) for task_id in sorted(deleted)])
            await uow.commit()
        return Completed(len(deleted), tuple(sorted(deleted)))
