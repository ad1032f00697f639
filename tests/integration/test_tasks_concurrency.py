"""Concurrent writes to one task over HTTP on a real PostgreSQL: no lost update, no 5xx.

Requests go through the in-process ASGI client and `asyncio.gather`, so they really overlap: each
holds its own pooled connection while it waits on the database.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.tasks_support import User, assert_problem, create_task, sign_up, task_url, tasks_url

Task = dict[str, Any]


@pytest.fixture
async def user(client: httpx.AsyncClient) -> User:
    return await sign_up(client)


@pytest.fixture
async def task(client: httpx.AsyncClient, user: User) -> Task:
    return await create_task(client, user, title="Shared task", description="first", priority="low", tags=["a"])


async def current(client: httpx.AsyncClient, user: User, task_id: int) -> Task:
    response = await client.get(task_url(task_id), headers=user.headers)
    assert response.status_code == 200, response.text
    body: Task = response.json()
    return body


def statuses(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(response.status_code for response in responses)


# If-Match: one winner ---------------------------------------------------------------------------


async def patch_all_with_the_same_if_match(
    client: httpx.AsyncClient, user: User, task: Task, count: int = 50
) -> list[httpx.Response]:
    etag = f'"{task["version"]}"'
    return await asyncio.gather(
        *(
            client.patch(task_url(task["id"]), json={"title": f"Title {n}"}, headers={**user.headers, "If-Match": etag})
            for n in range(count)
        )
    )


async def test_fifty_concurrent_patches_with_the_same_if_match_let_exactly_one_through(
    client: httpx.AsyncClient, user: User, task: Task
) -> None:
    responses = await patch_all_with_the_same_if_match(client, user, task)
    assert statuses(responses) == {200: 1, 412: 49}


async def test_the_losers_of_an_if_match_race_get_412_with_the_winners_etag(
    client: httpx.AsyncClient, user: User, task: Task
) -> None:
    responses = await patch_all_with_the_same_if_match(client, user, task)
    for response in (r for r in responses if r.status_code != 200):
        assert_problem(response, 412, "precondition_failed")
        assert response.headers["etag"] == '"2"'


async def test_after_an_if_match_race_the_task_holds_the_winners_write_at_version_2(
    client: httpx.AsyncClient, user: User, task: Task, db: asyncpg.Connection
) -> None:
    responses = await patch_all_with_the_same_if_match(client, user, task)
    (winner,) = (response.json() for response in responses if response.status_code == 200)
    stored = await current(client, user, task["id"])
    assert stored == winner
    assert stored["version"] == 2
    row = await db.fetchrow("SELECT title, version FROM tasks WHERE id = $1", task["id"])
    assert row is not None
    assert (row["title"], row["version"]) == (winner["title"], 2)


# No If-Match: every write lands -------------------------------------------------------------------

FIELD_CHANGES: list[dict[str, Any]] = [
    {"title": "New title"},
    {"description": "second"},
    {"priority": "high"},
    {"tags": ["b", "c"]},
    {"due_at": "2030-05-01T12:00:00Z"},
    {"completed": True},
]


async def test_concurrent_patches_of_different_fields_without_if_match_all_survive(
    client: httpx.AsyncClient, user: User, task: Task
) -> None:
    responses = await asyncio.gather(
        *(client.patch(task_url(task["id"]), json=change, headers=user.headers) for change in FIELD_CHANGES)
    )
    assert statuses(responses) == {200: len(FIELD_CHANGES)}
    stored = await current(client, user, task["id"])
    assert stored["title"] == "New title"
    assert stored["description"] == "second"
    assert stored["priority"] == "high"
    assert stored["tags"] == ["b", "c"]
    assert stored["due_at"] == "2030-05-01T12:00:00Z"
    assert stored["completed"] is True
    assert stored["version"] == 1 + len(FIELD_CHANGES)


async def test_concurrent_title_and_priority_patches_both_survive(
    client: httpx.AsyncClient, user: User, task: Task
) -> None:
    url = task_url(task["id"])
    title, priority = await asyncio.gather(
        client.patch(url, json={"title": "Renamed"}, headers=user.headers),
        client.patch(url, json={"priority": "medium"}, headers=user.headers),
    )
    assert (title.status_code, priority.status_code) == (200, 200)
    stored = await current(client, user, task["id"])
    assert (stored["title"], stored["priority"], stored["version"]) == ("Renamed", "medium", 3)


async def test_twenty_concurrent_patches_without_if_match_are_all_applied_one_after_another(
    client: httpx.AsyncClient, user: User, task: Task
) -> None:
    responses = await asyncio.gather(
        *(client.patch(task_url(task["id"]), json={"title": f"Title {n}"}, headers=user.headers) for n in range(20))
    )
    assert statuses(responses) == {200: 20}, [r.text for r in responses if r.status_code != 200][:3]
    # Each write saw the one before it: versions 2..21, one each, and the last one is what is stored.
    versions = sorted(response.json()["version"] for response in responses)
    assert versions == list(range(2, 22))
    last = next(response.json() for response in responses if response.json()["version"] == 21)
    assert await current(client, user, task["id"]) == last


async def test_twenty_concurrent_toggles_leave_version_21_and_the_task_open(
    client: httpx.AsyncClient, user: User, task: Task
) -> None:
    responses = await asyncio.gather(
        *(client.patch(f"{task_url(task['id'])}/complete", headers=user.headers) for _ in range(20))
    )
    assert statuses(responses) == {200: 20}, [r.text for r in responses if r.status_code != 200][:3]
    stored = await current(client, user, task["id"])
    assert (stored["version"], stored["completed"], stored["completed_at"]) == (21, False, None)


async def test_each_of_twenty_concurrent_toggles_flips_what_the_one_before_left(
    client: httpx.AsyncClient, user: User, task: Task
) -> None:
    responses = await asyncio.gather(
        *(client.patch(f"{task_url(task['id'])}/complete", headers=user.headers) for _ in range(20))
    )
    assert statuses(responses) == {200: 20}, [r.text for r in responses if r.status_code != 200][:3]
    # Version v is the (v-1)th toggle of an open task: completed exactly when v is even.
    assert sorted((r.json()["version"], r.json()["completed"]) for r in responses) == [
        (version, version % 2 == 0) for version in range(2, 22)
    ]


# Idempotent create -------------------------------------------------------------------------------

IDEMPOTENT_BODY = {"title": "Pay rent", "priority": "high", "tags": ["home"], "due_at": "2030-01-01T09:00:00Z"}


async def create_ten_times_at_once(client: httpx.AsyncClient, user: User, key: str) -> list[httpx.Response]:
    headers = {**user.headers, "Idempotency-Key": key}
    return await asyncio.gather(*(client.post(tasks_url(), json=IDEMPOTENT_BODY, headers=headers) for _ in range(10)))


async def test_ten_concurrent_creates_with_one_idempotency_key_all_answer_201_with_the_same_task(
    client: httpx.AsyncClient, user: User
) -> None:
    responses = await create_ten_times_at_once(client, user, "rent-2030-01")
    assert statuses(responses) == {201: 10}, [r.text for r in responses if r.status_code != 201][:3]
    bodies = [response.json() for response in responses]
    assert all(body == bodies[0] for body in bodies)


async def test_ten_concurrent_creates_with_one_idempotency_key_store_one_row(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    responses = await create_ten_times_at_once(client, user, "rent-2030-01")
    assert statuses(responses) == {201: 10}
    rows = await db.fetch("SELECT id FROM tasks WHERE user_id = $1", user.id)
    assert [row["id"] for row in rows] == [responses[0].json()["id"]]
    keys = await db.fetchval("SELECT count(*) FROM idempotency_keys WHERE user_id = $1", user.id)
    assert keys == 1


async def test_ten_concurrent_creates_with_one_idempotency_key_mark_all_but_one_replayed(
    client: httpx.AsyncClient, user: User
) -> None:
    responses = await create_ten_times_at_once(client, user, "rent-2030-01")
    assert statuses(responses) == {201: 10}
    assert Counter(response.headers.get("idempotent-replayed") for response in responses) == {None: 1, "true": 9}


# Everything at once --------------------------------------------------------------------------------


async def test_a_mix_of_concurrent_reads_and_writes_on_one_task_never_gets_a_5xx(
    client: httpx.AsyncClient, user: User, task: Task
) -> None:
    url = task_url(task["id"])
    stale = {**user.headers, "If-Match": '"1"'}
    requests = [
        *(client.patch(url, json={"title": f"Title {n}"}, headers=user.headers) for n in range(5)),
        *(client.patch(f"{url}/complete", headers=user.headers) for _ in range(5)),
        *(client.put(url, json={"title": f"Replaced {n}"}, headers=user.headers) for n in range(3)),
        *(client.patch(url, json={"priority": "medium"}, headers=stale) for _ in range(3)),
        *(client.get(url, headers=user.headers) for _ in range(5)),
        *(client.get(tasks_url(), params={"q": "title"}, headers=user.headers) for _ in range(5)),
        *(client.post(tasks_url(), json={"title": f"Side task {n}"}, headers=user.headers) for n in range(5)),
    ]
    responses = await asyncio.gather(*requests)
    assert all(response.status_code < 500 for response in responses), [r.text for r in responses if r.is_server_error]
    assert set(statuses(responses)) <= {200, 201, 412}
    stored = await current(client, user, task["id"])
    writes = sum(1 for r in responses if r.request.method in {"PATCH", "PUT"} and r.status_code == 200)
    assert stored["version"] <= 1 + writes
