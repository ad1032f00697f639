"""The task routes over HTTP against a real PostgreSQL: statuses, headers, bodies and rows.

`/api/{user_id}/tasks` and `/api/{user_id}/tasks/{task_id}` (+ `/complete`), with `me` for the caller.
Isolation between users lives in test_tasks_isolation.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.conftest import make_settings
from tests.integration.tasks_support import (
    User,
    assert_problem,
    create_task,
    sign_up,
    task_url,
    tasks_url,
)
from todo_api.main import create_app

MISSING_ID = 987_654_321
DUE = "2026-12-01T17:00:00Z"
DUE_WITH_OFFSET = "2026-12-01T19:00:00+02:00"
NAIVE_DUE = "2026-12-01T17:00:00"

# (method, path template, JSON body) for every route; `{id}` is a task id.
ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/me/tasks", None),
    ("POST", "/api/me/tasks", {"title": "A task"}),
    ("GET", "/api/me/tasks/{id}", None),
    ("PUT", "/api/me/tasks/{id}", {"title": "A task"}),
    ("PATCH", "/api/me/tasks/{id}", {"title": "A task"}),
    ("PATCH", "/api/me/tasks/{id}/complete", None),
    ("DELETE", "/api/me/tasks/{id}", None),
]
ROUTE_IDS = [f"{method} {path}" for method, path, _ in ROUTES]
TASK_ROUTES = [route for route in ROUTES if "{id}" in route[1]]
TASK_ROUTE_IDS = [f"{method} {path}" for method, path, _ in TASK_ROUTES]


@pytest.fixture
async def user(client: httpx.AsyncClient) -> User:
    return await sign_up(client, "ada@example.com")


@pytest.fixture
async def task(client: httpx.AsyncClient, user: User) -> dict[str, Any]:
    return await create_task(
        client, user, title="Buy oat milk", description="The barista one", priority="high", tags=["shop"], due_at=DUE
    )


async def count_tasks(db: asyncpg.Connection) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM tasks")
    return count


async def count_idempotency_keys(db: asyncpg.Connection) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM idempotency_keys")
    return count


async def stored(db: asyncpg.Connection, task_id: int) -> dict[str, Any] | None:
    row = await db.fetchrow("SELECT * FROM tasks WHERE id = $1", task_id)
    return dict(row) if row is not None else None


async def send(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await client.request(method, path, json=body, headers=headers)


def etag_of(version: int) -> str:
    return f'"{version}"'


# --- authentication and the path's user -------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
async def test_every_route_without_a_token_is_401(
    client: httpx.AsyncClient,
    task: dict[str, Any],
    db: asyncpg.Connection,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    before = await stored(db, task["id"])
    response = await send(client, method, path.format(id=task["id"]), body)
    assert_problem(response, 401, "missing_token")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert await stored(db, task["id"]) == before
    assert await count_tasks(db) == 1


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
async def test_every_route_with_a_malformed_token_is_401(
    client: httpx.AsyncClient,
    task: dict[str, Any],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    headers = {"Authorization": "Bearer not-a-jwt"}
    assert_problem(await send(client, method, path.format(id=task["id"]), body, headers), 401, "invalid_token")


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
async def test_every_route_with_someone_elses_user_id_in_the_path_is_403(
    client: httpx.AsyncClient,
    user: User,
    task: dict[str, Any],
    db: asyncpg.Connection,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    before = await stored(db, task["id"])
    other_path = path.replace("/api/me/", "/api/somebody-else/").format(id=task["id"])
    response = await send(client, method, other_path, body, user.headers)
    assert_problem(response, 403, "not_your_tasks")
    assert await stored(db, task["id"]) == before
    assert await count_tasks(db) == 1


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
async def test_every_route_answers_on_the_callers_own_user_id_like_on_me(
    client: httpx.AsyncClient,
    user: User,
    task: dict[str, Any],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    own_path = path.replace("/api/me/", f"/api/{user.id}/").format(id=task["id"])
    response = await send(client, method, own_path, body, user.headers)
    assert response.status_code in {200, 201, 204}, response.text


# --- task ids in the path ---------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), TASK_ROUTES, ids=TASK_ROUTE_IDS)
async def test_every_task_route_with_an_unknown_id_is_404_task_not_found(
    client: httpx.AsyncClient,
    user: User,
    task: dict[str, Any],
    db: asyncpg.Connection,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    before = await stored(db, task["id"])
    response = await send(client, method, path.format(id=MISSING_ID), body, user.headers)
    problem = assert_problem(response, 404, "task_not_found")
    assert str(MISSING_ID) in problem["detail"]
    assert await stored(db, task["id"]) == before
    assert await count_tasks(db) == 1


@pytest.mark.parametrize("bad_id", ["0", "-1", str(2**63), "abc", "1.5"])
@pytest.mark.parametrize(("method", "path", "body"), TASK_ROUTES, ids=TASK_ROUTE_IDS)
async def test_every_task_route_with_an_invalid_task_id_is_422(
    client: httpx.AsyncClient,
    user: User,
    task: dict[str, Any],
    db: asyncpg.Connection,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    bad_id: str,
) -> None:
    before = await stored(db, task["id"])
    response = await send(client, method, path.format(id=bad_id), body, user.headers)
    problem = assert_problem(response, 422, "validation_failed")
    assert ["path", "task_id"] in [error["loc"] for error in problem["errors"]]
    assert await stored(db, task["id"]) == before


async def test_the_largest_bigint_task_id_is_a_404_not_a_422(client: httpx.AsyncClient, user: User) -> None:
    assert_problem(await client.get(task_url(2**63 - 1), headers=user.headers), 404, "task_not_found")


# --- POST /tasks ------------------------------------------------------------------------------------


async def test_create_is_201_with_the_task(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post(tasks_url(), json={"title": "Buy oat milk"}, headers=user.headers)
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert isinstance(body["id"], int)
    assert body["title"] == "Buy oat milk"
    assert body.keys() == {
        "id", "title", "description", "completed", "completed_at", "priority", "tags", "due_at",
        "created_at", "updated_at", "version", "list_id", "parent_id", "position", "deleted_at",
        "recurrence", "reminders", "series_id", "previous_id",
    }  # fmt: skip
    assert (body["recurrence"], body["reminders"], body["series_id"], body["previous_id"]) == (None, [], None, None)


async def test_create_fills_in_the_defaults(client: httpx.AsyncClient, user: User) -> None:
    body = await create_task(client, user, title="Buy oat milk")
    assert body["description"] is None
    assert body["completed"] is False
    assert body["completed_at"] is None
    assert body["priority"] == "none"
    assert body["tags"] == []
    assert body["due_at"] is None
    assert body["version"] == 1
    assert body["created_at"] == body["updated_at"]


async def test_create_stores_the_task_for_the_caller(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    body = await create_task(client, user, title="Buy oat milk", description="Oat", priority="high", tags=["shop"])
    row = await stored(db, body["id"])
    assert row is not None
    assert row["user_id"] == user.id
    assert (row["title"], row["description"], row["priority"], row["tags"]) == ("Buy oat milk", "Oat", 3, ["shop"])
    assert row["version"] == 1


async def test_create_sends_an_etag_of_the_quoted_version(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post(tasks_url(), json={"title": "Buy oat milk"}, headers=user.headers)
    assert response.headers["etag"] == '"1"'
    assert response.headers["etag"] == etag_of(response.json()["version"])


async def test_create_location_points_at_the_task_and_get_on_it_works(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post(tasks_url(), json={"title": "Buy oat milk"}, headers=user.headers)
    location = response.headers["location"]
    assert location.endswith(f"/tasks/{response.json()['id']}")
    fetched = await client.get(location, headers=user.headers)
    assert fetched.status_code == 200
    assert fetched.json()["id"] == response.json()["id"]


async def test_create_body_equals_the_get_body(client: httpx.AsyncClient, user: User) -> None:
    created = await create_task(
        client, user, title="Buy oat milk", description="Oat", priority="low", tags=["a", "b"], due_at=DUE
    )
    fetched = await client.get(task_url(created["id"]), headers=user.headers)
    assert fetched.json() == created


async def test_create_trims_the_title(client: httpx.AsyncClient, user: User, db: asyncpg.Connection) -> None:
    body = await create_task(client, user, title="  Buy oat milk \n")
    assert body["title"] == "Buy oat milk"
    row = await stored(db, body["id"])
    assert row is not None
    assert row["title"] == "Buy oat milk"


async def test_create_normalises_tags_lower_cased_trimmed_and_unique(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    body = await create_task(client, user, tags=[" Home ", "home", "WORK"])
    assert body["tags"] == ["home", "work"]
    row = await stored(db, body["id"])
    assert row is not None
    assert row["tags"] == ["home", "work"]


async def test_create_completed_sets_completed_at(client: httpx.AsyncClient, user: User) -> None:
    body = await create_task(client, user, completed=True)
    assert body["completed"] is True
    assert body["completed_at"] is not None


async def test_create_keeps_the_instant_of_a_due_at_with_an_offset(client: httpx.AsyncClient, user: User) -> None:
    body = await create_task(client, user, due_at=DUE_WITH_OFFSET)
    assert datetime.fromisoformat(body["due_at"]) == datetime.fromisoformat(DUE_WITH_OFFSET)


@pytest.mark.parametrize("due_at", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"])
async def test_a_due_at_at_either_end_of_the_calendar_comes_back_with_its_zone(
    client: httpx.AsyncClient, user: User, due_at: str
) -> None:
    """The driver reads these two instants as its naive infinity sentinels (found by schemathesis)."""
    body = await create_task(client, user, due_at=due_at)
    assert datetime.fromisoformat(body["due_at"]) == datetime.fromisoformat(due_at)
    fetched = await client.get(f"/api/me/tasks/{body['id']}", headers=user.headers)
    assert datetime.fromisoformat(fetched.json()["due_at"]) == datetime.fromisoformat(due_at)


async def test_create_accepts_every_field_at_its_limit(client: httpx.AsyncClient, user: User) -> None:
    body = await create_task(
        client,
        user,
        title="  " + "t" * 200 + "  ",
        description="d" * 1000,
        tags=[f"{i:02d}" + "x" * 48 for i in range(20)],
    )
    assert len(body["title"]) == 200
    assert len(body["description"]) == 1000
    assert len(body["tags"]) == 20
    assert all(len(tag) == 50 for tag in body["tags"])


INVALID_CREATE_BODIES: dict[str, dict[str, Any]] = {
    "no title": {},
    "empty title": {"title": ""},
    "blank title": {"title": "   \t "},
    "title of 201 characters after trimming": {"title": " " + "t" * 201 + " "},
    "title not a string": {"title": 5},
    "null title": {"title": None},
    "description of 1001 characters": {"title": "T", "description": "d" * 1001},
    "21 tags": {"title": "T", "tags": [f"tag{i}" for i in range(21)]},
    "tag of 51 characters": {"title": "T", "tags": ["x" * 51]},
    "blank tag": {"title": "T", "tags": ["   "]},
    "tags not a list": {"title": "T", "tags": "home"},
    "unknown priority": {"title": "T", "priority": "urgent"},
    "naive due_at": {"title": "T", "due_at": NAIVE_DUE},
    "date-only due_at": {"title": "T", "due_at": "2026-12-01"},
    "due_at not a date": {"title": "T", "due_at": "tomorrow"},
    "due_at as a number": {"title": "T", "due_at": 1_790_000_000},
    "due_at as a numeric string": {"title": "T", "due_at": "1790000000"},
    "completed as 0": {"title": "T", "completed": 0},
    "completed as a string": {"title": "T", "completed": "true"},
    "unknown field": {"title": "T", "colour": "red"},
    "user_id": {"title": "T", "user_id": "someone"},
    "id": {"title": "T", "id": 7},
    "version": {"title": "T", "version": 9},
    "created_at": {"title": "T", "created_at": DUE},
    "updated_at": {"title": "T", "updated_at": DUE},
    "completed_at": {"title": "T", "completed_at": DUE},
}


@pytest.mark.parametrize("body", INVALID_CREATE_BODIES.values(), ids=INVALID_CREATE_BODIES.keys())
async def test_create_with_an_invalid_body_is_422_and_stores_nothing(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection, body: dict[str, Any]
) -> None:
    response = await client.post(tasks_url(), json=body, headers=user.headers)
    assert_problem(response, 422)
    assert "location" not in response.headers
    assert await count_tasks(db) == 0


async def test_create_with_a_body_that_is_not_an_object_is_422(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    assert_problem(await client.post(tasks_url(), json=["title"], headers=user.headers), 422)
    assert await count_tasks(db) == 0


async def test_create_with_a_nul_character_in_the_title_is_422_not_500(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    assert_problem(await client.post(tasks_url(), json={"title": "a\x00b"}, headers=user.headers), 422)
    assert await count_tasks(db) == 0


async def test_unknown_field_error_names_the_field(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post(tasks_url(), json={"title": "T", "user_id": "x"}, headers=user.headers)
    problem = assert_problem(response, 422, "validation_failed")
    assert {"loc": ["body", "user_id"], "code": "unknown_field"} in [
        {"loc": error["loc"], "code": error["code"]} for error in problem["errors"]
    ]


# --- Idempotency-Key --------------------------------------------------------------------------------


async def post_with_key(client: httpx.AsyncClient, user: User, key: str, body: dict[str, Any]) -> httpx.Response:
    return await client.post(tasks_url(), json=body, headers={**user.headers, "Idempotency-Key": key})


async def test_first_post_with_an_idempotency_key_is_not_marked_replayed(client: httpx.AsyncClient, user: User) -> None:
    response = await post_with_key(client, user, "key-1", {"title": "Buy oat milk"})
    assert response.status_code == 201
    assert "idempotent-replayed" not in response.headers


async def test_same_idempotency_key_and_body_replays_the_first_response(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    first = await post_with_key(client, user, "key-1", {"title": "Buy oat milk", "tags": ["shop"]})
    again = await post_with_key(client, user, "key-1", {"title": "Buy oat milk", "tags": ["shop"]})
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["etag"] == first.headers["etag"]
    assert await count_tasks(db) == 1


async def test_same_idempotency_key_with_a_different_body_is_422_and_stores_nothing(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    await post_with_key(client, user, "key-1", {"title": "Buy oat milk"})
    response = await post_with_key(client, user, "key-1", {"title": "Buy soy milk"})
    assert_problem(response, 422, "idempotency_key_reused")
    assert await count_tasks(db) == 1
    assert await count_idempotency_keys(db) == 1


async def test_different_idempotency_keys_create_different_tasks(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    first = await post_with_key(client, user, "key-1", {"title": "Buy oat milk"})
    second = await post_with_key(client, user, "key-2", {"title": "Buy oat milk"})
    assert second.status_code == 201
    assert "idempotent-replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"]
    assert await count_tasks(db) == 2


async def test_idempotency_key_is_stored_in_postgresql_for_the_user(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    await post_with_key(client, user, "key-1", {"title": "Buy oat milk"})
    rows = await db.fetch("SELECT user_id, key FROM idempotency_keys")
    assert [(row["user_id"], row["key"]) for row in rows] == [(user.id, "key-1")]


@pytest.fixture
async def restarted_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A second app instance on the same database: what a client retrying after a restart reaches."""
    application = create_app(make_settings(), database_url=database_url)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://test") as http,
    ):
        yield http


async def test_idempotent_replay_survives_a_restart(
    client: httpx.AsyncClient, restarted_client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    first = await post_with_key(client, user, "key-1", {"title": "Buy oat milk"})
    again = await post_with_key(restarted_client, user, "key-1", {"title": "Buy oat milk"})
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert await count_tasks(db) == 1


async def test_idempotency_key_reused_with_a_different_body_after_a_restart_is_422(
    client: httpx.AsyncClient, restarted_client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    await post_with_key(client, user, "key-1", {"title": "Buy oat milk"})
    response = await post_with_key(restarted_client, user, "key-1", {"title": "Buy soy milk"})
    assert_problem(response, 422, "idempotency_key_reused")
    assert await count_tasks(db) == 1


@pytest.mark.parametrize(
    "key", ["", "has space", "k" * 256, "k\x7fey"], ids=["empty", "space", "256 characters", "control character"]
)
async def test_invalid_idempotency_key_is_422_and_stores_nothing(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection, key: str
) -> None:
    headers = {**user.headers, "Idempotency-Key": key}
    response = await client.post(tasks_url(), json={"title": "T"}, headers=headers)
    assert_problem(response, 422)
    assert await count_tasks(db) == 0
    assert await count_idempotency_keys(db) == 0


async def test_invalid_body_with_an_idempotency_key_stores_no_key(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    assert_problem(await post_with_key(client, user, "key-1", {"title": "   "}), 422)
    assert await count_idempotency_keys(db) == 0
    assert (await post_with_key(client, user, "key-1", {"title": "Fixed"})).status_code == 201


# --- GET /tasks/{id} --------------------------------------------------------------------------------


async def test_get_is_200_with_the_task_and_its_etag(
    client: httpx.AsyncClient, user: User, task: dict[str, Any]
) -> None:
    response = await client.get(task_url(task["id"]), headers=user.headers)
    assert response.status_code == 200
    assert response.json() == task
    assert response.headers["etag"] == etag_of(task["version"])


async def test_get_with_if_none_match_of_the_current_etag_is_304_with_etag_and_empty_body(
    client: httpx.AsyncClient, user: User, task: dict[str, Any]
) -> None:
    headers = {**user.headers, "If-None-Match": etag_of(task["version"])}
    response = await client.get(task_url(task["id"]), headers=headers)
    assert response.status_code == 304
    assert response.headers["etag"] == etag_of(task["version"])
    assert response.content == b""


async def test_get_with_if_none_match_star_is_304(client: httpx.AsyncClient, user: User, task: dict[str, Any]) -> None:
    response = await client.get(task_url(task["id"]), headers={**user.headers, "If-None-Match": "*"})
    assert response.status_code == 304
    assert response.content == b""


async def test_get_with_if_none_match_of_a_stale_etag_is_200_with_the_new_etag(
    client: httpx.AsyncClient, user: User, task: dict[str, Any]
) -> None:
    await client.patch(task_url(task["id"]), json={"title": "Changed"}, headers=user.headers)
    headers = {**user.headers, "If-None-Match": etag_of(task["version"])}
    response = await client.get(task_url(task["id"]), headers=headers)
    assert response.status_code == 200
    assert response.json()["title"] == "Changed"
    assert response.headers["etag"] == etag_of(task["version"] + 1)


async def test_get_of_a_deleted_task_is_404(client: httpx.AsyncClient, user: User, task: dict[str, Any]) -> None:
    await client.delete(task_url(task["id"]), headers=user.headers)
    assert_problem(await client.get(task_url(task["id"]), headers=user.headers), 404, "task_not_found")


# --- GET /tasks (the collection; the listing suite covers filters and paging) -----------------------


async def test_list_is_200_with_the_callers_tasks_and_page_meta(
    client: httpx.AsyncClient, user: User, task: dict[str, Any]
) -> None:
    response = await client.get(tasks_url(), headers=user.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == [task]
    assert body["meta"] == {"next_cursor": None, "limit": 20, "total": None, "sync_token": body["meta"]["sync_token"]}
    assert body["meta"]["sync_token"].isdigit()


@pytest.mark.parametrize(
    "params",
    [{"limit": "0"}, {"limit": "101"}, {"limit": "ten"}, {"status": "done"}, {"sort": "colour"}, {"priority": "x"}],
    ids=["limit 0", "limit 101", "limit not a number", "unknown status", "unknown sort", "unknown priority"],
)
async def test_list_with_invalid_parameters_is_422(
    client: httpx.AsyncClient, user: User, params: dict[str, str]
) -> None:
    assert_problem(await client.get(tasks_url(), params=params, headers=user.headers), 422)


async def test_list_with_a_naive_due_before_is_422(client: httpx.AsyncClient, user: User) -> None:
    response = await client.get(tasks_url(), params={"due_before": NAIVE_DUE}, headers=user.headers)
    assert_problem(response, 422)


# --- PUT /tasks/{id} --------------------------------------------------------------------------------


async def test_put_replaces_every_field(
    client: httpx.AsyncClient, user: User, task: dict[str, Any], db: asyncpg.Connection
) -> None:
    replacement = {
        "title": " Sell oat milk ",
        "description": "All of it",
        "priority": "low",
        "tags": ["Market"],
        "due_at": "2027-01-02T03:04:05Z",
        "completed": True,
    }
    response = await client.put(task_url(task["id"]), json=replacement, headers=user.headers)
    assert response.status_code == 200
    body = response.json()
    assert (body["title"], body["description"], body["priority"], body["tags"]) == (
        "Sell oat milk",
        "All of it",
        "low",
        ["market"],
    )
    assert body["due_at"].startswith("2027-01-02T03:04:05")
    assert body["completed"] is True
    assert body["completed_at"] is not None
    assert body["id"] == task["id"]
    assert body["created_at"] == task["created_at"]
    row = await stored(db, task["id"])
    assert row is not None
    assert (row["title"], row["priority"], row["tags"], row["completed"]) == ("Sell oat milk", 1, ["market"], True)


async def test_put_resets_omitted_optional_fields_to_their_defaults(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    task = await create_task(client, user, description="D", priority="high", tags=["x"], due_at=DUE, completed=True)
    response = await client.put(task_url(task["id"]), json={"title": "Only a title"}, headers=user.headers)
    body = response.json()
    assert body["title"] == "Only a title"
    assert body["description"] is None
    assert body["priority"] == "none"
    assert body["tags"] == []
    assert body["due_at"] is None
    assert body["completed"] is False
    assert body["completed_at"] is None
    row = await stored(db, task["id"])
    assert row is not None
    assert (row["description"], row["priority"], row["tags"], row["due_at"]) == (None, 0, [], None)
    assert (row["completed"], row["completed_at"]) == (False, None)


async def test_put_sends_the_new_etag_and_increments_the_version(
    client: httpx.AsyncClient, user: User, task: dict[str, Any]
) -> None:
    response = await client.put(task_url(task["id"]), json={"title": "New"}, headers=user.headers)
    assert response.json()["version"] == task["version"] + 1
    assert response.headers["etag"] == etag_of(task["version"] + 1)


async def test_put_body_equals_the_get_body(client: httpx.AsyncClient, user: User, task: dict[str, Any]) -> None:
    response = await client.put(task_url(task["id"]), json={"title": "New", "tags": ["A"]}, headers=user.headers)
    assert (await client.get(task_url(task["id"]), headers=user.headers)).json() == response.json()


INVALID_REPLACE_BODIES: dict[str, dict[str, Any]] = {
    "no title": {"description": "D"},
    "blank title": {"title": "  "},
    "title of 201 characters after trimming": {"title": "t" * 201},
    "description of 1001 characters": {"title": "T", "description": "d" * 1001},
    "21 tags": {"title": "T", "tags": [f"tag{i}" for i in range(21)]},
    "tag of 51 characters": {"title": "T", "tags": ["x" * 51]},
    "naive due_at": {"title": "T", "due_at": NAIVE_DUE},
    "completed as 0": {"title": "T", "completed": 0},
    "unknown field": {"title": "T", "colour": "red"},
    "user_id": {"title": "T", "user_id": "someone"},
    "id": {"title": "T", "id": 7},
    "version": {"title": "T", "version": 9},
    "created_at": {"title": "T", "created_at": DUE},
}


@pytest.mark.parametrize("body", INVALID_REPLACE_BODIES.values(), ids=INVALID_REPLACE_BODIES.keys())
async def test_put_with_an_invalid_body_is_422_and_changes_nothing(
    client: httpx.AsyncClient, user: User, task: dict[str, Any], db: asyncpg.Connection, body: dict[str, Any]
) -> None:
    before = await stored(db, task["id"])
    assert_problem(await client.put(task_url(task["id"]), json=body, headers=user.headers), 422)
    assert await stored(db, task["id"]) == before


# --- PATCH /tasks/{id} ------------------------------------------------------------------------------


async def test_patch_changes_only_the_fields_sent(
    client: httpx.AsyncClient, user: User, task: dict[str, Any], db: asyncpg.Connection
) -> None:
    response = await client.patch(task_url(task["id"]), json={"priority": "low"}, headers=user.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["priority"] == "low"
    unchanged = ("title", "description", "tags", "due_at", "completed", "completed_at", "created_at", "id")
    assert {name: body[name] for name in unchanged} == {name: task[name] for name in unchanged}
    row = await stored(db, task["id"])
    assert row is not None
    assert (row["title"], row["description"], row["priority"], row["tags"]) == (
        "Buy oat milk",
        "The barista one",
        1,
        ["shop"],
    )


async def test_patch_null_clears_description_and_due_at(
    client: httpx.AsyncClient, user: User, task: dict[str, Any], db: asyncpg.Connection
) -> None:
    response = await client.patch(
        task_url(task["id"]), json={"description": None, "due_at": None}, headers=user.headers
    )
    body = response.json()
    assert (body["description"], body["due_at"]) == (None, None)
    assert body["title"] == task["title"]
    row = await stored(db, task["id"])
    assert row is not None
    assert (row["description"], row["due_at"]) == (None, None)


@pytest.mark.parametrize("field", ["title", "priority", "tags", "completed"])
async def test_patch_null_for_a_required_field_is_422_and_changes_nothing(
    client: httpx.AsyncClient, user: User, task: dict[str, Any], db: asyncpg.Connection, field: str
) -> None:
    before = await stored(db, task["id"])
    response = await client.patch(task_url(task["id"]), json={field: None}, headers=user.headers)
    assert_problem(response, 422, "null_not_allowed")
    assert await stored(db, task["id"]) == before


async def test_patch_normalises_title_and_tags(client: httpx.AsyncClient, user: User, task: dict[str, Any]) -> None:
    response = await client.patch(
        task_url(task["id"]), json={"title": "  Trimmed ", "tags": [" Home ", "home", "WORK"]}, headers=user.headers
    )
    assert (response.json()["title"], response.json()["tags"]) == ("Trimmed", ["home", "work"])


async def test_patch_sends_the_new_etag_and_increments_the_version(
    client: httpx.AsyncClient, user: User, task: dict[str, Any]
) -> None:
    response = await client.patch(task_url(task["id"]), json={"title": "New"}, headers=user.headers)
    assert response.json()["version"] == task["version"] + 1
    assert response.headers["etag"] == etag_of(task["version"] + 1)
    assert response.json()["updated_at"] > task["updated_at"]


async def test_patch_that_changes_nothing_keeps_the_version(
    client: httpx.AsyncClient, user: User, task: dict[str, Any], db: asyncpg.Connection
) -> None:
    before = await stored(db, task["id"])
    response = await client.patch(task_url(task["id"]), json={"title": task["title"]}, headers=user.headers)
    assert response.status_code == 200
    assert response.json() == task
    assert response.headers["etag"] == etag_of(task["version"])
    assert await stored(db, task["id"]) == before


async def test_patch_completed_true_sets_completed_at(
    client: httpx.AsyncClient, user: User, task: dict[str, Any]
) -> None:
    response = await client.patch(task_url(task["id"]), json={"completed": True}, headers=user.headers)
    assert response.json()["completed"] is True
    assert response.json()["completed_at"] is not None


INVALID_UPDATE_BODIES: dict[str, dict[str, Any]] = {
    "empty title": {"title": ""},
    "blank title": {"title": "   "},
    "title of 201 characters after trimming": {"title": "  " + "t" * 201},
    "description of 1001 characters": {"description": "d" * 1001},
    "21 tags": {"tags": [f"tag{i}" for i in range(21)]},
    "tag of 51 characters": {"tags": ["x" * 51]},
    "naive due_at": {"due_at": NAIVE_DUE},
    "completed as 0": {"completed": 0},
    "priority as a number": {"priority": 3},
    "unknown field": {"colour": "red"},
    "user_id": {"user_id": "someone"},
    "id": {"id": 7},
    "version": {"version": 9},
    "created_at": {"created_at": DUE},
    "completed_at": {"completed_at": DUE},
    "a valid field beside an unknown one": {"title": "Fine", "owner": "x"},
}


@pytest.mark.parametrize("body", INVALID_UPDATE_BODIES.values(), ids=INVALID_UPDATE_BODIES.keys())
async def test_patch_with_an_invalid_body_is_422_and_changes_nothing(
    client: httpx.AsyncClient, user: User, task: dict[str, Any], db: asyncpg.Connection, body: dict[str, Any]
) -> None:
    before = await stored(db, task["id"])
    assert_problem(await client.patch(task_url(task["id"]), json=body, headers=user.headers), 422)
    assert await stored(db, task["id"]) == before


# --- PATCH /tasks/{id}/complete ---------------------------------------------------------------------


def complete_url(task_id: int) -> str:
    return task_url(task_id) + "/complete"


async def test_complete_without_a_body_toggles_to_completed_and_sets_completed_at(
    client: httpx.AsyncClient, user: User, task: dict[str, Any], db: asyncpg.Connection
) -> None:
    response = await client.patch(complete_url(task["id"]), headers=user.headers)
    assert response.status_code == 200
    assert response.json()["completed"] is True
    assert response.json()["completed_at"] is not None
    row = await stored(db, task["id"])
    assert row is not None
    assert row["completed"] is True
    assert row["completed_at"] is not None


async def test_complete_toggled_twice_reopens_and_clears_completed_at(
    client: httpx.AsyncClient, user: User, task: dict[str, Any], db: asyncpg.Connection
) -> None:
    await client.patch(complete_url(task["id"]), headers=user.headers)
    response = await client.patch(complete_url(task["id"]), headers=user.headers)
    assert response.json()["completed"] is False
    assert response.json()["completed_at"] is None
    row = await stored(db, task["id"])
    assert row is not None
    assert (row["completed"], row["completed_at"]) == (False, None)


async def test_complete_with_an_empty_object_toggles(
    client: httpx.AsyncClient, user: User, task: dict[str, Any]
) -> None:
    response = await client.patch(complete_url(task["id"]), json={}, headers=user.headers)
    assert response.json()["completed"] is True


async def test_complete_true_twice_stays_completed_with_the_same_completed_at_and_version(
    client: httpx.AsyncClient, user: User, task: dict[str, Any]
) -> None:
    first = await client.patch(complete_url(task["id"]), json={"completed": True}, headers=user.headers)
    second = await client.patch(complete_url(task["id"]), json={"completed": True}, headers=user.headers)
    assert second.status_code == 200
    assert second.json()["completed"] is True
    assert second.json()["completed_at"] == first.json()["completed_at"]
    assert second.json()["version"] == first.json()["version"]
    assert second.headers["etag"] == first.headers["etag"]


async def test_complete_false_reopens_a_completed_task(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    task = await create_task(client, user, completed=True)
    response = await client.patch(complete_url(task["id"]), json={"completed": False}, headers=user.headers)
    assert (response.json()["completed"], response.json()["completed_at"]) == (False, None)
    row = await stored(db, task["id"])
    assert row is not None
    assert (row["completed"], row["completed_at"]) == (False, None)


async def test_complete_false_on_an_open_task_keeps_it_open(
    client: httpx.AsyncClient, user: User, task: dict[str, Any]
) -> None:
    response = await client.patch(complete_url(task["id"]), json={"completed": False}, headers=user.headers)
    assert response.json()["completed"] is False
    assert response.json()["version"] == task["version"]


async def test_complete_sends_the_new_etag_and_increments_the_version(
    client: httpx.AsyncClient, user: User, task: dict[str, Any]
) -> None:
    response = await client.patch(complete_url(task["id"]), headers=user.headers)
    assert response.json()["version"] == task["version"] + 1
    assert response.headers["etag"] == etag_of(task["version"] + 1)


async def test_editing_a_completed_task_keeps_its_completed_at(
    client: httpx.AsyncClient, user: User, task: dict[str, Any]
) -> None:
    completed = (await client.patch(complete_url(task["id"]), headers=user.headers)).json()
    response = await client.patch(task_url(task["id"]), json={"title": "Renamed"}, headers=user.headers)
    assert response.json()["completed_at"] == completed["completed_at"]


INVALID_COMPLETION_BODIES: dict[str, dict[str, Any]] = {
    "completed as 0": {"completed": 0},
    "completed as a string": {"completed": "yes"},
    "unknown field": {"done": True},
    "version": {"completed": True, "version": 3},
}


@pytest.mark.parametrize("body", INVALID_COMPLETION_BODIES.values(), ids=INVALID_COMPLETION_BODIES.keys())
async def test_complete_with_an_invalid_body_is_422_and_changes_nothing(
    client: httpx.AsyncClient, user: User, task: dict[str, Any], db: asyncpg.Connection, body: dict[str, Any]
) -> None:
    before = await stored(db, task["id"])
    assert_problem(await client.patch(complete_url(task["id"]), json=body, headers=user.headers), 422)
    assert await stored(db, task["id"]) == before


# --- DELETE /tasks/{id} -----------------------------------------------------------------------------


async def test_delete_is_204_with_an_empty_body_and_removes_the_row(
    client: httpx.AsyncClient, user: User, task: dict[str, Any], db: asyncpg.Connection
) -> None:
    response = await client.delete(task_url(task["id"]), headers=user.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert await stored(db, task["id"]) is None


async def test_delete_twice_is_404_the_second_time(client: httpx.AsyncClient, user: User, task: dict[str, Any]) -> None:
    await client.delete(task_url(task["id"]), headers=user.headers)
    assert_problem(await client.delete(task_url(task["id"]), headers=user.headers), 404, "task_not_found")


async def test_delete_removes_only_that_task(
    client: httpx.AsyncClient, user: User, task: dict[str, Any], db: asyncpg.Connection
) -> None:
    other = await create_task(client, user, title="Keep me")
    await client.delete(task_url(task["id"]), headers=user.headers)
    assert await count_tasks(db) == 1
    assert await stored(db, other["id"]) is not None


# --- versions and If-Match --------------------------------------------------------------------------


async def test_version_increments_by_one_on_each_change(client: httpx.AsyncClient, user: User) -> None:
    task = await create_task(client, user)
    url = task_url(task["id"])
    versions = [task["version"]]
    versions.append((await client.patch(url, json={"title": "Two"}, headers=user.headers)).json()["version"])
    versions.append((await client.put(url, json={"title": "Three"}, headers=user.headers)).json()["version"])
    versions.append((await client.patch(url + "/complete", headers=user.headers)).json()["version"])
    versions.append((await client.patch(url + "/complete", headers=user.headers)).json()["version"])
    assert versions == [1, 2, 3, 4, 5]


async def test_version_in_the_database_matches_the_etag(
    client: httpx.AsyncClient, user: User, task: dict[str, Any], db: asyncpg.Connection
) -> None:
    response = await client.patch(task_url(task["id"]), json={"title": "Two"}, headers=user.headers)
    row = await stored(db, task["id"])
    assert row is not None
    assert response.headers["etag"] == etag_of(row["version"])


WRITES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("PUT", "", {"title": "Replaced"}),
    ("PATCH", "", {"title": "Patched"}),
    ("PATCH", "/complete", None),
    ("DELETE", "", None),
]
WRITE_IDS = ["PUT", "PATCH", "PATCH complete", "DELETE"]


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES, ids=WRITE_IDS)
async def test_write_with_a_stale_if_match_is_412_with_the_current_etag_and_changes_nothing(
    client: httpx.AsyncClient,
    user: User,
    task: dict[str, Any],
    db: asyncpg.Connection,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    await client.patch(task_url(task["id"]), json={"title": "Moved on"}, headers=user.headers)
    before = await stored(db, task["id"])
    headers = {**user.headers, "If-Match": etag_of(task["version"])}
    response = await send(client, method, task_url(task["id"]) + suffix, body, headers)
    assert_problem(response, 412, "precondition_failed")
    assert response.headers["etag"] == etag_of(task["version"] + 1)
    assert await stored(db, task["id"]) == before


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES, ids=WRITE_IDS)
async def test_write_with_an_if_match_that_is_not_one_of_our_tags_is_412(
    client: httpx.AsyncClient,
    user: User,
    task: dict[str, Any],
    db: asyncpg.Connection,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    before = await stored(db, task["id"])
    headers = {**user.headers, "If-Match": '"not-a-version"'}
    response = await send(client, method, task_url(task["id"]) + suffix, body, headers)
    assert_problem(response, 412, "precondition_failed")
    assert response.headers["etag"] == etag_of(task["version"])
    assert await stored(db, task["id"]) == before


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES, ids=WRITE_IDS)
async def test_write_with_the_current_if_match_succeeds(
    client: httpx.AsyncClient,
    user: User,
    task: dict[str, Any],
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    headers = {**user.headers, "If-Match": etag_of(task["version"])}
    response = await send(client, method, task_url(task["id"]) + suffix, body, headers)
    assert response.status_code in {200, 204}, response.text


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES, ids=WRITE_IDS)
async def test_write_with_if_match_star_succeeds(
    client: httpx.AsyncClient,
    user: User,
    task: dict[str, Any],
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    await client.patch(task_url(task["id"]), json={"title": "Moved on"}, headers=user.headers)
    headers = {**user.headers, "If-Match": "*"}
    response = await send(client, method, task_url(task["id"]) + suffix, body, headers)
    assert response.status_code in {200, 204}, response.text


async def test_if_match_listing_the_current_etag_among_others_succeeds(
    client: httpx.AsyncClient, user: User, task: dict[str, Any]
) -> None:
    headers = {**user.headers, "If-Match": f'"7", {etag_of(task["version"])}'}
    response = await client.patch(task_url(task["id"]), json={"title": "New"}, headers=headers)
    assert response.status_code == 200


async def test_stale_if_match_etag_lets_the_client_retry_successfully(
    client: httpx.AsyncClient, user: User, task: dict[str, Any]
) -> None:
    await client.patch(task_url(task["id"]), json={"title": "Moved on"}, headers=user.headers)
    stale = await client.patch(
        task_url(task["id"]), json={"title": "Mine"}, headers={**user.headers, "If-Match": etag_of(task["version"])}
    )
    retry = await client.patch(
        task_url(task["id"]), json={"title": "Mine"}, headers={**user.headers, "If-Match": stale.headers["etag"]}
    )
    assert retry.status_code == 200
    assert retry.json()["title"] == "Mine"


async def test_if_match_on_an_unknown_task_is_404_not_412(client: httpx.AsyncClient, user: User) -> None:
    headers = {**user.headers, "If-Match": '"1"'}
    assert_problem(await client.patch(task_url(MISSING_ID), json={"title": "x"}, headers=headers), 404)


# --- 4xx raised by the database itself leave nothing behind -----------------------------------------

OUT_OF_RANGE_DUE = "9999-12-31T23:59:59-05:00"  # year 10000 in UTC: valid ISO 8601, beyond PostgreSQL


async def test_create_with_a_due_at_beyond_the_database_range_is_422_and_stores_neither_task_nor_key(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    response = await post_with_key(client, user, "key-1", {"title": "T", "due_at": OUT_OF_RANGE_DUE})
    assert_problem(response, 422, "invalid_value")
    assert await count_tasks(db) == 0
    assert await count_idempotency_keys(db) == 0


async def test_put_with_a_due_at_beyond_the_database_range_is_422_and_changes_nothing(
    client: httpx.AsyncClient, user: User, task: dict[str, Any], db: asyncpg.Connection
) -> None:
    before = await stored(db, task["id"])
    response = await client.put(
        task_url(task["id"]), json={"title": "T", "due_at": OUT_OF_RANGE_DUE}, headers=user.headers
    )
    assert_problem(response, 422, "invalid_value")
    assert await stored(db, task["id"]) == before
