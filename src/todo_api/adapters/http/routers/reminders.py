"""/api/{user_id}/reminders: the upcoming reminders across tasks (for clients that schedule local
notifications), and snoozing one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from todo_api.adapters.http.deps import TaskOwner
from todo_api.adapters.http.paging import Cursor, next_link
from todo_api.adapters.http.problems import problem_responses
from todo_api.adapters.http.schemas import (
    MAX_ID,
    IsoDateTime,
    ReminderPageOut,
    ScheduledReminderOut,
    SnoozeRequest,
)
from todo_api.domain.recurrence import parse_duration

router = APIRouter(prefix="/api/{user_id}", tags=["reminders"])

RowId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get(
    "/reminders",
    operation_id="listReminders",
    summary="Your reminders due in a window, soonest first",
    description="Armed reminders of open tasks firing in [`from`, `to`) (at most 366 days apart), ordered by "
    'time; keyset pagination with `meta.next_cursor` (or the `Link: rel="next"` header). A reminder that fired '
    "is not listed (snoozing it arms it again).",
    responses=problem_responses(400, 401, 403, 422),
)
async def list_reminders(
    caller: TaskOwner,
    request: Request,
    response: Response,
    from_: Annotated[IsoDateTime, Query(alias="from", examples=["2026-12-01T00:00:00Z"])],
    to: Annotated[IsoDateTime, Query(examples=["2026-12-08T00:00:00Z"])],
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Cursor = None,
) -> ReminderPageOut:
    after = caller.services.cursors.decode_reminders(cursor) if cursor else None
    page = await caller.use_cases.list_reminders.execute(caller.user_id, from_, to, limit, after)
    next_cursor = caller.services.cursors.encode_reminders(page.next_position) if page.next_position else None
    if next_cursor:
        response.headers["Link"] = next_link(request, next_cursor)
    data = [ScheduledReminderOut.fields_of(reminder) for reminder in page.reminders]
    return ReminderPageOut.model_validate({"data": data, "meta": {"next_cursor": next_cursor, "limit": limit}})


@router.post(
    "/tasks/{task_id}/reminders/{reminder_id}/snooze",
    operation_id="snoozeReminder",
    summary="Fire a reminder again after a while",
    description="`reminder_id` is the `id` `GET .../reminders` (or a `task.reminder_due` event's `data.reminder`) "
    "gives. 404 `reminder_not_found` when the task has no such reminder or is completed.",
    responses=problem_responses(401, 403, 404, 422),
)
async def snooze_reminder(
    task_id: RowId, reminder_id: RowId, body: SnoozeRequest, caller: TaskOwner
) -> ScheduledReminderOut:
    snoozed = await caller.use_cases.snooze_reminder.execute(
        caller.user_id, task_id, reminder_id, parse_duration(body.duration)
    )
    return ScheduledReminderOut.of(snoozed)
