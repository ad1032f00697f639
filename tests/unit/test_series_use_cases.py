"""Recurring tasks and reminders, use case by use case, against the in-memory fakes and the real
calendar adapter: the next occurrence on completion, reopening, skipping, re-arming reminders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.unit.fakes import FakeClock, FakeStore, FakeUnitOfWorkFactory
from todo_api.adapters.calendar.rrule import RruleRecurrences
from todo_api.adapters.http.schemas import event_data
from todo_api.domain.errors import InvalidInput
from todo_api.domain.recurrence import Recurrence, Reminder
from todo_api.domain.tasks import Task, TaskChanges, TaskDraft
from todo_api.use_cases.reminders import ListReminders, SnoozeReminder
from todo_api.use_cases.tasks import CreateTask, SetTaskCompletion, SkipOccurrence, UpdateTask

ADA = "a" * 32
RULES = RruleRecurrences()
MONDAY = datetime(2027, 3, 1, 8, 30, tzinfo=UTC)  # 09:30 in Berlin
WEEKDAYS = Recurrence("freq=weekly;byday=mo,tu,we,th,fr", "Europe/Berlin")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2027, 2, 1, tzinfo=UTC))


@pytest.fixture
def uow(clock: FakeClock) -> FakeUnitOfWorkFactory:
    return FakeUnitOfWorkFactory(clock=clock)


@pytest.fixture
def store(uow: FakeUnitOfWorkFactory) -> FakeStore:
    return uow.store


async def series(uow: FakeUnitOfWorkFactory, clock: FakeClock, **draft: object) -> Task:
    values: dict[str, object] = {"due_at": MONDAY, "recurrence": WEEKDAYS, **draft}
    return (await CreateTask(uow, clock, RULES).execute(ADA, TaskDraft("Stand-up", **values))).task  # type: ignore[arg-type]


def kinds(store: FakeStore) -> list[str]:
    return [event.payload["type"] for event in store.events.get(ADA, [])]


async def test_a_rule_is_stored_normalised_from_the_due_date(uow: FakeUnitOfWorkFactory, clock: FakeClock) -> None:
    task = await series(uow, clock)
    assert task.recurrence == Recurrence("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "Europe/Berlin", "due", MONDAY)


async def test_completing_an_occurrence_creates_the_next_after_its_event(
    uow: FakeUnitOfWorkFactory, clock: FakeClock, store: FakeStore
) -> None:
    task = await series(uow, clock, reminders=(Reminder(before=timedelta(minutes=15)),))

    done = await SetTaskCompletion(uow, clock, RULES).execute(ADA, task.id, True)

    (successor,) = [other for other in store.tasks.values() if other.id != task.id]
    assert done.completed
    assert (successor.due_at, successor.previous_id, successor.series_id) == (
        MONDAY + timedelta(days=1),
        task.id,
        task.id,
    )
    assert (successor.title, successor.recurrence, successor.reminders) == (task.title, task.recurrence, task.reminders)
    assert kinds(store)[-2:] == ["task.completed", "task.created"]
    assert [armed.fire_at for armed in store.reminders[successor.id]] == [MONDAY + timedelta(days=1, minutes=-15)]
    assert store.reminders[task.id] == []  # the completed one is disarmed


async def test_completing_from_completion_counts_from_the_moment_it_was_done(
    uow: FakeUnitOfWorkFactory, clock: FakeClock, store: FakeStore
) -> None:
    daily = Recurrence("FREQ=DAILY", "UTC", "completion")
    task = await series(uow, clock, recurrence=daily)
    clock.set(MONDAY + timedelta(days=3, hours=2))  # done on Thursday, after its time

    await SetTaskCompletion(uow, clock, RULES).execute(ADA, task.id, True)

    (successor,) = [other for other in store.tasks.values() if other.id != task.id]
    assert successor.due_at == MONDAY + timedelta(days=4)


async def test_reopening_removes_the_untouched_next_occurrence(
    uow: FakeUnitOfWorkFactory, clock: FakeClock, store: FakeStore
) -> None:
    task = await series(uow, clock)
    complete = SetTaskCompletion(uow, clock, RULES)
    await complete.execute(ADA, task.id, True)
    await complete.execute(ADA, task.id, False)
    assert list(store.tasks) == [task.id]
    assert kinds(store)[-2:] == ["task.reopened", "task.deleted"]


async def test_an_exhausted_series_ends_without_a_next_occurrence(
    uow: FakeUnitOfWorkFactory, clock: FakeClock, store: FakeStore
) -> None:
    once = Recurrence("FREQ=DAILY;COUNT=1", "UTC")
    task = await series(uow, clock, recurrence=once)
    await SetTaskCompletion(uow, clock, RULES).execute(ADA, task.id, True)
    assert list(store.tasks) == [task.id]


async def test_skip_moves_to_the_next_occurrence_and_its_reminders(
    uow: FakeUnitOfWorkFactory, clock: FakeClock, store: FakeStore
) -> None:
    friday = MONDAY + timedelta(days=4)
    task = await series(uow, clock, due_at=friday, reminders=(Reminder(before=timedelta(hours=1)),))
    skipped = await SkipOccurrence(uow, clock, RULES).execute(ADA, task.id)
    assert skipped.due_at == friday + timedelta(days=3)  # over the weekend
    assert [armed.fire_at for armed in store.reminders[task.id]] == [friday + timedelta(days=3, hours=-1)]


async def test_a_one_off_task_cannot_be_skipped(uow: FakeUnitOfWorkFactory, clock: FakeClock) -> None:
    task = (await CreateTask(uow, clock, RULES).execute(ADA, TaskDraft("Once", due_at=MONDAY))).task
    with pytest.raises(InvalidInput) as refused:
        await SkipOccurrence(uow, clock, RULES).execute(ADA, task.id)
    assert refused.value.code == "not_recurring"


async def test_moving_the_due_date_moves_the_series_and_what_is_left_of_its_count(
    uow: FakeUnitOfWorkFactory, clock: FakeClock, store: FakeStore
) -> None:
    task = await series(uow, clock, recurrence=Recurrence("FREQ=DAILY;COUNT=3", "UTC"))
    await SetTaskCompletion(uow, clock, RULES).execute(ADA, task.id, True)
    (second,) = [other for other in store.tasks.values() if other.id != task.id]
    later = MONDAY + timedelta(days=1, hours=1)  # the second occurrence, an hour later

    moved = await UpdateTask(uow, clock, RULES).execute(ADA, second.id, TaskChanges(due_at=later))

    assert moved.recurrence == Recurrence("FREQ=DAILY;COUNT=2", "UTC", "due", later)  # this one and one more
    assert RULES.next_after(moved.recurrence, later) == later + timedelta(days=1)


async def test_a_recurrence_needs_a_due_date(uow: FakeUnitOfWorkFactory, clock: FakeClock) -> None:
    with pytest.raises(InvalidInput) as refused:
        TaskDraft("No date", recurrence=WEEKDAYS)
    assert refused.value.code == "invalid_recurrence"


async def test_snoozing_re_arms_and_the_listing_shows_it(
    uow: FakeUnitOfWorkFactory, clock: FakeClock, store: FakeStore
) -> None:
    task = await series(uow, clock, reminders=(Reminder(before=timedelta(minutes=15)),))
    (armed,) = store.reminders[task.id]
    snoozed = await SnoozeReminder(uow, clock).execute(ADA, task.id, armed.id, timedelta(minutes=10))
    assert (snoozed.fire_at, snoozed.snoozed) == (clock.now() + timedelta(minutes=10), True)
    page = await ListReminders(uow).execute(ADA, clock.now(), clock.now() + timedelta(hours=1), 10)
    assert [reminder.id for reminder in page.reminders] == [armed.id]


async def test_resending_the_same_rule_keeps_the_series_as_it_is(uow: FakeUnitOfWorkFactory, clock: FakeClock) -> None:
    task = await series(uow, clock, recurrence=Recurrence("FREQ=DAILY;COUNT=3", "UTC"))
    same = await UpdateTask(uow, clock, RULES).execute(
        ADA, task.id, TaskChanges(title="Renamed", recurrence=Recurrence("freq=daily;count=3", "UTC"))
    )
    assert same.recurrence == task.recurrence


# --- the ends of the calendar: a 422 naming the field, never an overflow --------------------------

YEAR_ONE = datetime(1, 1, 1, tzinfo=UTC)
LAST_SERIES_DAY = datetime(9998, 12, 31, 12, tzinfo=UTC)


def test_a_reminder_before_a_due_date_at_the_start_of_the_calendar_is_refused_naming_reminders() -> None:
    with pytest.raises(InvalidInput) as refused:
        TaskDraft("Ancient", due_at=YEAR_ONE, reminders=(Reminder(before=timedelta(days=1)),))
    assert (refused.value.code, refused.value.field) == ("invalid_reminder", "reminders")


@pytest.mark.parametrize("due_at", [YEAR_ONE, datetime(9999, 6, 1, tzinfo=UTC)])
def test_a_recurring_task_at_either_end_of_the_calendar_is_refused_naming_due_at(due_at: datetime) -> None:
    with pytest.raises(InvalidInput) as refused:
        TaskDraft("Edge", due_at=due_at, recurrence=WEEKDAYS)
    assert (refused.value.code, refused.value.field) == ("invalid_recurrence", "due_at")


async def test_moving_a_series_to_the_start_of_the_calendar_is_refused_and_changes_nothing(
    uow: FakeUnitOfWorkFactory, clock: FakeClock, store: FakeStore
) -> None:
    task = await series(uow, clock)
    with pytest.raises(InvalidInput) as refused:
        await UpdateTask(uow, clock, RULES).execute(ADA, task.id, TaskChanges(due_at=YEAR_ONE))
    assert refused.value.field == "due_at"
    assert store.tasks[task.id] == task


async def test_completing_the_last_occurrence_the_calendar_holds_ends_the_series(
    uow: FakeUnitOfWorkFactory, clock: FakeClock, store: FakeStore
) -> None:
    yearly = Recurrence("FREQ=YEARLY", "America/New_York")  # next: 9999-12-31 07:00 local, then nothing
    task = await series(uow, clock, due_at=LAST_SERIES_DAY, recurrence=yearly)

    done = await SetTaskCompletion(uow, clock, RULES).execute(ADA, task.id, True)

    assert done.completed
    assert list(store.tasks) == [task.id]  # no successor past the years a series keeps to


async def test_skipping_past_the_years_a_series_keeps_to_is_refused_as_its_end(
    uow: FakeUnitOfWorkFactory, clock: FakeClock, store: FakeStore
) -> None:
    task = await series(uow, clock, due_at=LAST_SERIES_DAY, recurrence=Recurrence("FREQ=DAILY", "UTC"))
    with pytest.raises(InvalidInput) as refused:
        await SkipOccurrence(uow, clock, RULES).execute(ADA, task.id)
    assert refused.value.code == "series_ended"
    assert store.tasks[task.id] == task


async def test_a_recurring_subtask_completed_with_its_parent_gets_its_next_occurrence_and_is_disarmed(
    uow: FakeUnitOfWorkFactory, clock: FakeClock, store: FakeStore
) -> None:
    parent = (await CreateTask(uow, clock, RULES).execute(ADA, TaskDraft("Weekly review"))).task
    subtask = await series(uow, clock, parent_id=parent.id, reminders=(Reminder(before=timedelta(minutes=15)),))

    await SetTaskCompletion(uow, clock, RULES).execute(ADA, parent.id, True)

    (successor,) = [task for task in store.tasks.values() if task.id not in (parent.id, subtask.id)]
    assert (successor.previous_id, successor.parent_id, successor.completed) == (subtask.id, parent.id, False)
    assert store.reminders[subtask.id] == []
    assert [armed.task_id for armed in store.reminders[successor.id]] == [successor.id]
    assert kinds(store)[-3:] == ["task.completed", "task.created", "task.completed"]  # the parent's write last


async def test_a_reminder_at_an_offset_is_shown_in_utc_in_the_feeds_data_as_in_a_row(
    uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    at = datetime(2027, 5, 1, 19, tzinfo=timezone(timedelta(hours=2)))
    task = (await CreateTask(uow, clock, RULES).execute(ADA, TaskDraft("Call", reminders=(Reminder(at=at),)))).task
    assert event_data(task)["reminders"] == [{"at": "2027-05-01T17:00:00Z"}]
