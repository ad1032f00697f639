"""The reminders' schedule in SQLAlchemy Core: armed rows found by time through partial indexes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, SmallInteger, String, any_, bindparam, delete, false, func, select, tuple_
from sqlalchemy import update as update_
from sqlalchemy.dialects.postgresql import ARRAY, insert

from todo_api.adapters.sql.engine import Connection, Row, Statement
from todo_api.adapters.sql.tables import reminders, tasks
from todo_api.adapters.sql.task_repository import task_of
from todo_api.domain.recurrence import ReminderPosition, ScheduledReminder
from todo_api.domain.tasks import Task

_TIMESTAMP = DateTime(timezone=True)
_gone = delete(reminders).where(reminders.c.task_id == any_(bindparam("task_ids", type_=ARRAY(BigInteger)))).cte("gone")
_armed = select(
    func.unnest(bindparam("r_task_ids", type_=ARRAY(BigInteger))),
    func.unnest(bindparam("r_user_ids", type_=ARRAY(String))),
    func.unnest(bindparam("r_ordinals", type_=ARRAY(SmallInteger))),
    func.unnest(bindparam("r_fire_ats", type_=ARRAY(_TIMESTAMP))),
    func.unnest(bindparam("r_fired_ats", type_=ARRAY(_TIMESTAMP))),
)
# The old schedule goes and the new one comes in one statement (a data-modifying CTE always runs).
_ARM = Statement(
    insert(reminders).from_select(["task_id", "user_id", "ordinal", "fire_at", "fired_at"], _armed).add_cte(_gone)
)
_open_task = select(tasks.c.id).where(tasks.c.id == reminders.c.task_id, tasks.c.completed.is_(false())).exists()
_window = (
    reminders.c.user_id == bindparam("owner"),
    reminders.c.fired_at.is_(None),
    reminders.c.fire_at >= bindparam("start", type_=_TIMESTAMP),
    reminders.c.fire_at < bindparam("end", type_=_TIMESTAMP),
    _open_task,
)
_UPCOMING_FIRST = Statement(
    select(reminders).where(*_window).order_by(reminders.c.fire_at, reminders.c.id).limit(bindparam("limit"))
)
_UPCOMING_NEXT = Statement(
    select(reminders)
    .where(
        *_window,
        tuple_(reminders.c.fire_at, reminders.c.id)
        > tuple_(bindparam("after_at", type_=_TIMESTAMP), bindparam("after_id", type_=BigInteger)),
    )
    .order_by(reminders.c.fire_at, reminders.c.id)
    .limit(bindparam("limit"))
)
_SNOOZE = Statement(
    update_(reminders)
    .where(
        reminders.c.id == bindparam("reminder_id", type_=BigInteger),
        reminders.c.task_id == bindparam("task_id", type_=BigInteger),
        reminders.c.user_id == bindparam("owner"),
        _open_task,
    )
    .values(fire_at=bindparam("until", type_=_TIMESTAMP), fired_at=None, snoozed=True)
    .returning(reminders)
)
_due = (
    select(reminders.c.id)
    .where(reminders.c.fired_at.is_(None), reminders.c.fire_at <= bindparam("now", type_=_TIMESTAMP))
    .order_by(reminders.c.fire_at, reminders.c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
    .scalar_subquery()
)
# Claimed and marked fired in one statement; the caller's unit writes the events and commits.
# `id = ANY(ARRAY(...))`: the claimed ids are found by primary key (a join with the claim would
# let the planner hash it against a scan of every reminder).
_CLAIM = Statement(
    update_(reminders)
    .where(reminders.c.id == any_(func.array(_due)), tasks.c.id == reminders.c.task_id)
    .values(fired_at=bindparam("now", type_=_TIMESTAMP))
    .returning(
        reminders.c.id.label("reminder_id"),
        reminders.c.ordinal,
        reminders.c.fire_at,
        reminders.c.snoozed,
        *tasks.c,
    )
)


def scheduled_of(row: Row) -> ScheduledReminder:
    return ScheduledReminder(
        id=row["id"],
        user_id=row["user_id"],
        task_id=row["task_id"],
        index=row["ordinal"],
        fire_at=row["fire_at"],
        snoozed=row["snoozed"],
    )


class SqlReminderRepository:
    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def arm(self, tasks_: Sequence[Task], now: datetime) -> None:
        if not tasks_:
            return
        rows: dict[str, list[Any]] = {"r_task_ids": [], "r_user_ids": [], "r_ordinals": [], "r_fire_ats": []}
        fired: list[datetime | None] = []
        for task in tasks_:
            if task.completed:
                continue
            for ordinal, reminder in enumerate(task.reminders):
                fire_at = reminder.fire_at(task.due_at)
                if fire_at is None:
                    continue
                rows["r_task_ids"].append(task.id)
                rows["r_user_ids"].append(task.user_id)
                rows["r_ordinals"].append(ordinal)
                rows["r_fire_ats"].append(fire_at)
                fired.append(now if fire_at <= now else None)  # in the past: kept, never fires
        await _ARM.execute(self._db, task_ids=[task.id for task in tasks_], r_fired_ats=fired, **rows)

    async def upcoming(
        self, user_id: str, start: datetime, end: datetime, limit: int, after: ReminderPosition | None
    ) -> list[ScheduledReminder]:
        values: dict[str, Any] = {"owner": user_id, "start": start, "end": end, "limit": limit + 1}
        if after is None:
            rows = await _UPCOMING_FIRST.fetch(self._db, **values)
        else:
            rows = await _UPCOMING_NEXT.fetch(self._db, after_at=after.fire_at, after_id=after.id, **values)
        return [scheduled_of(row) for row in rows]

    async def snooze(self, user_id: str, task_id: int, reminder_id: int, until: datetime) -> ScheduledReminder | None:
        row = await _SNOOZE.fetchrow(self._db, owner=user_id, task_id=task_id, reminder_id=reminder_id, until=until)
        return scheduled_of(row) if row else None

    async def claim_due(self, now: datetime, limit: int) -> list[tuple[ScheduledReminder, Task]]:
        claimed = []
        for row in await _CLAIM.fetch(self._db, now=now, limit=limit):
            task = task_of(row)
            if task.completed:
                continue
            reminder = ScheduledReminder(
                row["reminder_id"], task.user_id, task.id, row["ordinal"], row["fire_at"], row["snoozed"]
            )
            claimed.append((reminder, task))
        return claimed
