"""Reminders: the upcoming ones across tasks, snoozing one, and the scheduler's pass."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from todo_api.domain.changes import Change, ReminderDue
from todo_api.domain.errors import InvalidInput, NotFound
from todo_api.domain.ports import Clock, UnitOfWorkFactory
from todo_api.domain.recurrence import MAX_REMINDER_OFFSET, ReminderPosition, ScheduledReminder
from todo_api.domain.tasks import MAX_PAGE_SIZE
from todo_api.use_cases.retries import retry_transient

log = logging.getLogger("todo_api.reminders")

MAX_WINDOW: Final = timedelta(days=366)


@dataclass(frozen=True, slots=True)
class ReminderPage:
    reminders: list[ScheduledReminder]
    next_position: ReminderPosition | None


class ListReminders:
    """Armed reminders of open tasks firing in [start, end): what a client schedules locally."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def execute(
        self, user_id: str, start: datetime, end: datetime, limit: int, after: ReminderPosition | None = None
    ) -> ReminderPage:
        if not start < end or end - start > MAX_WINDOW:
            raise InvalidInput("`from` comes before `to`, at most 366 days apart.", code="invalid_window")
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidInput(f"`limit` is between 1 and {MAX_PAGE_SIZE}.", code="invalid_limit")
        async with self._uow(read_only=True) as uow:
            rows = await uow.reminders.upcoming(user_id, start, end, limit, after)
        page, more = rows[:limit], len(rows) > limit
        return ReminderPage(page, ReminderPosition(page[-1].fire_at, page[-1].id) if more else None)


class SnoozeReminder:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    @retry_transient
    async def execute(self, user_id: str, task_id: int, reminder_id: int, duration: timedelta) -> ScheduledReminder:
        if not timedelta(0) < duration <= MAX_REMINDER_OFFSET:
            raise InvalidInput("A snooze lasts more than PT0S and at most P366D.", code="invalid_duration")
        async with self._uow() as uow:
            snoozed = await uow.reminders.snooze(user_id, task_id, reminder_id, self._clock.now() + duration)
            if snoozed is None:
                raise NotFound(
                    f"Task {task_id} has no reminder {reminder_id} (or it is completed).", code="reminder_not_found"
                )
            await uow.commit()
        return snoozed


@dataclass(frozen=True, slots=True)
class SchedulerOptions:
    batch: int = 500


class FireReminders:
    """The scheduler's pass (a worker loop in every replica): claim due reminders, skipping the
    rows another replica holds, and write their `task.reminder_due` events in the transaction that
    marks them fired. Exactly once: a reminder is fired by the commit that writes its event, and a
    process that dies before committing leaves it due for the next pass."""

    name = "reminders"

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, options: SchedulerOptions | None = None) -> None:
        self._uow, self._clock, self._options = uow, clock, options or SchedulerOptions()
        self.last_lag_s = 0.0
        """How late the latest pass fired its latest reminder (seconds): what the bench reports."""

    async def run_once(self) -> int:
        now = self._clock.now()
        async with self._uow() as uow:
            claimed = await uow.reminders.claim_due(now, self._options.batch)
            for reminder, task in claimed:
                due = ReminderDue(task, reminder.id, reminder.index, reminder.fire_at)
                uow.changes.record(task.user_id, [Change("task.reminder_due", due)])
            await uow.commit()
        if claimed:
            self.last_lag_s = max((now - reminder.fire_at).total_seconds() for reminder, _ in claimed)
            log.info("reminders_fired", extra={"count": len(claimed), "lag_s": round(self.last_lag_s, 3)})
        return len(claimed)
