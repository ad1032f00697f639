"""The change feed: one event per changed task or list, in a per-person order that only grows.

A use case records what it changed on its unit of work; the events are written with the change,
in its transaction (an outbox), so no change commits without its event and no event outlives a
change that rolled back. Each person's events are numbered 1, 2, 3... in commit order: a reader
that has seen position N is never later handed an event below N.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from todo_api.domain.lists import TaskList
from todo_api.domain.tasks import Task

MAX_CHANGES_PAGE: Final = 500

TaskEventType = Literal[
    "task.created",
    "task.updated",
    "task.completed",
    "task.reopened",
    "task.moved",
    "task.deleted",
    "task.restored",
    "task.reminder_due",
]
ListEventType = Literal["list.created", "list.updated", "list.moved", "list.deleted", "list.restored"]
EventType = TaskEventType | ListEventType
EVENT_TYPES: Final[tuple[str, ...]] = (*TaskEventType.__args__, *ListEventType.__args__)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Deleted:
    """What a deletion leaves in the feed: which object, and when (a tombstone)."""

    kind: Literal["task", "list"]
    id: int
    deleted_at: datetime


@dataclass(frozen=True, slots=True)
class ReminderDue:
    """A task's reminder reached its time: the task as it stands, and which reminder."""

    task: Task
    reminder_id: int
    index: int
    fire_at: datetime

    @property
    def id(self) -> int:
        return self.task.id


@dataclass(frozen=True, slots=True)
class Change:
    type: EventType
    subject: Task | TaskList | Deleted | ReminderDue

    @property
    def aggregate_type(self) -> Literal["task", "list"]:
        if isinstance(self.subject, Deleted):
            return self.subject.kind
        return "list" if isinstance(self.subject, TaskList) else "task"

    @property
    def aggregate_id(self) -> int:
        return self.subject.id

    @property
    def key(self) -> tuple[str, int, int]:
        """What `coalesced` merges on: the object, and for a reminder, which one (two reminders
        of one task due together are two events)."""
        reminder = self.subject.reminder_id if isinstance(self.subject, ReminderDue) else 0
        return self.aggregate_type, self.aggregate_id, reminder


def task_change(before: Task | None, after: Task) -> Change:
    """The event a task's new state makes, named by what changed most."""
    kind: TaskEventType
    if before is None:
        kind = "task.created"
    elif after.completed != before.completed:
        kind = "task.completed" if after.completed else "task.reopened"
    elif (after.list_id, after.parent_id, after.position) != (before.list_id, before.parent_id, before.position):
        kind = "task.moved"
    else:
        kind = "task.updated"
    return Change(kind, after)


def task_deleted(task_id: int, at: datetime) -> Change:
    return Change("task.deleted", Deleted("task", task_id, at))


_BIRTHS = ("task.created", "task.restored", "list.created", "list.restored")


def coalesced(changes: Sequence[Change]) -> list[Change]:
    """One event per changed object per transaction: its last state, in the order objects were
    first changed. An object made (or restored) in the same transaction keeps that name."""
    first: dict[tuple[str, int, int], Change] = {}
    last: dict[tuple[str, int, int], Change] = {}
    for change in changes:
        key = change.key
        first.setdefault(key, change)
        last[key] = change
    merged = []
    for key, change in first.items():
        final = last[key]
        if change.type in _BIRTHS and not isinstance(final.subject, Deleted):
            final = Change(change.type, final.subject)
        merged.append(final)
    return merged


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One stored event: its position in the person's feed, and the CloudEvent as JSON."""

    position: int
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChangePage:
    events: list[FeedEvent]
    position: int
    """The position the page reached: where the next read starts."""
    has_more: bool
