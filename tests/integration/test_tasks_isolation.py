"""Two users, every task route: Bob never reads, changes or learns of the existence of Alice's tasks.

Bob gets the very same 404 for Alice's task ids as for ids that do not exist, 403 for Alice's user id
in the path, never sees her tasks in a list, and her rows are byte-for-byte unchanged afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.tasks_support import User, assert_problem, create_task, sign_up, task_url, tasks_url

ABSENT_ID = 987_654_321


@dataclass(frozen=True)
class Pair:
    alice: User
    bob: User
    alices_task: dict[str, Any]
    alices_rows: list[dict[str, Any]]


async def all_rows_of(db: asyncpg.Connection, user_id: str) -> list[dict[str, Any]]:
    return [dict(row) for row in await db.fetch("SELECT * FROM tasks WHERE user_id = $1 ORDER BY id", user_id)]


@pytest.fixture
async def pair(client: httpx.AsyncClient, db: asyncpg.Connection) -> Pair:
    alice = await sign_up(client, "alice@example.com")
    bob = await sign_up(client, "bob@example.com")
    alices_task = await create_task(
        client,
        alice,
        title="Alice's secret plan",
        description="Nobody else may read this",
        priority="high",
        tags=["secret"],
        due_at="2026-12-01T17:00:00Z",
    )
    await create_task(client, alice, title="Alice's second task", tags=["secret"], completed=True)
    await create_task(client, bob, title="Bob's own task")
    return Pair(alice, bob, alices_task, await all_rows_of(db, alice.id))


# (method, path suffix after /tasks/{id}, JSON body) for every route on one task.
TASK_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "", None),
    ("PUT", "", {"title": "Bob was here"}),
    ("PATCH", "", {"title": "Bob was here"}),
    ("PATCH", "", {"description": None, "due_at": None}),
    ("PATCH", "/complete", None),
    ("PATCH", "/complete", {"completed": False}),
    ("DELETE", "", None),
]
TASK_ROUTE_IDS = [
    "GET",
    "PUT",
    "PATCH title",
    "PATCH clearing fields",
    "PATCH complete toggle",
    "PATCH complete set",
    "DELETE",
]


def id_free(problem: dict[str, Any], task_id: int) -> dict[str, Any]:
    """The problem body with what legitimately differs between two requests (the id asked for, the
    request id, the path) masked, so a 404 for Alice's task can be compared with one for no task."""
    masked = {key: value for key, value in problem.items() if key not in ("request_id", "instance")}
    masked["detail"] = re.sub(rf"\b{task_id}\b", "<id>", problem["detail"])
    return masked


async def send(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    headers: dict[str, str],
) -> httpx.Response:
    return await client.request(method, path, json=body, headers=headers)


# --- Bob on Alice's task ids: 404, the same as for no task at all -----------------------------------


@pytest.mark.parametrize(("method", "suffix", "body"), TASK_ROUTES, ids=TASK_ROUTE_IDS)
async def test_bob_gets_404_for_alices_task(
    client: httpx.AsyncClient, pair: Pair, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    response = await send(client, method, task_url(pair.alices_task["id"]) + suffix, body, pair.bob.headers)
    assert_problem(response, 404, "task_not_found")
    assert "etag" not in response.headers


@pytest.mark.parametrize(("method", "suffix", "body"), TASK_ROUTES, ids=TASK_ROUTE_IDS)
async def test_bobs_404_for_alices_task_is_indistinguishable_from_a_missing_task(
    client: httpx.AsyncClient, pair: Pair, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    alices_id = pair.alices_task["id"]
    for_alices = await send(client, method, task_url(alices_id) + suffix, body, pair.bob.headers)
    for_absent = await send(client, method, task_url(ABSENT_ID) + suffix, body, pair.bob.headers)
    assert for_alices.status_code == for_absent.status_code == 404
    assert for_alices.headers["content-type"] == for_absent.headers["content-type"]
    assert id_free(for_alices.json(), alices_id) == id_free(for_absent.json(), ABSENT_ID)
    assert set(for_alices.headers.keys()) - {"x-request-id"} == set(for_absent.headers.keys()) - {"x-request-id"}


@pytest.mark.parametrize(("method", "suffix", "body"), TASK_ROUTES, ids=TASK_ROUTE_IDS)
async def test_bob_on_alices_task_leaves_alices_rows_unchanged(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    pair: Pair,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    await send(client, method, task_url(pair.alices_task["id"]) + suffix, body, pair.bob.headers)
    assert await all_rows_of(db, pair.alice.id) == pair.alices_rows


@pytest.mark.parametrize(("method", "suffix", "body"), TASK_ROUTES, ids=TASK_ROUTE_IDS)
async def test_bob_with_alices_etag_in_if_match_still_gets_404_not_412(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    pair: Pair,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    headers = {**pair.bob.headers, "If-Match": '"999"'}
    response = await send(client, method, task_url(pair.alices_task["id"]) + suffix, body, headers)
    assert_problem(response, 404, "task_not_found")
    assert "etag" not in response.headers
    assert await all_rows_of(db, pair.alice.id) == pair.alices_rows


@pytest.mark.parametrize(("method", "suffix", "body"), TASK_ROUTES, ids=TASK_ROUTE_IDS)
async def test_bob_with_if_match_star_on_alices_task_gets_404(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    pair: Pair,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    headers = {**pair.bob.headers, "If-Match": "*"}
    response = await send(client, method, task_url(pair.alices_task["id"]) + suffix, body, headers)
    assert_problem(response, 404, "task_not_found")
    assert await all_rows_of(db, pair.alice.id) == pair.alices_rows


@pytest.mark.parametrize("if_none_match", ['"1"', "*"])
async def test_bob_with_if_none_match_on_alices_task_gets_404_not_304(
    client: httpx.AsyncClient, pair: Pair, if_none_match: str
) -> None:
    headers = {**pair.bob.headers, "If-None-Match": if_none_match}
    response = await client.get(task_url(pair.alices_task["id"]), headers=headers)
    assert_problem(response, 404, "task_not_found")


@pytest.mark.parametrize(("method", "suffix", "body"), TASK_ROUTES, ids=TASK_ROUTE_IDS)
async def test_bob_on_alices_task_through_his_own_user_id_gets_404(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    pair: Pair,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    path = task_url(pair.alices_task["id"], pair.bob) + suffix
    assert_problem(await send(client, method, path, body, pair.bob.headers), 404, "task_not_found")
    assert await all_rows_of(db, pair.alice.id) == pair.alices_rows


async def test_bobs_invalid_body_on_alices_task_reveals_nothing_beyond_a_missing_task(
    client: httpx.AsyncClient, pair: Pair
) -> None:
    """Validation answers before the lookup, so it is the same for Alice's id and an absent one."""
    body = {"title": "", "user_id": pair.bob.id}
    for_alices = await client.patch(task_url(pair.alices_task["id"]), json=body, headers=pair.bob.headers)
    for_absent = await client.patch(task_url(ABSENT_ID), json=body, headers=pair.bob.headers)
    assert_problem(for_alices, 422)
    assert for_alices.json()["errors"] == for_absent.json()["errors"]


# --- Alice's user id in Bob's path: 403 -------------------------------------------------------------

ALL_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "", None),
    ("POST", "", {"title": "Planted by Bob"}),
    *[(method, "/{id}" + suffix, body) for method, suffix, body in TASK_ROUTES],
]
ALL_ROUTE_IDS = ["GET list", "POST", *TASK_ROUTE_IDS]


@pytest.mark.parametrize(("method", "suffix", "body"), ALL_ROUTES, ids=ALL_ROUTE_IDS)
async def test_bob_with_alices_user_id_in_the_path_gets_403_and_changes_nothing(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    pair: Pair,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    path = tasks_url(pair.alice) + suffix.format(id=pair.alices_task["id"])
    response = await send(client, method, path, body, pair.bob.headers)
    problem = assert_problem(response, 403, "not_your_tasks")
    assert "Alice" not in response.text
    assert "secret" not in response.text
    assert problem["detail"] == "You can only reach your own tasks."
    assert await all_rows_of(db, pair.alice.id) == pair.alices_rows
    assert await db.fetchval("SELECT count(*) FROM tasks") == len(pair.alices_rows) + 1


@pytest.mark.parametrize(("method", "suffix", "body"), TASK_ROUTES, ids=TASK_ROUTE_IDS)
async def test_bobs_403_on_alices_path_is_the_same_for_her_task_and_a_missing_one(
    client: httpx.AsyncClient, pair: Pair, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    for_alices = await send(
        client, method, task_url(pair.alices_task["id"], pair.alice) + suffix, body, pair.bob.headers
    )
    for_absent = await send(client, method, task_url(ABSENT_ID, pair.alice) + suffix, body, pair.bob.headers)
    assert for_alices.status_code == for_absent.status_code == 403
    assert id_free(for_alices.json(), pair.alices_task["id"]) == id_free(for_absent.json(), ABSENT_ID)


async def test_bob_cannot_create_a_task_for_alice_through_her_path(
    client: httpx.AsyncClient, db: asyncpg.Connection, pair: Pair
) -> None:
    response = await client.post(tasks_url(pair.alice), json={"title": "Planted"}, headers=pair.bob.headers)
    assert_problem(response, 403, "not_your_tasks")
    assert await db.fetchval("SELECT count(*) FROM tasks WHERE title = 'Planted'") == 0


async def test_bob_cannot_create_a_task_for_alice_by_naming_her_in_the_body(
    client: httpx.AsyncClient, db: asyncpg.Connection, pair: Pair
) -> None:
    body = {"title": "Planted", "user_id": pair.alice.id}
    assert_problem(await client.post(tasks_url(), json=body, headers=pair.bob.headers), 422)
    assert await db.fetchval("SELECT count(*) FROM tasks WHERE title = 'Planted'") == 0


async def test_bobs_new_task_belongs_to_bob(client: httpx.AsyncClient, db: asyncpg.Connection, pair: Pair) -> None:
    task = await create_task(client, pair.bob, title="Mine")
    assert await db.fetchval("SELECT user_id FROM tasks WHERE id = $1", task["id"]) == pair.bob.id


# --- lists ------------------------------------------------------------------------------------------


async def list_titles(client: httpx.AsyncClient, user: User, **params: str) -> list[str]:
    response = await client.get(tasks_url(), params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    return [task["title"] for task in response.json()["data"]]


async def test_bobs_list_holds_only_his_tasks(client: httpx.AsyncClient, pair: Pair) -> None:
    assert await list_titles(client, pair.bob) == ["Bob's own task"]


async def test_bobs_list_total_counts_only_his_tasks(client: httpx.AsyncClient, pair: Pair) -> None:
    response = await client.get(tasks_url(), params={"include_total": "true"}, headers=pair.bob.headers)
    assert response.json()["meta"]["total"] == 1


@pytest.mark.parametrize(
    "params",
    [
        {"q": "secret plan"},
        {"q": "Nobody else"},
        {"tag": "secret"},
        {"priority": "high"},
        {"status": "completed"},
        {"due_before": "2030-01-01T00:00:00Z"},
        {"sort": "title", "limit": "100"},
        {"sort": "-due_at"},
    ],
    ids=["title search", "description search", "tag", "priority", "completed", "due_before", "by title", "by due"],
)
async def test_bobs_filtered_list_never_holds_alices_tasks(
    client: httpx.AsyncClient, pair: Pair, params: dict[str, str]
) -> None:
    assert not [title for title in await list_titles(client, pair.bob, **params) if title.startswith("Alice")]


async def test_bobs_list_through_his_own_user_id_holds_only_his_tasks(client: httpx.AsyncClient, pair: Pair) -> None:
    response = await client.get(tasks_url(pair.bob), headers=pair.bob.headers)
    assert [task["title"] for task in response.json()["data"]] == ["Bob's own task"]


async def test_alices_list_does_not_hold_bobs_tasks(client: httpx.AsyncClient, pair: Pair) -> None:
    assert sorted(await list_titles(client, pair.alice)) == ["Alice's second task", "Alice's secret plan"]


async def test_bob_paging_with_small_pages_never_reaches_alices_tasks(client: httpx.AsyncClient, pair: Pair) -> None:
    for number in range(3):
        await create_task(client, pair.bob, title=f"Bob {number}")
    seen: list[str] = []
    params: dict[str, str] = {"limit": "1"}
    for _ in range(10):
        response = await client.get(tasks_url(), params=params, headers=pair.bob.headers)
        seen += [task["title"] for task in response.json()["data"]]
        cursor = response.json()["meta"]["next_cursor"]
        if cursor is None:
            break
        params = {"limit": "1", "cursor": cursor}
    assert sorted(seen) == ["Bob 0", "Bob 1", "Bob 2", "Bob's own task"]


# --- Alice is unaffected ----------------------------------------------------------------------------


async def test_alice_still_reads_her_task_unchanged_after_bobs_attempts(client: httpx.AsyncClient, pair: Pair) -> None:
    task_id = pair.alices_task["id"]
    for method, suffix, body in TASK_ROUTES:
        await send(client, method, task_url(task_id) + suffix, body, pair.bob.headers)
        await send(client, method, task_url(task_id, pair.alice) + suffix, body, pair.bob.headers)
    response = await client.get(task_url(task_id), headers=pair.alice.headers)
    assert response.status_code == 200
    assert response.json() == pair.alices_task
    assert response.headers["etag"] == '"1"'


# --- Idempotency keys are per user ------------------------------------------------------------------


async def test_bob_reusing_alices_idempotency_key_gets_his_own_new_task(
    client: httpx.AsyncClient, db: asyncpg.Connection, pair: Pair
) -> None:
    body = {"title": "Same body"}
    alices = await client.post(tasks_url(), json=body, headers={**pair.alice.headers, "Idempotency-Key": "shared"})
    bobs = await client.post(tasks_url(), json=body, headers={**pair.bob.headers, "Idempotency-Key": "shared"})
    assert bobs.status_code == 201
    assert "idempotent-replayed" not in bobs.headers
    assert bobs.json()["id"] != alices.json()["id"]
    assert await db.fetchval("SELECT user_id FROM tasks WHERE id = $1", bobs.json()["id"]) == pair.bob.id
    assert await db.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = 'shared'") == 2


async def test_bob_reusing_alices_idempotency_key_with_another_body_is_not_refused(
    client: httpx.AsyncClient, pair: Pair
) -> None:
    await client.post(tasks_url(), json={"title": "Alice's"}, headers={**pair.alice.headers, "Idempotency-Key": "k"})
    bobs = await client.post(tasks_url(), json={"title": "Bob's"}, headers={**pair.bob.headers, "Idempotency-Key": "k"})
    assert bobs.status_code == 201
    assert bobs.json()["title"] == "Bob's"


async def test_alices_replay_still_answers_her_task_after_bob_used_the_same_key(
    client: httpx.AsyncClient, pair: Pair
) -> None:
    body = {"title": "Same body"}
    alices = await client.post(tasks_url(), json=body, headers={**pair.alice.headers, "Idempotency-Key": "shared"})
    await client.post(tasks_url(), json=body, headers={**pair.bob.headers, "Idempotency-Key": "shared"})
    replay = await client.post(tasks_url(), json=body, headers={**pair.alice.headers, "Idempotency-Key": "shared"})
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == alices.json()
