"""What an SPA builds first, over HTTP on PostgreSQL: the summary, the tags, complete all and
clear completed (restorable, one event per task)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from tests.integration.tasks_support import User, assert_problem, create_task, sign_up, task_url, tasks_url


@pytest.fixture
async def user(client: httpx.AsyncClient) -> User:
    return await sign_up(client)


async def summary(client: httpx.AsyncClient, user: User, **params: str) -> dict[str, Any]:
    response = await client.get("/api/me/summary", params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def feed(client: httpx.AsyncClient, user: User, since: str) -> list[tuple[str, str]]:
    response = await client.get("/api/me/changes", params={"since": since, "limit": 500}, headers=user.headers)
    assert response.status_code == 200, response.text
    return [(event["type"], event["subject"]) for event in response.json()["data"]]


async def sync_token(client: httpx.AsyncClient, user: User) -> str:
    response = await client.get("/api/me/changes", headers=user.headers)
    token: str = response.json()["meta"]["sync_token"]
    return token


def zero(**counts: int) -> dict[str, int]:
    return {"open": 0, "completed": 0, "overdue": 0, "due_today": 0, **counts}


async def test_the_summary_counts_open_completed_overdue_and_due_today_in_all_per_priority_and_per_list(
    client: httpx.AsyncClient, user: User
) -> None:
    h = user.headers
    work = (await client.post("/api/me/lists", json={"name": "Work"}, headers=h)).json()
    empty = (await client.post("/api/me/lists", json={"name": "Someday"}, headers=h)).json()
    now = datetime.now(UTC)
    await create_task(client, user, title="Late", priority="high", due_at=(now - timedelta(days=2)).isoformat())
    await create_task(client, user, title="Soon", list_id=work["id"], due_at=(now + timedelta(days=5)).isoformat())
    done = await create_task(client, user, title="Done", list_id=work["id"], priority="high")
    assert (await client.patch(task_url(done["id"]), json={"completed": True}, headers=h)).status_code == 200

    body = await summary(client, user, tz="UTC")

    assert body["all"] == zero(open=2, completed=1, overdue=1)
    assert body["by_priority"] == {
        "none": zero(open=1),
        "low": zero(),
        "medium": zero(),
        "high": zero(open=1, completed=1, overdue=1),
    }
    inbox_id = next(x["id"] for x in (await client.get("/api/me/lists", headers=h)).json()["data"] if x["is_inbox"])
    assert [(x["list_id"], x["open"], x["completed"], x["overdue"]) for x in body["by_list"]] == [
        (inbox_id, 1, 0, 1),
        (work["id"], 1, 1, 0),
        (empty["id"], 0, 0, 0),  # every list, in the person's order, zeros included
    ]
    assert body["time_zone"] == "UTC"


async def test_due_today_is_the_day_in_the_callers_time_zone(client: httpx.AsyncClient, user: User) -> None:
    # A task due at the start of the next hour: in a zone where that hour starts a new day it is
    # due tomorrow, where it does not it is due today. Choose two zones that disagree about it.
    now = datetime.now(UTC)
    due = (now + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    await create_task(client, user, title="At the top of the hour", due_at=due.isoformat())
    zones = ["UTC", "Asia/Tokyo", "America/New_York", "Asia/Kolkata", "Pacific/Kiritimati", "Pacific/Pago_Pago"]
    same_day = {zone: now.astimezone(ZoneInfo(zone)).date() == due.astimezone(ZoneInfo(zone)).date() for zone in zones}

    for zone, today in same_day.items():
        body = await summary(client, user, tz=zone)
        assert body["all"]["due_today"] == int(today), zone
        assert body["time_zone"] == zone
        assert datetime.fromisoformat(body["today_starts_at"]) <= now < datetime.fromisoformat(body["today_ends_at"])


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", "Europe/Paris\u0000", "x" * 65])
async def test_an_unknown_time_zone_is_a_422(client: httpx.AsyncClient, user: User, zone: str) -> None:
    body = assert_problem(await client.get("/api/me/summary", params={"tz": zone}, headers=user.headers), 422)
    assert body["code"] in ("unknown_time_zone", "validation_failed")


async def test_an_unknown_iana_name_is_unknown_time_zone(client: httpx.AsyncClient, user: User) -> None:
    response = await client.get("/api/me/summary", params={"tz": "Mars/Olympus_Mons"}, headers=user.headers)
    problem = assert_problem(response, 422, "unknown_time_zone")
    assert [error["loc"] for error in problem["errors"]] == [["query", "tz"]]


async def test_tags_come_by_name_with_their_open_and_total_counts(client: httpx.AsyncClient, user: User) -> None:
    await create_task(client, user, tags=["work", "urgent"])
    await create_task(client, user, tags=["Work"])
    done = await create_task(client, user, tags=["home", "work"])
    assert (await client.patch(task_url(done["id"]), json={"completed": True}, headers=user.headers)).status_code == 200
    someone_else = await sign_up(client)
    await create_task(client, someone_else, tags=["work", "secret"])

    response = await client.get("/api/me/tags", headers=user.headers)

    assert response.status_code == 200, response.text
    assert response.json()["data"] == [
        {"tag": "home", "open": 0, "total": 1},
        {"tag": "urgent", "open": 1, "total": 1},
        {"tag": "work", "open": 2, "total": 3},
    ]


async def test_complete_all_completes_the_open_tasks_of_a_list_with_their_subtasks_one_event_each(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    h = user.headers
    work = (await client.post("/api/me/lists", json={"name": "Work"}, headers=h)).json()
    parent = await create_task(client, user, title="Parent", list_id=work["id"])
    child = await create_task(client, user, title="Child", parent_id=parent["id"])
    already = await create_task(client, user, title="Already", list_id=work["id"], completed=True)
    elsewhere = await create_task(client, user, title="In the Inbox")
    since = await sync_token(client, user)

    response = await client.post(f"{tasks_url()}/complete-all", params={"list_id": work["id"]}, headers=h)

    assert response.status_code == 200, response.text
    assert response.json() == {"count": 2, "task_ids": [parent["id"], child["id"]]}
    rows = {r["id"]: (r["completed"], r["version"]) for r in await db.fetch("SELECT id, completed, version FROM tasks")}
    assert rows == {
        parent["id"]: (True, 2),
        child["id"]: (True, 2),
        already["id"]: (True, 1),
        elsewhere["id"]: (False, 1),
    }
    assert sorted(await feed(client, user, since)) == [
        ("task.completed", f"tasks/{parent['id']}"),
        ("task.completed", f"tasks/{child['id']}"),
    ]
    again = await client.post(f"{tasks_url()}/complete-all", params={"list_id": work["id"]}, headers=h)
    assert again.json() == {"count": 0, "task_ids": []}


async def test_complete_all_without_a_scope_completes_every_open_task_and_a_tag_narrows_it(
    client: httpx.AsyncClient, user: User
) -> None:
    tagged = await create_task(client, user, tags=["errand"])
    await create_task(client, user)
    narrowed = await client.post(f"{tasks_url()}/complete-all", params={"tag": "Errand"}, headers=user.headers)
    assert narrowed.json() == {"count": 1, "task_ids": [tagged["id"]]}
    everything = await client.post(f"{tasks_url()}/complete-all", headers=user.headers)
    assert everything.json()["count"] == 1
    assert (await summary(client, user))["all"]["open"] == 0


async def test_clear_completed_moves_them_to_the_trash_restorably_with_one_tombstone_each(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    h = user.headers
    done = await create_task(client, user, title="Done", completed=True)
    open_child = await create_task(client, user, title="Open child of a done parent", parent_id=done["id"])
    done_child = await create_task(
        client,
        user,
        title="Done child of an open parent",
        parent_id=(await create_task(client, user, title="Open"))["id"],
        completed=True,
    )
    since = await sync_token(client, user)

    response = await client.delete(tasks_url(), params={"status": "completed"}, headers=h)

    assert response.status_code == 200, response.text
    assert response.json() == {"count": 3, "task_ids": sorted([done["id"], open_child["id"], done_child["id"]])}
    assert await db.fetchval("SELECT count(*) FROM tasks") == 1
    assert sorted(await feed(client, user, since)) == sorted(
        ("task.deleted", f"tasks/{task['id']}") for task in (done, open_child, done_child)
    )
    trash = (await client.get(tasks_url(), params={"deleted": "true"}, headers=h)).json()["data"]
    assert {task["id"] for task in trash} == {done["id"], done_child["id"]}  # the open child comes back with its parent
    restored = await client.post(f"{task_url(done['id'])}/restore", headers=h)
    assert restored.status_code == 200, restored.text
    assert (await client.get(task_url(open_child["id"]), headers=h)).status_code == 200


async def test_clearing_needs_status_completed_so_no_request_empties_the_tasks(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    await create_task(client, user, completed=True)
    for params in ({}, {"status": "all"}, {"status": "pending"}):
        assert_problem(await client.delete(tasks_url(), params=params, headers=user.headers), 422)
    assert await db.fetchval("SELECT count(*) FROM tasks") == 1


async def test_clear_completed_scoped_to_a_list_leaves_the_others(client: httpx.AsyncClient, user: User) -> None:
    h = user.headers
    work = (await client.post("/api/me/lists", json={"name": "Work"}, headers=h)).json()
    in_work = await create_task(client, user, list_id=work["id"], completed=True)
    await create_task(client, user, completed=True)
    response = await client.delete(tasks_url(), params={"status": "completed", "list_id": work["id"]}, headers=h)
    assert response.json() == {"count": 1, "task_ids": [in_work["id"]]}


async def test_another_persons_tasks_are_neither_counted_nor_changed(client: httpx.AsyncClient, user: User) -> None:
    other = await sign_up(client)
    await create_task(client, other, completed=True)
    await create_task(client, other)
    assert (await client.post(f"{tasks_url()}/complete-all", headers=user.headers)).json()["count"] == 0
    cleared = await client.delete(tasks_url(), params={"status": "completed"}, headers=user.headers)
    assert cleared.json()["count"] == 0
    assert (await summary(client, user))["all"] == zero()
    assert (await summary(client, other))["all"] == zero(open=1, completed=1)


async def test_complete_all_over_a_thousand_tasks_is_too_many_tasks_and_completes_none(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    task = await create_task(client, user, title="Chore")
    await db.execute(  # 1,000 copies: quicker than as many requests
        "INSERT INTO tasks (user_id, list_id, position, title)"
        " SELECT user_id, list_id, position, title || g FROM tasks, generate_series(1, 1000) g WHERE id = $1",
        task["id"],
    )

    response = await client.post(f"{tasks_url()}/complete-all", headers=user.headers)

    assert_problem(response, 422, "too_many_tasks")
    assert await db.fetchval("SELECT count(*) FROM tasks WHERE completed") == 0
    narrowed = await client.post(f"{tasks_url()}/complete-all", params={"tag": "none"}, headers=user.headers)
    assert narrowed.json()["count"] == 0
