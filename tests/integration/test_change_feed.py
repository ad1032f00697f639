"""The change feed over HTTP on PostgreSQL: every write leaves its events in its own transaction,
numbered per person in commit order, readable with `GET .../changes` from a sync token."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.conftest import make_settings
from tests.integration.tasks_support import User, assert_problem, create_task, sign_up, task_url, tasks_url
from todo_api.adapters.calendar.rrule import RruleRecurrences
from todo_api.adapters.http.schemas import event_data
from todo_api.adapters.sql.engine import ConnectionPool
from todo_api.adapters.sql.unit_of_work import SqlUnitsOfWork
from todo_api.domain.changes import Change
from todo_api.domain.tasks import TaskDraft
from todo_api.main import SystemClock, pool_options
from todo_api.use_cases.changes import changes_after
from todo_api.use_cases.tasks import CreateTask

RULES = RruleRecurrences()


@pytest.fixture
async def user(client: httpx.AsyncClient) -> User:
    return await sign_up(client)


def changes_url(user: User | str = "me") -> str:
    return f"/api/{user.id if isinstance(user, User) else user}/changes"


async def changes(client: httpx.AsyncClient, user: User, since: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    response = await client.get(changes_url(), params={"since": since, "limit": 500}, headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    return body["data"], body["meta"]


async def token_now(client: httpx.AsyncClient, user: User) -> str:
    response = await client.get(changes_url(), headers=user.headers)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == []
    token: str = response.json()["meta"]["sync_token"]
    return token


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(event["type"], event["subject"]) for event in events]


async def test_an_event_is_a_cloud_event_whose_data_is_the_task_as_the_api_returns_it(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    since = await token_now(client, user)
    task = await create_task(client, user, title="Water the plants", tags=["home"], priority="high")
    events, meta = await changes(client, user, since)
    assert kinds(events) == [("task.created", f"tasks/{task['id']}")]
    event = events[0]
    assert event["specversion"] == "1.0"
    assert event["source"] == f"/api/{user.id}"
    assert event["datacontenttype"] == "application/json"
    assert event["position"] == int(since) + 1 == int(meta["sync_token"])
    assert event["data"] == (await client.get(task_url(task["id"]), headers=user.headers)).json()
    # The Debezium Outbox Event Router layout: aggregate type and id, type, payload (the CloudEvent).
    row = await db.fetchrow("SELECT * FROM events WHERE user_id = $1 AND position = $2", user.id, event["position"])
    assert row is not None
    assert (row["aggregate_type"], row["aggregate_id"], row["type"], str(row["id"])) == (
        "task",
        str(task["id"]),
        "task.created",
        event["id"],
    )
    assert json.loads(row["payload"]) == event  # the stored payload is the whole CloudEvent, position included


async def test_a_bulk_changes_events_are_the_tasks_as_get_returns_them(client: httpx.AsyncClient, user: User) -> None:
    """A bulk change builds its tasks' events from what it sent, not from rows read back: with a
    due date given at an offset, each event must still be exactly what GET returns (UTC, versions)."""
    h = user.headers
    first, second = [await create_task(client, user, title=title) for title in ("One", "Two")]
    since = await token_now(client, user)
    ids = [first["id"], second["id"]]
    operation = {"op": "update", "task_ids": ids, "due_at": "2027-03-28T02:30:00+01:00", "add_tags": ["x"]}
    bulk = await client.post(f"{tasks_url()}/bulk", json={"operations": [operation]}, headers=h)
    assert bulk.status_code == 200, bulk.text
    events, _ = await changes(client, user, since)
    assert kinds(events) == [("task.updated", f"tasks/{task_id}") for task_id in ids]
    for event, task_id in zip(events, ids, strict=True):
        assert event["data"] == (await client.get(task_url(task_id), headers=h)).json()
        assert event["data"]["due_at"] == "2027-03-28T01:30:00Z"


async def test_the_stored_payload_is_the_event_served_whatever_the_title_holds(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    """A write's own statement splices the position into the payload's JSON text (a create's event
    learns its id there too, by a text replace), a bulk change copies its events in: either way
    every stored payload is one valid JSON object, equal to what the feed serves, with titles that
    JSON escapes and that spell the members a create's event leaves its id in."""
    h = user.headers
    since = await token_now(client, user)
    awkward = 'say "hi" \\ {a,b} \u2028 café ✓ 日本 "subject":"tasks/0" "data":{"id":0,'
    task = await create_task(client, user, title=awkward, tags=["{x}", 'q"t'])
    edited = await client.patch(task_url(task["id"]), json={"description": awkward + "\n"}, headers=h)
    assert edited.status_code == 200, edited.text
    bulk = await client.post(
        f"{tasks_url()}/bulk", json={"operations": [{"op": "complete", "task_ids": [task["id"]]}]}, headers=h
    )
    assert bulk.status_code == 200, bulk.text
    events, _ = await changes(client, user, since)
    assert kinds(events) == [
        (kind, f"tasks/{task['id']}") for kind in ("task.created", "task.updated", "task.completed")
    ]
    assert {event["data"]["title"] for event in events} == {awkward}
    assert {event["data"]["id"] for event in events} == {task["id"]}
    rows = await db.fetch(
        "SELECT payload, payload::text AS text FROM events WHERE user_id = $1 AND position > $2 ORDER BY position",
        user.id,
        int(since),
    )
    assert [json.loads(row["payload"]) for row in rows] == events
    assert [row["text"][row["text"].rindex(",") :] for row in rows] == [
        f',"position":{e["position"]}}}' for e in events
    ]


async def test_events_written_with_the_row_are_the_task_as_get_returns_it_after_each_write(
    client: httpx.AsyncClient, user: User
) -> None:
    """A create, an edit and a toggle write their event in the row's own statement, built before the
    database answers: the event must still be exactly what GET returns (ids, versions, instants in UTC)."""
    h = user.headers
    since = await token_now(client, user)
    parent = await create_task(client, user, title="Trip", due_at="2027-03-28T02:30:00+02:00")
    child = await create_task(client, user, title="Pack", parent_id=parent["id"], tags=["b", "a"])
    writes = [
        client.patch(task_url(child["id"]), json={"due_at": "2027-10-31T02:30:00-04:00", "priority": "low"}, headers=h),
        client.patch(task_url(parent["id"]), json={"completed": True}, headers=h),
        client.put(task_url(child["id"]), json={"title": "Pack bags", "completed": False}, headers=h),
    ]
    for write in writes:
        assert (await write).status_code == 200
    events, _ = await changes(client, user, since)
    last = {event["subject"]: event for event in events}
    assert kinds(events)[-1] == ("task.reopened", f"tasks/{child['id']}")  # the parent's completion closed it
    for task in (parent, child):
        assert last[f"tasks/{task['id']}"]["data"] == (await client.get(task_url(task["id"]), headers=h)).json()
    assert [event["position"] for event in events] == list(range(int(since) + 1, int(since) + len(events) + 1))


async def test_every_kind_of_write_leaves_one_event_per_changed_object(client: httpx.AsyncClient, user: User) -> None:
    h = user.headers
    since = await token_now(client, user)
    work = (await client.post("/api/me/lists", json={"name": "Work"}, headers=h)).json()
    parent = await create_task(client, user, title="Report", list_id=work["id"])
    child = await create_task(client, user, title="Outline", parent_id=parent["id"])
    other = await create_task(client, user, title="Other")
    assert (await client.patch(task_url(other["id"]), json={"title": "Renamed"}, headers=h)).status_code == 200
    assert (await client.patch(task_url(parent["id"]), json={"completed": True}, headers=h)).status_code == 200
    assert (await client.patch(task_url(parent["id"]), json={"completed": False}, headers=h)).status_code == 200
    moved = await client.post(f"{task_url(other['id'])}/move", json={"list_id": work["id"]}, headers=h)
    assert moved.status_code == 200, moved.text
    assert (await client.patch(f"/api/me/lists/{work['id']}", json={"color": "red"}, headers=h)).status_code == 200
    assert (await client.delete(task_url(parent["id"]), headers=h)).status_code == 204
    restored = await client.post(f"{task_url(parent['id'])}/restore", headers=h)
    assert restored.status_code == 200, restored.text
    bulk = await client.post(
        f"{tasks_url()}/bulk", json={"operations": [{"op": "complete", "task_ids": [other["id"]]}]}, headers=h
    )
    assert bulk.status_code == 200, bulk.text
    events, _ = await changes(client, user, since)
    p, c, o, w = (f"tasks/{parent['id']}", f"tasks/{child['id']}", f"tasks/{other['id']}", f"lists/{work['id']}")
    assert kinds(events) == [
        ("list.created", w),
        ("task.created", p),
        ("task.created", c),
        ("task.created", o),
        ("task.updated", o),
        ("task.completed", c),  # completing a parent completes its open subtasks, first
        ("task.completed", p),
        ("task.reopened", p),  # reopening leaves them
        ("task.moved", o),
        ("list.updated", w),
        ("task.deleted", p),
        ("task.deleted", c),
        ("task.restored", p),
        ("task.restored", c),
        ("task.completed", o),
    ]
    positions = [event["position"] for event in events]
    assert positions == list(range(int(since) + 1, int(since) + 1 + len(events)))
    tombstone = next(event for event in events if event["type"] == "task.deleted")
    assert set(tombstone["data"]) == {"id", "deleted_at"}
    # Each event's data is the object right after that change: the last one is what GET answers.
    last_of_other = [event for event in events if event["subject"] == o][-1]
    assert last_of_other["data"] == (await client.get(task_url(other["id"]), headers=h)).json()


async def test_deleting_a_list_with_its_tasks_leaves_tombstones_and_restoring_it_brings_all_back(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    h = user.headers
    work = (await client.post("/api/me/lists", json={"name": "Work"}, headers=h)).json()
    a = await create_task(client, user, title="A", list_id=work["id"], tags=["x"])
    b = await create_task(client, user, title="B", parent_id=a["id"])
    since = await token_now(client, user)
    assert (await client.delete(f"/api/me/lists/{work['id']}?cascade=true", headers=h)).status_code == 204
    assert await db.fetchval("SELECT count(*) FROM tasks WHERE user_id = $1", user.id) == 0
    assert_problem(await client.get(task_url(a["id"]), headers=h), 404)
    assert_problem(await client.post(f"{task_url(a['id'])}/restore", headers=h), 409, "deleted_with_list")
    back = await client.post(f"/api/me/lists/{work['id']}/restore", headers=h)
    assert back.status_code == 200, back.text
    assert (back.json()["name"], back.json()["total_count"], back.json()["version"]) == ("Work", 2, 2)
    events, _ = await changes(client, user, since)
    assert sorted(kinds(events)[:3]) == sorted(
        [
            ("task.deleted", f"tasks/{a['id']}"),
            ("task.deleted", f"tasks/{b['id']}"),
            ("list.deleted", f"lists/{work['id']}"),
        ]
    )
    assert kinds(events)[3] == ("list.restored", f"lists/{work['id']}")
    assert sorted(kinds(events)[4:]) == sorted(
        [("task.restored", f"tasks/{a['id']}"), ("task.restored", f"tasks/{b['id']}")]
    )
    again = (await client.get(task_url(b["id"]), headers=h)).json()
    assert (again["parent_id"], again["list_id"], again["version"]) == (a["id"], work["id"], b["version"] + 1)
    assert (await client.get(task_url(a["id"]), headers=h)).json()["tags"] == ["x"]


async def test_a_write_that_rolls_back_leaves_no_event(client: httpx.AsyncClient, user: User) -> None:
    task = await create_task(client, user)
    since = await token_now(client, user)
    stale = await client.patch(task_url(task["id"]), json={"title": "x"}, headers={**user.headers, "If-Match": '"9"'})
    assert_problem(stale, 412)
    refused = await client.post(
        f"{tasks_url()}/bulk",
        json={"operations": [{"op": "complete", "task_ids": [task["id"], 999_999]}]},
        headers=user.headers,
    )
    assert_problem(refused, 422, "bulk_not_applied")
    assert await changes(client, user, since) == ([], {"sync_token": since, "has_more": False, "limit": 500})


async def test_paging_follows_has_more_and_a_token_from_the_first_page_of_tasks_misses_nothing(
    client: httpx.AsyncClient, user: User
) -> None:
    for index in range(5):
        await create_task(client, user, title=f"T{index}")
    first = await client.get(tasks_url(), params={"limit": 2}, headers=user.headers)
    token = first.json()["meta"]["sync_token"]
    assert token is not None
    cursor = first.json()["meta"]["next_cursor"]
    second = await client.get(tasks_url(), params={"limit": 2, "cursor": cursor}, headers=user.headers)
    assert second.json()["meta"]["sync_token"] is None  # only a first page carries one
    lists_first = await client.get("/api/me/lists", headers=user.headers)
    assert lists_first.json()["meta"]["sync_token"] == token
    late = await create_task(client, user, title="Late")
    page = await client.get(changes_url(), params={"since": 0, "limit": 2}, headers=user.headers)
    assert page.json()["meta"]["has_more"] is True
    events, _ = await changes(client, user, token)
    assert kinds(events) == [("task.created", f"tasks/{late['id']}")]


async def test_a_token_older_than_retention_or_never_issued_is_410(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    for _ in range(3):
        await create_task(client, user)
    await db.execute("DELETE FROM events WHERE user_id = $1 AND position <= 2", user.id)
    await db.execute("UPDATE change_feeds SET pruned_through = 2 WHERE user_id = $1", user.id)
    # The Inbox made at sign-up is event 1; the three tasks are 2, 3, 4.
    assert_problem(
        await client.get(changes_url(), params={"since": 1}, headers=user.headers), 410, "sync_token_expired"
    )
    events, meta = await changes(client, user, "2")
    assert [event["position"] for event in events] == [3, 4]
    assert meta["sync_token"] == "4"
    assert_problem(
        await client.get(changes_url(), params={"since": 5}, headers=user.headers), 410, "sync_token_expired"
    )


async def test_another_persons_feed_is_403_and_their_events_never_show(client: httpx.AsyncClient, user: User) -> None:
    other = await sign_up(client)
    await create_task(client, other)
    assert_problem(await client.get(changes_url(other), params={"since": 0}, headers=user.headers), 403)
    events, _ = await changes(client, user, "0")
    assert all(event["source"] == f"/api/{user.id}" for event in events)


@pytest.mark.parametrize("since", ["-1", "abc", "1" * 19])
async def test_a_malformed_token_is_422(client: httpx.AsyncClient, user: User, since: str) -> None:
    assert_problem(await client.get(changes_url(), params={"since": since}, headers=user.headers), 422)


# --- Ordering under concurrency ------------------------------------------------------------------------

WRITERS, WRITES_EACH, READERS = 8, 15, 4


@pytest.fixture
async def units(database_url: str) -> AsyncIterator[SqlUnitsOfWork]:
    pool = ConnectionPool(pool_options(make_settings(db_pool_size=WRITERS + READERS + 2), database_url))
    yield SqlUnitsOfWork(pool, event_data)
    await pool.close()


async def test_concurrent_writers_and_readers_every_reader_sees_every_event_once_in_order(
    client: httpx.AsyncClient, user: User, units: SqlUnitsOfWork
) -> None:
    """The sequence-gap race of outboxes: writers hold their transaction open for a random while
    after their events are numbered. Were numbers handed out without the person's lock (a
    sequence), a reader could see position N+1 committed before N and move past N for good."""
    create = CreateTask(units, SystemClock(), RULES)
    start = await token_now(client, user)
    writing = True

    async def writer(index: int) -> None:
        for write in range(WRITES_EACH):
            async with units() as uow:
                task = (await create.execute(user.id, TaskDraft(f"w{index}-{write}"))).task
                uow.changes.record(user.id, [Change("task.updated", task)])
                await uow.changes.flush()
                await asyncio.sleep(random.uniform(0, 0.01))  # numbered, not yet committed
                await uow.commit()

    async def reader() -> list[int]:
        seen: list[int] = []
        since = int(start)
        while True:
            done = not writing
            async with units(read_only=True) as uow:
                page = await changes_after(uow, user.id, since, 50)
            seen += [event.position for event in page.events]
            since = page.position
            if done and not page.has_more and not page.events:
                return seen
            await asyncio.sleep(random.uniform(0, 0.003))

    readers = [asyncio.create_task(reader()) for _ in range(READERS)]
    await asyncio.gather(*(writer(index) for index in range(WRITERS)))
    writing = False
    seen_by = await asyncio.gather(*readers)
    expected = list(range(int(start) + 1, int(start) + 1 + 2 * WRITERS * WRITES_EACH))
    for seen in seen_by:
        assert seen == expected


async def test_a_second_writer_is_numbered_only_after_the_first_commits(
    client: httpx.AsyncClient, user: User, units: SqlUnitsOfWork
) -> None:
    """The mechanism itself, step by step: while one transaction holds numbered, uncommitted events,
    another writer of the same person waits for its numbers, so no reader can see N+1 before N."""
    task = await create_task(client, user)
    start = int(await token_now(client, user))
    stored = (await client.get(task_url(task["id"]), headers=user.headers)).json()
    async with units() as first:
        found = await first.tasks.get(user.id, stored["id"])
        assert found is not None
        first.changes.record(user.id, [Change("task.updated", found)])
        await first.changes.flush()  # numbered start + 1, not committed

        async def second_writer() -> None:
            async with units() as second:
                second.changes.record(user.id, [Change("task.updated", found)])
                await second.commit()

        second = asyncio.create_task(second_writer())
        await asyncio.sleep(0.3)
        assert not second.done()  # waiting for the person's counter
        async with units(read_only=True) as reader:
            assert (await changes_after(reader, user.id, start, 10)).events == []
        await first.commit()
    await asyncio.wait_for(second, 5)
    async with units(read_only=True) as reader:
        page = await changes_after(reader, user.id, start, 10)
    assert [event.position for event in page.events] == [start + 1, start + 2]


async def test_a_restored_task_keeps_its_place_even_where_a_sibling_took_its_key(
    client: httpx.AsyncClient, user: User
) -> None:
    h = user.headers
    first = await create_task(client, user, title="First")
    gone = await create_task(client, user, title="Gone")
    assert (await client.delete(task_url(gone["id"]), headers=h)).status_code == 204
    listed = await client.get(tasks_url(), params={"deleted": "true"}, headers=h)
    assert [(t["id"], t["deleted_at"] is not None) for t in listed.json()["data"]] == [(gone["id"], True)]
    taker = await create_task(client, user, title="Taker")
    assert taker["position"] == gone["position"]
    restored = await client.post(f"{task_url(gone['id'])}/restore", headers=h)
    assert restored.status_code == 200, restored.text
    assert restored.headers["ETag"] == f'"{restored.json()["version"]}"'
    in_order = await client.get(
        tasks_url(), params={"list_id": first["list_id"], "parent_id": "none", "sort": "position"}, headers=h
    )
    tasks = in_order.json()["data"]
    assert [t["title"] for t in tasks] == ["First", "Gone", "Taker"]
    assert len({t["position"] for t in tasks}) == 3
    assert (await client.get(tasks_url(), params={"deleted": "true"}, headers=h)).json()["data"] == []
    refused = await client.get(tasks_url(), params={"deleted": "true", "sort": "title"}, headers=h)
    assert_problem(refused, 422, "invalid_filter")
