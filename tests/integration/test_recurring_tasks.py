"""Recurring tasks and reminders over HTTP on a real PostgreSQL: the series, its successors under
concurrency, skip, reopen, and the reminders' schedule as `GET /reminders` shows it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.tasks_support import User, assert_problem, create_task, sign_up, task_url, tasks_url

WEEKDAYS = {"rule": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "timezone": "Europe/Berlin", "from": "due"}
FUTURE = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)


def z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
async def user(client: httpx.AsyncClient) -> User:
    return await sign_up(client)


async def tasks_of(client: httpx.AsyncClient, user: User, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(tasks_url(), params={"limit": 100, **params}, headers=user.headers)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["data"]
    return found


async def feed_position(client: httpx.AsyncClient, user: User) -> str:
    response = await client.get("/api/me/changes", headers=user.headers)
    token: str = response.json()["meta"]["sync_token"]
    return token


async def events_since(client: httpx.AsyncClient, user: User, since: str) -> list[dict[str, Any]]:
    response = await client.get("/api/me/changes", params={"since": since}, headers=user.headers)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["data"]
    return events


async def test_a_rule_is_echoed_normalised_and_the_series_is_named(client: httpx.AsyncClient, user: User) -> None:
    sent = {"rule": "rrule:byday=-1fr;freq=monthly;interval=1", "timezone": "Europe/London"}
    task = await create_task(client, user, title="Invoices", due_at="2027-01-29T17:00:00Z", recurrence=sent)
    assert task["recurrence"] == {"rule": "FREQ=MONTHLY;BYDAY=-1FR", "timezone": "Europe/London", "from": "due"}
    assert task["series_id"] == task["id"]
    assert (await client.get(task_url(task["id"]), headers=user.headers)).json()["recurrence"] == task["recurrence"]


RULE, ZONE = ["body", "recurrence", "rule"], ["body", "recurrence", "timezone"]


@pytest.mark.parametrize(
    ("body", "code", "names", "loc"),
    [
        ({"recurrence": WEEKDAYS}, "invalid_recurrence", "due_at", ["body", "due_at"]),
        ({"due_at": "2027-01-01T09:00:00Z", "recurrence": {**WEEKDAYS, "rule": "FREQ=HOURLY"}}, None, "FREQ", RULE),
        (
            {"due_at": "2027-01-01T09:00:00Z", "recurrence": {**WEEKDAYS, "rule": "FREQ=DAILY;BYHOUR=9"}},
            None,
            "BYHOUR",
            RULE,
        ),
        (
            {"due_at": "2027-01-01T09:00:00Z", "recurrence": {**WEEKDAYS, "timezone": "Mars/Base"}},
            None,
            "Mars/Base",
            ZONE,
        ),
        ({"reminders": [{"before": "PT15M"}]}, "invalid_reminder", "due_at", ["body", "due_at"]),
        (
            {"due_at": "2027-01-01T09:00:00Z", "reminders": [{"before": "PT1M"}] * 6},
            None,
            None,
            ["body", "reminders"],
        ),
    ],
)
async def test_a_bad_rule_or_reminder_is_a_422_naming_what_is_wrong_and_where(
    client: httpx.AsyncClient,
    user: User,
    body: dict[str, Any],
    code: str | None,
    names: str | None,
    loc: list[str],
) -> None:
    """The field error's `loc` points at the input at fault, as the schema's own errors do, so a
    form shows the message beside the rule, the time zone or the due date."""
    response = await client.post(tasks_url(), json={"title": "x", **body}, headers=user.headers)
    problem = assert_problem(response, 422, code)
    if names is not None:
        assert names in problem["detail"]
    if code is None and names is not None:
        assert problem["code"] == "invalid_recurrence"
    assert field_of(problem) == loc


async def test_editing_a_series_to_a_bad_rule_or_zone_is_a_422_at_that_field(
    client: httpx.AsyncClient, user: User
) -> None:
    task = await create_task(client, user, due_at="2027-01-01T09:00:00Z", recurrence=WEEKDAYS)
    for recurrence, loc in (
        ({**WEEKDAYS, "rule": "FREQ=SECONDLY"}, RULE),
        ({**WEEKDAYS, "timezone": "Mars/Base"}, ZONE),
    ):
        response = await client.patch(task_url(task["id"]), json={"recurrence": recurrence}, headers=user.headers)
        assert field_of(assert_problem(response, 422, "invalid_recurrence")) == loc
    assert (await client.get(task_url(task["id"]), headers=user.headers)).json() == task


async def test_twenty_concurrent_completions_create_exactly_one_next_occurrence(
    client: httpx.AsyncClient, user: User
) -> None:
    task = await create_task(client, user, title="Stand-up", due_at="2027-03-26T08:30:00Z", recurrence=WEEKDAYS)
    since = await feed_position(client, user)

    responses = await asyncio.gather(
        *(
            client.patch(task_url(task["id"]) + "/complete", json={"completed": True}, headers=user.headers)
            for _ in range(20)
        )
    )

    assert {response.status_code for response in responses} == {200}
    series = await tasks_of(client, user, recurring="true")
    assert len(series) == 2
    successor = next(item for item in series if item["id"] != task["id"])
    assert successor["due_at"] == "2027-03-29T07:30:00Z"  # Monday 09:30 Berlin, summer time by then
    assert (successor["series_id"], successor["previous_id"], successor["completed"]) == (task["id"], task["id"], False)
    assert successor["recurrence"] == task["recurrence"]
    events = await events_since(client, user, since)
    assert [(event["type"], event["subject"]) for event in events] == [
        ("task.completed", f"tasks/{task['id']}"),
        ("task.created", f"tasks/{successor['id']}"),
    ]


async def test_a_daily_series_keeps_its_wall_clock_time_through_the_gap(client: httpx.AsyncClient, user: User) -> None:
    daily = {"rule": "FREQ=DAILY", "timezone": "Europe/Berlin"}
    task = await create_task(client, user, title="Plants", due_at="2027-03-27T01:30:00Z", recurrence=daily)  # 02:30
    dues = []
    current = task
    for _ in range(2):
        await client.patch(task_url(current["id"]) + "/complete", json={"completed": True}, headers=user.headers)
        current = next(item for item in await tasks_of(client, user, status="pending"))
        dues.append(current["due_at"])
    assert dues == ["2027-03-28T01:30:00Z", "2027-03-29T00:30:00Z"]  # 03:30 CEST in the gap, then 02:30 CEST


async def test_reopening_removes_an_untouched_successor_and_keeps_an_edited_one(
    client: httpx.AsyncClient, user: User
) -> None:
    task = await create_task(client, user, title="Rent", due_at="2027-01-01T09:00:00Z", recurrence=WEEKDAYS)
    complete, reopen = {"completed": True}, {"completed": False}
    await client.patch(task_url(task["id"]) + "/complete", json=complete, headers=user.headers)
    await client.patch(task_url(task["id"]) + "/complete", json=reopen, headers=user.headers)
    assert [item["id"] for item in await tasks_of(client, user)] == [task["id"]]

    await client.patch(task_url(task["id"]) + "/complete", json=complete, headers=user.headers)
    successor = next(item for item in await tasks_of(client, user) if item["id"] != task["id"])
    await client.patch(task_url(successor["id"]), json={"title": "Rent (moved)"}, headers=user.headers)
    await client.patch(task_url(task["id"]) + "/complete", json=reopen, headers=user.headers)
    await client.patch(task_url(task["id"]) + "/complete", json=complete, headers=user.headers)  # no second one

    assert sorted(item["id"] for item in await tasks_of(client, user)) == [task["id"], successor["id"]]


async def test_count_exhausted_series_creates_nothing_more(client: httpx.AsyncClient, user: User) -> None:
    twice = {"rule": "FREQ=DAILY;COUNT=2", "timezone": "UTC"}
    first = await create_task(client, user, due_at="2027-01-01T09:00:00Z", recurrence=twice)
    await client.patch(task_url(first["id"]) + "/complete", json={"completed": True}, headers=user.headers)
    second = next(item for item in await tasks_of(client, user, status="pending"))
    await client.patch(task_url(second["id"]) + "/complete", json={"completed": True}, headers=user.headers)
    assert await tasks_of(client, user, status="pending") == []
    assert_problem(await client.post(task_url(second["id"]) + "/skip", headers=user.headers), 422, "task_completed")


async def test_skip_moves_to_the_next_occurrence_without_completing(client: httpx.AsyncClient, user: User) -> None:
    task = await create_task(client, user, due_at="2027-01-29T09:00:00Z", recurrence=WEEKDAYS)  # a Friday
    response = await client.post(task_url(task["id"]) + "/skip", headers=user.headers)
    assert response.status_code == 200, response.text
    assert (response.json()["due_at"], response.json()["completed"]) == ("2027-02-01T09:00:00Z", False)
    assert len(await tasks_of(client, user)) == 1
    plain = await create_task(client, user, due_at="2027-01-29T09:00:00Z")
    assert_problem(await client.post(task_url(plain["id"]) + "/skip", headers=user.headers), 422, "not_recurring")


async def test_null_recurrence_stops_the_series_and_the_filter_follows(client: httpx.AsyncClient, user: User) -> None:
    task = await create_task(client, user, due_at="2027-01-29T09:00:00Z", recurrence=WEEKDAYS)
    await create_task(client, user, title="Once")
    assert [item["id"] for item in await tasks_of(client, user, recurring="true")] == [task["id"]]
    response = await client.patch(task_url(task["id"]), json={"recurrence": None}, headers=user.headers)
    assert response.json()["recurrence"] is None
    await client.patch(task_url(task["id"]) + "/complete", json={"completed": True}, headers=user.headers)
    assert await tasks_of(client, user, recurring="true") == []
    assert len(await tasks_of(client, user, recurring="false")) == 2


async def test_bulk_completion_creates_the_next_occurrence(client: httpx.AsyncClient, user: User) -> None:
    task = await create_task(client, user, due_at="2027-01-29T09:00:00Z", recurrence=WEEKDAYS)
    response = await client.post(
        tasks_url() + "/bulk", json={"operations": [{"op": "complete", "task_ids": [task["id"]]}]}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    pending = await tasks_of(client, user, status="pending")
    assert [(item["due_at"], item["previous_id"]) for item in pending] == [("2027-02-01T09:00:00Z", task["id"])]


SERIES_SQL = (
    "SELECT due_at, recurrence_rule, recurrence_timezone, recurrence_from, recurrence_start FROM tasks WHERE id = $1"
)


async def test_a_bulk_due_date_change_moves_the_series_as_a_single_edit_does(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    bulked, edited = [await create_task(client, user, due_at="2027-01-29T09:00:00Z", recurrence=WEEKDAYS) for _ in "ab"]
    started = await db.fetchval("SELECT recurrence_start FROM tasks WHERE id = $1", bulked["id"])
    later = {"due_at": "2027-02-03T15:30:00Z"}
    operations = [{"op": "update", "task_ids": [bulked["id"]], **later}]
    response = await client.post(tasks_url() + "/bulk", json={"operations": operations}, headers=user.headers)
    assert response.status_code == 200, response.text
    assert (await client.patch(task_url(edited["id"]), json=later, headers=user.headers)).status_code == 200
    moved = await db.fetchrow(SERIES_SQL, bulked["id"])
    assert moved == await db.fetchrow(SERIES_SQL, edited["id"])
    assert moved is not None
    assert moved["recurrence_start"] != started  # the series starts over at the new due date


async def reminders_of(client: httpx.AsyncClient, user: User, **params: Any) -> list[dict[str, Any]]:
    window = {"from": z(FUTURE - timedelta(days=10)), "to": z(FUTURE + timedelta(days=10)), **params}
    response = await client.get("/api/me/reminders", params=window, headers=user.headers)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["data"]
    return found


async def test_reminders_follow_the_due_date_and_completion_disarms_them(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    at = FUTURE - timedelta(days=2)
    task = await create_task(
        client, user, due_at=z(FUTURE), reminders=[{"before": "PT15M"}, {"at": z(at)}, {"at": "2020-01-01T00:00:00Z"}]
    )
    assert task["reminders"] == [{"before": "PT15M"}, {"at": z(at)}, {"at": "2020-01-01T00:00:00Z"}]
    listed = await reminders_of(client, user)
    assert [(item["fire_at"], item["index"]) for item in listed] == [(z(at), 1), (z(FUTURE - timedelta(minutes=15)), 0)]

    later = FUTURE + timedelta(days=1)
    await client.patch(task_url(task["id"]), json={"due_at": z(later)}, headers=user.headers)
    assert [item["fire_at"] for item in await reminders_of(client, user)] == [
        z(at),
        z(later - timedelta(minutes=15)),
    ]

    await client.patch(task_url(task["id"]) + "/complete", json={"completed": True}, headers=user.headers)
    assert await reminders_of(client, user) == []
    assert await db.fetchval("SELECT count(*) FROM reminders WHERE fired_at IS NULL") == 0


async def test_snoozing_re_arms_one_reminder(client: httpx.AsyncClient, user: User) -> None:
    task = await create_task(client, user, due_at=z(FUTURE), reminders=[{"before": "PT15M"}])
    (reminder,) = await reminders_of(client, user)
    url = f"{task_url(task['id'])}/reminders/{reminder['id']}/snooze"
    response = await client.post(url, json={"duration": "PT10M"}, headers=user.headers)
    assert response.status_code == 200, response.text
    assert response.json()["snoozed"] is True
    fire_at = datetime.fromisoformat(response.json()["fire_at"])
    assert timedelta(minutes=9) < fire_at - datetime.now(UTC) <= timedelta(minutes=10)
    assert_problem(await client.post(url, json={"duration": "P1M"}, headers=user.headers), 422)
    missing = f"{task_url(task['id'])}/reminders/{reminder['id'] + 999}/snooze"
    assert_problem(
        await client.post(missing, json={"duration": "PT10M"}, headers=user.headers), 404, "reminder_not_found"
    )


async def test_reminders_page_by_time_with_a_cursor(client: httpx.AsyncClient, user: User) -> None:
    for hours in range(5):
        await create_task(client, user, reminders=[{"at": z(FUTURE + timedelta(hours=hours))}])
    window: dict[str, str | int] = {
        "from": z(FUTURE - timedelta(days=1)),
        "to": z(FUTURE + timedelta(days=1)),
        "limit": 3,
    }
    first = await client.get("/api/me/reminders", params=window, headers=user.headers)
    cursor = first.json()["meta"]["next_cursor"]
    assert cursor
    assert 'rel="next"' in first.headers["Link"]
    second = await client.get(
        "/api/me/reminders",
        params={
            "from": z(FUTURE - timedelta(days=1)),
            "to": z(FUTURE + timedelta(days=1)),
            "limit": 3,
            "cursor": cursor,
        },
        headers=user.headers,
    )
    times = [item["fire_at"] for item in first.json()["data"] + second.json()["data"]]
    assert times == [z(FUTURE + timedelta(hours=hours)) for hours in range(5)]
    assert second.json()["meta"]["next_cursor"] is None


async def test_a_successor_carries_the_reminders_armed_for_its_own_due_date(
    client: httpx.AsyncClient, user: User
) -> None:
    daily = {"rule": "FREQ=DAILY", "timezone": "UTC"}
    task = await create_task(client, user, due_at=z(FUTURE), recurrence=daily, reminders=[{"before": "PT1H"}])
    await client.patch(task_url(task["id"]) + "/complete", json={"completed": True}, headers=user.headers)
    (armed,) = await reminders_of(client, user)
    assert armed["fire_at"] == z(FUTURE + timedelta(days=1) - timedelta(hours=1))
    assert armed["task_id"] != task["id"]


async def test_deleting_disarms_and_restoring_re_arms(client: httpx.AsyncClient, user: User) -> None:
    task = await create_task(client, user, due_at=z(FUTURE), reminders=[{"before": "PT15M"}])
    await client.delete(task_url(task["id"]), headers=user.headers)
    assert await reminders_of(client, user) == []
    restored = await client.post(task_url(task["id"]) + "/restore", headers=user.headers)
    assert restored.status_code == 200, restored.text
    assert [item["fire_at"] for item in await reminders_of(client, user)] == [z(FUTURE - timedelta(minutes=15))]


async def test_complete_all_creates_each_series_next_occurrence_and_disarms(
    client: httpx.AsyncClient, user: User
) -> None:
    task = await create_task(client, user, due_at=z(FUTURE), recurrence=WEEKDAYS, reminders=[{"before": "PT15M"}])
    await create_task(client, user, title="Once")
    response = await client.post(f"{tasks_url()}/complete-all", headers=user.headers)
    assert response.status_code == 200, response.text
    (successor,) = await tasks_of(client, user, status="pending")
    assert (successor["previous_id"], successor["recurrence"]) == (task["id"], task["recurrence"])
    assert [item["task_id"] for item in await reminders_of(client, user)] == [successor["id"]]


# --- the ends of the calendar: a 422 naming the field, nothing written, never a 500 ----------------

YEAR_ONE = "0001-01-01T00:00:00Z"
LAST_SERIES_DAY = "9998-12-31T12:00:00Z"


def field_of(problem: dict[str, Any]) -> list[str | int]:
    (error,) = problem["errors"]
    loc: list[str | int] = error["loc"]
    return loc


@pytest.mark.parametrize(
    ("body", "code", "loc"),
    [
        ({"due_at": YEAR_ONE, "reminders": [{"before": "P1D"}]}, "invalid_reminder", ["body", "reminders"]),
        ({"reminders": [{"at": "9999-12-31T23:00:00-05:00"}]}, "invalid_reminder", ["body", "reminders"]),
        ({"due_at": YEAR_ONE, "recurrence": WEEKDAYS}, "invalid_recurrence", ["body", "due_at"]),
        ({"due_at": "9999-06-01T09:00:00Z", "recurrence": WEEKDAYS}, "invalid_recurrence", ["body", "due_at"]),
    ],
)
async def test_creating_at_the_ends_of_the_calendar_is_a_422_naming_the_field_and_stores_nothing(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection, body: dict[str, Any], code: str, loc: list[str]
) -> None:
    response = await client.post(tasks_url(), json={"title": "Edge", **body}, headers=user.headers)
    assert field_of(assert_problem(response, 422, code)) == loc
    assert await db.fetchval("SELECT count(*) FROM tasks") == 0
    assert await db.fetchval("SELECT count(*) FROM reminders") == 0


async def test_moving_a_series_or_its_reminders_to_year_one_is_a_422_and_changes_nothing(
    client: httpx.AsyncClient, user: User
) -> None:
    task = await create_task(client, user, due_at=z(FUTURE), recurrence=WEEKDAYS, reminders=[{"before": "P1D"}])
    url = task_url(task["id"])

    patched = await client.patch(url, json={"due_at": YEAR_ONE}, headers=user.headers)
    assert field_of(assert_problem(patched, 422, "invalid_recurrence")) == ["body", "due_at"]
    put = {"title": "Edge", "due_at": YEAR_ONE, "reminders": [{"before": "P1D"}]}  # no recurrence: the reminder
    assert field_of(assert_problem(await client.put(url, json=put, headers=user.headers), 422)) == [
        "body",
        "reminders",
    ]

    assert (await client.get(url, headers=user.headers)).json() == task
    assert [item["task_id"] for item in await reminders_of(client, user)] == [task["id"]]


async def test_completing_the_last_occurrence_the_calendar_keeps_ends_the_series(
    client: httpx.AsyncClient, user: User
) -> None:
    yearly = {"rule": "FREQ=YEARLY", "timezone": "America/New_York"}
    task = await create_task(client, user, due_at=LAST_SERIES_DAY, recurrence=yearly)

    response = await client.patch(task_url(task["id"]) + "/complete", json={"completed": True}, headers=user.headers)

    assert response.status_code == 200, response.text
    assert response.json()["completed"] is True
    assert [item["id"] for item in await tasks_of(client, user)] == [task["id"]]  # no occurrence in year 9999


async def test_skipping_past_the_years_a_series_keeps_is_a_422_and_changes_nothing(
    client: httpx.AsyncClient, user: User
) -> None:
    task = await create_task(client, user, due_at=LAST_SERIES_DAY, recurrence={"rule": "FREQ=DAILY", "timezone": "UTC"})
    assert_problem(await client.post(task_url(task["id"]) + "/skip", headers=user.headers), 422, "series_ended")
    assert (await client.get(task_url(task["id"]), headers=user.headers)).json() == task


# --- a recurring subtask completed with its parent: the same on every path -------------------------


async def complete_parent(client: httpx.AsyncClient, user: User, path: str, parent_id: int) -> None:
    if path == "complete":
        url = task_url(parent_id) + "/complete"
        response = await client.patch(url, json={"completed": True}, headers=user.headers)
    elif path == "bulk":
        bulk = {"operations": [{"op": "complete", "task_ids": [parent_id]}]}
        response = await client.post(tasks_url() + "/bulk", json=bulk, headers=user.headers)
    else:
        response = await client.post(tasks_url() + "/complete-all", headers=user.headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["complete", "bulk", "complete-all"])
async def test_a_recurring_subtask_completed_with_its_parent_rolls_over_and_disarms_on_every_path(
    client: httpx.AsyncClient, user: User, path: str
) -> None:
    parent = await create_task(client, user, title="Weekly review")
    subtask = await create_task(
        client,
        user,
        title="Water the plants",
        parent_id=parent["id"],
        due_at=z(FUTURE),
        recurrence={"rule": "FREQ=DAILY", "timezone": "UTC"},
        reminders=[{"before": "PT15M"}],
    )
    since = await feed_position(client, user)

    await complete_parent(client, user, path, parent["id"])

    (successor,) = await tasks_of(client, user, status="pending")
    assert (successor["previous_id"], successor["parent_id"], successor["due_at"]) == (
        subtask["id"],
        parent["id"],
        z(FUTURE + timedelta(days=1)),
    )
    assert (await client.get(task_url(subtask["id"]), headers=user.headers)).json()["completed"] is True
    assert [item["task_id"] for item in await reminders_of(client, user)] == [successor["id"]]  # the old one disarmed
    events = await events_since(client, user, since)
    assert sorted((event["type"], event["subject"]) for event in events) == sorted(
        [
            ("task.completed", f"tasks/{parent['id']}"),
            ("task.completed", f"tasks/{subtask['id']}"),
            ("task.created", f"tasks/{successor['id']}"),
        ]
    )
