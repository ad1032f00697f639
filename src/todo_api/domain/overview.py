"""What an SPA shows before any list is opened: counts of a person's tasks, and their tags.

"Due today" is a day in the caller's time zone, so the domain turns the zone's name into the two
instants that bound that day; the database only compares timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from todo_api.domain.tasks import Priority
from todo_api.domain.time_zones import zone_named

MAX_COMPLETE_ALL_TASKS = 1_000
"""What one `complete-all` completes at most, the subtasks under the matches included: one request
holds a pooled connection and the row locks of all of them until it commits."""


@dataclass(frozen=True, slots=True)
class Counts:
    """Open and completed tasks; of the open ones, those overdue (due before now) and those due today
    (a task due earlier today is both)."""

    open: int = 0
    completed: int = 0
    overdue: int = 0
    due_today: int = 0


@dataclass(frozen=True, slots=True)
class Day:
    """A calendar day in a time zone, as the instants it starts and ends at (DST days have 23 or 25 hours)."""

    time_zone: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class TaskSummary:
    all: Counts
    by_priority: dict[Priority, Counts]
    by_list: dict[int, Counts]
    """Every list of the person's, in their order; a list without tasks has zero counts."""
    now: datetime
    day: Day


@dataclass(frozen=True, slots=True)
class TagCount:
    tag: str
    open: int
    total: int


@dataclass(frozen=True, slots=True)
class Completed:
    """What `complete-all` or `clear completed` changed: how many tasks, which ones."""

    count: int
    task_ids: tuple[int, ...] = field(default=())


def today_in(time_zone: str, now: datetime) -> Day:
    """The day `now` falls on in `time_zone` (an IANA name such as `Europe/Paris`, or `UTC`)."""
    zone = zone_named(time_zone, field="tz")
    local = now.astimezone(zone).date()
    start = datetime.combine(local, time(), tzinfo=zone)
    end = datetime.combine(local + timedelta(days=1), time(), tzinfo=zone)
    return Day(time_zone, start, end)
