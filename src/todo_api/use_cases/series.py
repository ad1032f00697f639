"""What recurring tasks and reminders add to a task's writes: binding a rule to its series,
the next occurrence on completion, removing it on reopening, and keeping reminders armed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from todo_api.domain.changes import Change, task_change, task_deleted
from todo_api.domain.ordering import key_between
from todo_api.domain.ports import RecurrenceRules, UnitOfWork
from todo_api.domain.recurrence import Recurrence, in_series_years
from todo_api.domain.tasks import Task


def bound_to_due_date(rules: RecurrenceRules, recurrence: Recurrence, due_at: datetime) -> Recurrence:
    """A rule as a client sent it, normalised and starting at the task's due date."""
    return replace(recurrence, rule=rules.normalised(recurrence.rule, recurrence.timezone), start=due_at)


def with_series_bound(rules: RecurrenceRules, before: Task, changed: Task) -> Task:
    """A rule just sent is normalised and starts at the due date; a series whose due date the
    person moved starts over there (its time of day follows it)."""
    recurrence = changed.recurrence
    if recurrence is None or changed == before:
        return changed
    due_at = changed.due_at
    assert due_at is not None  # noqa: S101 - a recurring task has one, checked by `applied_to`
    if recurrence.start is None:
        sent = bound_to_due_date(rules, recurrence, due_at)
        if before.recurrence is None or replace(before.recurrence, start=None) != replace(sent, start=None):
            return replace(changed, recurrence=sent)
        recurrence = before.recurrence  # the rule it has, resent (a PUT sends every field)
        changed = replace(changed, recurrence=recurrence)
    if due_at != before.due_at:
        return replace(changed, recurrence=rules.rebased(recurrence, due_at, before.due_at))
    return changed


async def next_occurrence(uow: UnitOfWork, rules: RecurrenceRules, done: Task, now: datetime) -> Task | None:
    """The series' next task after `done` (just completed), at the end of its siblings; None when
    the rule has ended (or would go on past `SERIES_YEARS`) or a next one exists already (the unique
    `previous_id` decides)."""
    recurrence = done.recurrence
    if recurrence is None or done.due_at is None or not in_series_years(done.due_at):
        return None  # out of the years: a row stored before they were checked
    due = rules.next_after(recurrence, done.due_at if recurrence.from_ == "due" else now)
    if due is None or not in_series_years(due):
        return None
    last = await uow.tasks.last_position(done.user_id, done.list_id, done.parent_id)
    successor = replace(
        done,
        id=0,
        completed=False,
        completed_at=None,
        due_at=due,
        version=1,
        position=key_between(last, None),
        created_at=now,
        updated_at=now,
        series_id=done.series_id or done.id,
        previous_id=done.id,
    )
    added = await uow.tasks.add_successor(successor, now)
    if added is None:
        return None
    uow.changes.record(done.user_id, [task_change(None, added)])
    if added.reminders:
        await uow.reminders.arm([added], now)
    return added


async def after_completing(uow: UnitOfWork, rules: RecurrenceRules, done: Sequence[Task], now: datetime) -> None:
    """What completing does beyond writing the rows, for tasks completed on the way (a parent's
    subtasks on `/complete` and `/bulk`, every match of `complete-all`): each is a `task.completed`
    event, its reminders are disarmed and an occurrence of a series gets its next one, whichever
    path completed it. Call it before the unit's last write: that write takes the feed's lock."""
    if not done:
        return
    uow.changes.record(done[0].user_id, [Change("task.completed", task) for task in done])
    await uow.reminders.arm([task for task in done if task.reminders], now)  # completed: disarmed
    for task in done:
        if task.recurrence is not None:
            await next_occurrence(uow, rules, task, now)


async def remove_successor(uow: UnitOfWork, reopened: Task, now: datetime) -> None:
    removed = await uow.tasks.remove_successor(reopened.user_id, reopened.id)
    if removed is not None:
        uow.changes.record(reopened.user_id, [task_deleted(removed, now)])


def needs_rearming(before: Task, after: Task) -> bool:
    if not (before.reminders or after.reminders):
        return False
    return (before.reminders, before.due_at, before.completed) != (after.reminders, after.due_at, after.completed)


async def rearm_if_needed(uow: UnitOfWork, before: Task, after: Task, now: datetime) -> None:
    """New reminders, a moved due date or a change of completion re-arm the task's schedule
    (completed: nothing armed); before the unit's last write, which takes the feed's lock."""
    if needs_rearming(before, after):
        await uow.reminders.arm([after], now)
