"""Moving tasks (drag and drop) and bulk changes over HTTP on PostgreSQL."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.tasks_support import User, assert_problem, create_task, sign_up, task_url, tasks_url

BULK = f"{tasks_url()}/bulk"


@pytest.fixture
async def user(client: httpx.AsyncClient) -> User:
    return await sign_up(client)


async def titles_in_order(client: httpx.AsyncClient, user: User, **params: Any) -> list[str]:
    """The person's order of one list's top level (the Inbox's unless `list_id`), or of a parent's subtasks."""
    if "parent_id" not in params and "list_id" not in params:
        lists = (await client.get("/api/me/lists", headers=user.headers)).json()["data"]
        params["list_id"] = next(item["id"] for item in lists if item["is_inbox"])
    group = {} if "parent_id" in params else {"parent_id": "none"}
    response = await client.get(
        tasks_url(), params={"sort": "position", "limit": 100, **group, **params}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    return [task["title"] for task in response.json()["data"]]


async def versions(db: asyncpg.Connection, user: User) -> dict[int, int]:
    return {
        row["id"]: row["version"] for row in await db.fetch("SELECT id, version FROM tasks WHERE user_id = $1", user.id)
    }


async def move(client: httpx.AsyncClient, user: User, task: dict[str, Any], **body: Any) -> httpx.Response:
    return await client.post(f"{task_url(task['id'])}/move", json=body, headers=user.headers)


async def test_drag_and_drop_reorders_by_writing_one_row(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    a, b, c = [await create_task(client, user, title=title) for title in "ABC"]
    before = await versions(db, user)
    moved = await move(client, user, c, after_id=a["id"])
    assert moved.status_code == 200, moved.text
    assert moved.headers["ETag"] == '"2"'
    assert a["position"].encode() < moved.json()["position"].encode() < b["position"].encode()
    assert await titles_in_order(client, user) == ["A", "C", "B"]
    after = await versions(db, user)
    assert {task_id for task_id in after if after[task_id] != before[task_id]} == {c["id"]}
    assert (await move(client, user, a, before_id=b["id"])).status_code == 200  # between C and B now
    assert await titles_in_order(client, user) == ["C", "A", "B"]
    assert (await move(client, user, c)).status_code == 200  # no neighbour: the end
    assert await titles_in_order(client, user) == ["A", "B", "C"]


async def test_a_move_under_a_parent_and_back_to_the_top_level(client: httpx.AsyncClient, user: User) -> None:
    parent, child = await create_task(client, user, title="Parent"), await create_task(client, user, title="Child")
    under = await move(client, user, child, parent_id=parent["id"])
    assert under.json()["parent_id"] == parent["id"]
    assert await titles_in_order(client, user) == ["Parent"]
    assert await titles_in_order(client, user, parent_id=parent["id"]) == ["Child"]
    back = await move(client, user, child, parent_id=None)
    assert back.json()["parent_id"] is None
    assert await titles_in_order(client, user) == ["Parent", "Child"]


async def test_moving_to_another_list_takes_the_subtree(client: httpx.AsyncClient, user: User) -> None:
    work = (await client.post("/api/me/lists", json={"name": "Work"}, headers=user.headers)).json()
    parent = await create_task(client, user, title="Parent")
    child = await create_task(client, user, title="Child", parent_id=parent["id"])
    moved = await move(client, user, parent, list_id=work["id"])
    assert (moved.json()["list_id"], moved.json()["parent_id"]) == (work["id"], None)
    got = (await client.get(task_url(child["id"]), headers=user.headers)).json()
    assert (got["list_id"], got["parent_id"]) == (work["id"], parent["id"])
    assert await titles_in_order(client, user, list_id=work["id"]) == ["Parent"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"parent_id": "self"}, 422, "cycle"),
        ({"parent_id": "child"}, 422, "cycle"),
        ({"after_id": "self"}, 422, "invalid_move"),
        ({"after_id": "other_users"}, 404, "task_not_found"),
        ({"parent_id": "other_users"}, 404, "parent_not_found"),
        ({"list_id": "other_users_list"}, 404, "list_not_found"),
        ({"after_id": "child"}, 422, "cycle"),  # next to its own subtask: under itself
        ({"after_id": "loose", "parent_id": "child"}, 422, "not_a_sibling"),
        ({"before_id": "loose", "parent_id": "child"}, 422, "not_a_sibling"),
    ],
)
async def test_a_move_that_cannot_be_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection, body: dict[str, str], status: int, code: str
) -> None:
    task = await create_task(client, user, title="Task")
    child = await create_task(client, user, title="Child", parent_id=task["id"])
    other = await sign_up(client)
    theirs = await create_task(client, other, title="Theirs")
    loose = await create_task(client, user, title="Loose")
    ids = {
        "self": task["id"],
        "child": child["id"],
        "loose": loose["id"],
        "other_users": theirs["id"],
        "other_users_list": theirs["list_id"],
    }
    response = await move(client, user, task, **{name: ids[value] for name, value in body.items()})
    problem = assert_problem(response, status, code)
    if code == "not_a_sibling":  # the field a form highlights is the one the request sent
        sent = "after_id" if "after_id" in body else "before_id"
        assert [error["loc"] for error in problem["errors"]] == [["body", sent]]
    row = await db.fetchrow("SELECT list_id, parent_id, position, version FROM tasks WHERE id = $1", task["id"])
    assert row is not None
    assert dict(row) == {"list_id": task["list_id"], "parent_id": None, "position": task["position"], "version": 1}


async def test_a_move_past_four_levels_is_too_deep(client: httpx.AsyncClient, user: User) -> None:
    top = parent = await create_task(client, user, title="Level 1")
    for level in (2, 3):
        parent = await create_task(client, user, title=f"Level {level}", parent_id=parent["id"])
    pair = await create_task(client, user, title="Pair")
    await create_task(client, user, title="Pair's child", parent_id=pair["id"])
    assert_problem(await move(client, user, pair, parent_id=parent["id"]), 422, "too_deep")
    assert (await move(client, user, pair, parent_id=top["id"])).status_code == 200


async def test_a_move_is_conditional_on_if_match_and_refuses_both_neighbours(
    client: httpx.AsyncClient, user: User
) -> None:
    a, b = await create_task(client, user, title="A"), await create_task(client, user, title="B")
    stale = await client.post(
        f"{task_url(a['id'])}/move", json={"after_id": b["id"]}, headers={**user.headers, "If-Match": '"7"'}
    )
    assert_problem(stale, 412)
    both = assert_problem(await move(client, user, a, before_id=b["id"], after_id=b["id"]), 422)
    assert both["errors"], both


async def test_a_bulk_complete_of_a_hundred_tasks_answers_one_result_each(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    await db.execute(
        "INSERT INTO tasks (user_id, title, list_id, position) "
        "SELECT $1::text, 'Task ' || n, l.id, 'a' || lpad(n::text, 3, '0') FROM generate_series(1, 100) AS n, lists l "
        "WHERE l.user_id = $1::text AND l.is_inbox",
        user.id,
    )
    ids = [row["id"] for row in await db.fetch("SELECT id FROM tasks WHERE user_id = $1 ORDER BY id", user.id)]
    response = await client.post(BULK, json={"operations": [{"op": "complete", "task_ids": ids}]}, headers=user.headers)
    assert response.status_code == 200, response.text
    assert response.json()["applied"] is True
    assert [(r["task_id"], r["op"], r["code"]) for r in response.json()["results"]] == [
        (i, "complete", "ok") for i in ids
    ]
    assert (
        await db.fetchval("SELECT count(*) FROM tasks WHERE user_id = $1 AND completed AND version = 2", user.id) == 100
    )
    too_many = {"operations": [{"op": "reopen", "task_ids": ids}, {"op": "complete", "task_ids": ids[:1]}]}
    assert_problem(await client.post(BULK, json=too_many, headers=user.headers), 422, "too_many_tasks")
    over = {"operations": [{"op": "reopen", "task_ids": [*ids, 10**12]}]}
    assert assert_problem(await client.post(BULK, json=over, headers=user.headers), 422)["errors"]


async def test_an_atomic_bulk_with_a_failure_writes_nothing_and_names_it(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    mine = await create_task(client, user, title="Mine")
    theirs = await create_task(client, await sign_up(client), title="Theirs")
    body = {"operations": [{"op": "complete", "task_ids": [mine["id"], theirs["id"]]}]}
    problem = assert_problem(await client.post(BULK, json=body, headers=user.headers), 422, "bulk_not_applied")
    assert [(r["task_id"], r["code"]) for r in problem["results"]] == [
        (mine["id"], "ok"),
        (theirs["id"], "task_not_found"),
    ]
    assert await db.fetchval("SELECT completed FROM tasks WHERE id = $1", mine["id"]) is False
    assert await db.fetchval("SELECT completed FROM tasks WHERE id = $1", theirs["id"]) is False
    partial = await client.post(BULK, json={**body, "atomic": False}, headers=user.headers)
    assert partial.status_code == 200, partial.text
    assert [r["code"] for r in partial.json()["results"]] == ["ok", "task_not_found"]
    assert await db.fetchval("SELECT completed FROM tasks WHERE id = $1", mine["id"]) is True


async def test_bulk_update_move_and_delete(client: httpx.AsyncClient, user: User, db: asyncpg.Connection) -> None:
    work = (await client.post("/api/me/lists", json={"name": "Work"}, headers=user.headers)).json()
    a = await create_task(client, user, title="A", tags=["home", "old"])
    b = await create_task(client, user, title="B")
    child = await create_task(client, user, title="B's child", parent_id=b["id"])
    gone = await create_task(client, user, title="Gone")
    body = {
        "operations": [
            {"op": "update", "task_ids": [a["id"], b["id"]], "priority": "high", "add_tags": ["work"],
             "remove_tags": ["OLD"], "due_at": "2026-12-24T17:00:00+01:00"},
            {"op": "move", "task_ids": [b["id"], a["id"]], "list_id": work["id"]},
            {"op": "delete", "task_ids": [gone["id"]]},
        ]
    }  # fmt: skip
    response = await client.post(BULK, json=body, headers=user.headers)
    assert response.status_code == 200, response.text
    assert all(result["code"] == "ok" for result in response.json()["results"])
    got = {task["title"]: task for task in (await client.get(tasks_url(), headers=user.headers)).json()["data"]}
    assert sorted(got) == ["A", "B", "B's child"]
    assert (got["A"]["priority"], got["A"]["tags"], got["A"]["due_at"]) == (
        "high",
        ["home", "work"],
        "2026-12-24T16:00:00Z",
    )
    assert {got[title]["list_id"] for title in got} == {work["id"]}
    assert await titles_in_order(client, user, list_id=work["id"]) == ["B", "A"]
    cleared = await client.post(
        BULK, json={"operations": [{"op": "update", "task_ids": [a["id"]], "due_at": None}]}, headers=user.headers
    )
    assert cleared.status_code == 200, cleared.text
    assert (await client.get(task_url(a["id"]), headers=user.headers)).json()["due_at"] is None
    assert child["id"] in [row["id"] for row in await db.fetch("SELECT id FROM tasks WHERE list_id = $1", work["id"])]


@pytest.mark.parametrize(
    "body",
    [
        {"operations": []},
        {"operations": [{"op": "archive", "task_ids": [1]}]},
        {"operations": [{"op": "move", "task_ids": [1]}]},
        {"operations": [{"op": "complete", "task_ids": []}]},
        {"operations": [{"op": "complete", "task_ids": [0]}]},
        {"operations": [{"op": "complete", "task_ids": [1], "priority": "high"}]},
        {"operations": [{"op": "update", "task_ids": [1], "priority": "urgent"}]},
        {"operations": [{"op": "complete", "task_ids": [1]}], "atomic": "yes"},
    ],
)
async def test_a_malformed_bulk_is_a_422_with_field_errors(
    client: httpx.AsyncClient, user: User, body: dict[str, Any]
) -> None:
    assert assert_problem(await client.post(BULK, json=body, headers=user.headers), 422)["errors"]


async def test_a_bulk_retried_with_its_idempotency_key_answers_the_first_results_and_changes_nothing(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    task = await create_task(client, user)
    body = {"operations": [{"op": "complete", "task_ids": [task["id"]]}]}
    headers = {**user.headers, "Idempotency-Key": "bulk-1"}
    first = await client.post(BULK, json=body, headers=headers)
    assert first.status_code == 200, first.text
    await client.patch(f"{task_url(task['id'])}/complete", json={"completed": False}, headers=user.headers)
    again = await client.post(BULK, json=body, headers=headers)
    assert (again.status_code, again.json(), again.headers["Idempotent-Replayed"]) == (200, first.json(), "true")
    assert await db.fetchval("SELECT completed FROM tasks WHERE id = $1", task["id"]) is False
    other_body = {"operations": [{"op": "reopen", "task_ids": [task["id"]]}]}
    assert_problem(await client.post(BULK, json=other_body, headers=headers), 422, "idempotency_key_reused")
    create = await client.post(tasks_url(), json={"title": "x"}, headers=headers)
    assert_problem(create, 422, "idempotency_key_reused")


async def test_a_failed_atomic_bulk_leaves_its_key_free(client: httpx.AsyncClient, user: User) -> None:
    task = await create_task(client, user)
    headers = {**user.headers, "Idempotency-Key": "bulk-2"}
    failing = {"operations": [{"op": "complete", "task_ids": [task["id"], task["id"] + 1000]}]}
    assert_problem(await client.post(BULK, json=failing, headers=headers), 422, "bulk_not_applied")
    fixed = {"operations": [{"op": "complete", "task_ids": [task["id"]]}]}
    assert (await client.post(BULK, json=fixed, headers=headers)).status_code == 200


async def test_a_non_atomic_bulk_where_no_task_can_change_is_a_422_too(client: httpx.AsyncClient, user: User) -> None:
    body = {"operations": [{"op": "complete", "task_ids": [10**9, 10**9 + 1]}], "atomic": False}
    problem = assert_problem(await client.post(BULK, json=body, headers=user.headers), 422, "bulk_not_applied")
    assert [r["code"] for r in problem["results"]] == ["task_not_found", "task_not_found"]


async def test_a_bulk_move_to_the_tasks_own_list_puts_them_at_the_end_of_its_top_level(
    client: httpx.AsyncClient, user: User
) -> None:
    a, b = await create_task(client, user, title="A"), await create_task(client, user, title="B")
    child = await create_task(client, user, title="Child", parent_id=b["id"])
    await create_task(client, user, title="C")
    body = {"operations": [{"op": "move", "task_ids": [a["id"], child["id"]], "list_id": a["list_id"]}]}
    response = await client.post(BULK, json=body, headers=user.headers)
    assert response.status_code == 200, response.text
    assert await titles_in_order(client, user) == ["B", "C", "A", "Child"]
    update = {"operations": [{"op": "update", "task_ids": [b["id"]], "list_id": b["list_id"]}]}
    assert (await client.post(BULK, json=update, headers=user.headers)).status_code == 200
    assert await titles_in_order(client, user) == ["B", "C", "A", "Child"]  # update: same list, no move


async def test_a_204_has_no_body_and_no_content_type(client: httpx.AsyncClient, user: User) -> None:
    task = await create_task(client, user)
    work = (await client.post("/api/me/lists", json={"name": "Work"}, headers=user.headers)).json()
    answers = [
        await client.delete(task_url(task["id"]), headers=user.headers),
        await client.delete(f"/api/me/lists/{work['id']}", headers=user.headers),
        await client.post("/api/auth/logout", json={}, headers=user.headers),
    ]
    for response in answers:
        assert (response.status_code, response.content, response.headers.get("content-type")) == (204, b"", None)
