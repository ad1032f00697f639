"""Recurring tasks and reminders: the values only. The calendar arithmetic (RFC 5545 rules, time
zones) lives behind the `RecurrenceRules` port, so the core never expands a rule by hand."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from todo_api.domain.errors import InvalidInput

MAX_REMINDERS: Final = 5
MAX_REMINDER_OFFSET: Final = timedelta(days=366)
MAX_RULE_CHARS: Final = 500
SERIES_YEARS: Final = range(2, 9999)
"""The years a series' occurrences fall in: a year of room on either side of the calendar, so a
rule's expansion (which looks a day back), a time zone's offset and a next occurrence stay in it."""

RecurrenceFrom = Literal["due", "completion"]


def invalid_recurrence(detail: str, *, field: str = "recurrence.rule") -> InvalidInput:
    return InvalidInput(detail, code="invalid_recurrence", field=field)


@dataclass(frozen=True, slots=True)
class Recurrence:
    """An RFC 5545 RRULE read on the wall clock of `timezone`. `start` is the series' DTSTART (the
    first occurrence, which also gives the time of day); None until the use case binds the rule
    to a due date and normalises it through the port. `from_`: the next occurrence follows the
    completed one's due date, or the moment it was completed."""

    rule: str
    timezone: str
    from_: RecurrenceFrom = "due"
    start: datetime | None = None


@dataclass(frozen=True, slots=True)
class Reminder:
    """`before` the task's due date (moving with it), or `at` a fixed instant; exactly one."""

    before: timedelta | None = None
    at: datetime | None = None

    def __post_init__(self) -> None:
        if (self.before is None) == (self.at is None):
            raise InvalidInput("A reminder is either `before` or `at`.", code="invalid_reminder")
        if self.before is not None and not timedelta(0) <= self.before <= MAX_REMINDER_OFFSET:
            raise InvalidInput("`before` is a duration between PT0S and P366D.", code="invalid_reminder")
        if self.at is not None and self.at.utcoffset() is None:
            raise InvalidInput("`at` needs a time zone (e.g. 2026-05-01T17:00:00Z).", code="naive_datetime")

    def fire_at(self, due_at: datetime | None) -> datetime | None:
        if self.at is not None:
            return self.at
        assert self.before is not None  # noqa: S101 - one of the two, checked on construction
        return None if due_at is None else due_at - self.before


def in_series_years(due_at: datetime) -> bool:
    try:
        return due_at.astimezone(UTC).year in SERIES_YEARS
    except OverflowError:  # past 9999-12-31 in UTC
        return False


def check_series(due_at: datetime | None, recurrence: Recurrence | None, reminders: tuple[Reminder, ...]) -> None:
    """What recurrence and reminders ask of the task that carries them. Dates near the ends of the
    calendar are refused here, before anything is written: the arithmetic on them would overflow."""
    if recurrence is not None and due_at is None:
        raise invalid_recurrence("A recurring task needs `due_at` (its first occurrence).", field="due_at")
    if recurrence is not None and due_at is not None and not in_series_years(due_at):
        raise InvalidInput(
            f"A recurring task is due in the years {SERIES_YEARS.start} to {SERIES_YEARS.stop - 1}.",
            code="invalid_recurrence",
            field="due_at",
        )
    if len(reminders) > MAX_REMINDERS:
        raise InvalidInput(
            f"A task has at most {MAX_REMINDERS} reminders.", code="too_many_reminders", field="reminders"
        )
    if due_at is None and any(reminder.before is not None for reminder in reminders):
        raise InvalidInput("A reminder `before` the due date needs `due_at`.", code="invalid_reminder", field="due_at")
    for reminder in reminders:
        try:
            fire_at = reminder.fire_at(due_at)
            if fire_at is not None:
                fire_at.astimezone(UTC)
        except OverflowError:
            raise InvalidInput(
                "A reminder falls outside the years 1 to 9999 (in UTC): move `due_at`, `at` or shorten `before`.",
                code="invalid_reminder",
                field="reminders",
            ) from None


_DURATION = re.compile(
    r"P(?:(?P<weeks>\d{1,3})W|(?:(?P<days>\d{1,3})D)?(?:T(?:(?P<hours>\d{1,4})H)?(?:(?P<minutes>\d{1,6})M)?"
    r"(?:(?P<seconds>\d{1,8})S)?)?)",
    re.ASCII,
)


def parse_duration(text: str) -> timedelta:
    """An ISO 8601 duration of weeks, days, hours, minutes and seconds (`PT15M`, `P1D`, `P1W`):
    months and years have no fixed length, so they are refused rather than guessed."""
    match = _DURATION.fullmatch(text.upper())
    if match is None or text.upper() in ("P", "PT") or text.upper().endswith("T"):
        raise InvalidInput(
            f"{text!r} is not an ISO 8601 duration in weeks, days, hours, minutes or seconds (e.g. PT15M).",
            code="invalid_duration",
        )
    parts = {name: int(value) for name, value in match.groupdict().items() if value is not None}
    return timedelta(**parts)


def format_duration(duration: timedelta) -> str:
    """The shortest ISO 8601 spelling: `PT15M`, `P1D`, `P1DT2H`, `PT0S`."""
    seconds = int(duration.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    time = "".join(f"{value}{unit}" for value, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if value)
    text = "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")
    return "PT0S" if text == "P" else text


def format_instant(moment: datetime) -> str:
    """An instant in UTC with `Z`, as the API, the stored reminders and the feed spell it."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def reminder_fields(reminder: Reminder) -> dict[str, str]:
    """A reminder as a task's row keeps it and the API shows it: `{"before": "PT15M"}` or `{"at": "...Z"}`."""
    if reminder.before is not None:
        return {"before": format_duration(reminder.before)}
    assert reminder.at is not None  # noqa: S101 - one of the two, checked on construction
    return {"at": format_instant(reminder.at)}


@dataclass(frozen=True, slots=True)
class ScheduledReminder:
    """One armed reminder of a task: where `GET /reminders` and the scheduler find it."""

    id: int
    user_id: str
    task_id: int
    index: int
    """Its place in the task's `reminders`."""
    fire_at: datetime
    snoozed: bool = False


@dataclass(frozen=True, slots=True)
class ReminderPosition:
    """Where a page of reminders ended: the last one's time and id."""

    fire_at: datetime
    id: int
