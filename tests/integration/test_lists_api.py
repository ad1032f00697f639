"""/api/{user_id}/lists over HTTP on PostgreSQL: what an SPA's sidebar does with lists."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.tasks_support import User, assert_problem, create_task, sign_up, tasks_url
from tests.ordering_support import crowded_after
from todo_api.domain.ordering import MAX_KEY_CHARS


def lists_url(user: User | str = "me") -> str:
    return f"/api/{user.id if isinstance(user, User) else user}/lists"


@pytest.fixture
async def user(client: httpx.AsyncClient) -> User:
    return await sign_up(client)


async def create_list(client: httpx.AsyncClient, user: User, **fields: Any) -> dict[str, Any]:
    response = await client.post(lists_url(), json={"name": "Work", **fields}, headers=user.headers)
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"{lists_url(user)}/{response.json()['id']}"
    assert response.headers["ETag"] == f'"{response.json()["version"]}.0.0"'
    created: dict[str, Any] = response.json()
    return created


async def all_lists(client: httpx.AsyncClient, user: User, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(lists_url(), params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def test_a_new_user_has_an_inbox_and_new_lists_come_after_it(client: httpx.AsyncClient, user: User) -> None:
    work = await create_list(client, user, name="  Work  ", color="#3B82F6")
    home = await create_list(client, user, name="Home", color="green")
    lists = await all_lists(client, user)
    assert [(item["name"], item["is_inbox"], item["color"]) for item in lists] == [
        ("Inbox", True, None),
        ("Work", False, "#3b82f6"),
        ("Home", False, "green"),
    ]
    assert [item["id"] for item in lists[1:]] == [work["id"], home["id"]]
    assert work["open_count"] == work["total_count"] == 0


async def test_counts_are_open_and_total_tasks_subtasks_included(client: httpx.AsyncClient, user: User) -> None:
    work = await create_list(client, user)
    parent = await create_task(client, user, title="Report", list_id=work["id"])
    await create_task(client, user, title="Outline", parent_id=parent["id"])
    await create_task(client, user, title="Done", list_id=work["id"], completed=True)
    got = await client.get(f"{lists_url()}/{work['id']}", headers=user.headers)
    assert (got.json()["open_count"], got.json()["total_count"]) == (2, 3)
    listed = {item["id"]: item for item in await all_lists(client, user)}
    assert (listed[work["id"]]["open_count"], listed[work["id"]]["total_count"]) == (2, 3)


async def test_a_name_taken_in_any_case_is_a_409(client: httpx.AsyncClient, user: User) -> None:
    await create_list(client, user, name="Work")
    response = await client.post(lists_url(), json={"name": "wORK"}, headers=user.headers)
    assert_problem(response, 409, "list_name_taken")
    other = await sign_up(client)
    await create_list(client, other, name="Work")  # another person's names are theirs


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 101}, {"name": "Work", "color": "pink"},
     {"name": "Work", "color": "#12345"}, {"name": "Work", "color": 3}, {"name": "Work", "is_inbox": True},
     {"name": "Work", "position": "a0"}],
)  # fmt: skip
async def test_a_bad_list_is_a_422_naming_the_field(
    client: httpx.AsyncClient, user: User, body: dict[str, Any], db: asyncpg.Connection
) -> None:
    problem = assert_problem(await client.post(lists_url(), json=body, headers=user.headers), 422)
    assert problem["errors"], problem
    assert await db.fetchval("SELECT count(*) FROM lists WHERE user_id = $1", user.id) == 1


async def test_a_thousand_lists_at_most(client: httpx.AsyncClient, user: User, db: asyncpg.Connection) -> None:
    await db.execute(
        "INSERT INTO lists (user_id, name, position) SELECT $1, 'List ' || n, 'b' || lpad(n::text, 4, '0') "
        "FROM generate_series(1, 999) AS n",
        user.id,
    )
    assert_problem(
        await client.post(lists_url(), json={"name": "One more"}, headers=user.headers), 422, "too_many_lists"
    )


async def test_lists_page_with_signed_cursors_and_a_link(client: httpx.AsyncClient, user: User) -> None:
    for n in range(4):
        await create_list(client, user, name=f"List {n}")
    seen: list[str] = []
    url, params = lists_url(), {"limit": 2}
    while True:
        response = await client.get(url, params=params, headers=user.headers)
        assert response.status_code == 200, response.text
        seen += [item["name"] for item in response.json()["data"]]
        cursor = response.json()["meta"]["next_cursor"]
        if cursor is None:
            assert "Link" not in response.headers
            break
        assert response.headers["Link"].endswith('>; rel="next"')
        params = {"limit": 2, "cursor": cursor}
    assert seen == ["Inbox", "List 0", "List 1", "List 2", "List 3"]
    await create_task(client, user)
    await create_task(client, user)
    task_cursor = (await client.get(tasks_url(), params={"limit": 1}, headers=user.headers)).json()["meta"]
    bad = await client.get(lists_url(), params={"cursor": task_cursor["next_cursor"]}, headers=user.headers)
    assert_problem(bad, 400, "invalid_cursor")


async def test_rename_and_recolour_with_etags(client: httpx.AsyncClient, user: User) -> None:
    work = await create_list(client, user, color="red")
    url = f"{lists_url()}/{work['id']}"
    assert (await client.get(url, headers={**user.headers, "If-None-Match": '"1.0.0"'})).status_code == 304
    renamed = await client.patch(url, json={"name": "Job"}, headers={**user.headers, "If-Match": '"1.0.0"'})
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["color"], renamed.headers["ETag"]) == ("Job", "red", '"2.0.0"')
    stale = await client.patch(url, json={"color": None}, headers={**user.headers, "If-Match": '"1.0.0"'})
    assert_problem(stale, 412)
    assert stale.headers["ETag"] == '"2"'
    cleared = await client.patch(url, json={"color": None}, headers=user.headers)
    assert (cleared.json()["color"], cleared.json()["version"]) == (None, 3)
    assert_problem(await client.patch(url, json={"name": None}, headers=user.headers), 422, "null_not_allowed")


async def test_a_cached_list_is_not_fresh_once_its_tasks_change_though_its_version_did_not(
    client: httpx.AsyncClient, user: User
) -> None:
    work = await create_list(client, user)
    url = f"{lists_url()}/{work['id']}"
    cached = await client.get(url, headers=user.headers)
    assert cached.headers["ETag"] == '"1.0.0"'
    task = await create_task(client, user, list_id=work["id"])
    fresh = await client.get(url, headers={**user.headers, "If-None-Match": cached.headers["ETag"]})
    assert (fresh.status_code, fresh.headers["ETag"], fresh.json()["open_count"]) == (200, '"1.1.1"', 1)
    await client.patch(f"{tasks_url()}/{task['id']}/complete", headers=user.headers)
    done = await client.get(url, headers={**user.headers, "If-None-Match": fresh.headers["ETag"]})
    assert (done.status_code, done.headers["ETag"]) == (200, '"1.0.1"')
    unchanged = await client.get(url, headers={**user.headers, "If-None-Match": 'W/"1.0.1"'})
    assert (unchanged.status_code, unchanged.headers["ETag"]) == (304, '"1.0.1"')
    # A write's precondition compares the version: the counts are not the client's to change.
    renamed = await client.patch(
        url, json={"name": "Job"}, headers={**user.headers, "If-Match": cached.headers["ETag"]}
    )
    assert renamed.status_code == 200, renamed.text


async def test_the_inbox_can_be_renamed_but_not_deleted(client: httpx.AsyncClient, user: User) -> None:
    inbox = (await all_lists(client, user))[0]
    url = f"{lists_url()}/{inbox['id']}"
    renamed = await client.patch(url, json={"name": "Unsorted"}, headers=user.headers)
    assert (renamed.json()["name"], renamed.json()["is_inbox"]) == ("Unsorted", True)
    assert_problem(
        await client.delete(url, params={"cascade": "true"}, headers=user.headers), 409, "inbox_not_deletable"
    )
    assert (await create_task(client, user))["list_id"] == inbox["id"]


async def test_deleting_a_list_with_tasks_needs_cascade_which_takes_them_along(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    work = await create_list(client, user)
    parent = await create_task(client, user, list_id=work["id"])
    await create_task(client, user, parent_id=parent["id"])
    kept = await create_task(client, user)
    url = f"{lists_url()}/{work['id']}"
    assert_problem(await client.delete(url, headers=user.headers), 409, "list_not_empty")
    assert await db.fetchval("SELECT count(*) FROM tasks WHERE list_id = $1", work["id"]) == 2
    assert_problem(
        await client.delete(url, params={"cascade": "true"}, headers={**user.headers, "If-Match": '"9"'}), 412
    )
    assert (await client.delete(url, params={"cascade": "true"}, headers=user.headers)).status_code == 204
    assert await db.fetchval("SELECT count(*) FROM tasks WHERE list_id = $1", work["id"]) == 0
    assert await db.fetchval("SELECT count(*) FROM tasks WHERE user_id = $1", user.id) == 1
    assert_problem(await client.get(url, headers=user.headers), 404, "list_not_found")
    assert (await client.get(f"{tasks_url()}/{kept['id']}", headers=user.headers)).status_code == 200
    empty = await create_list(client, user, name="Empty")
    assert (await client.delete(f"{lists_url()}/{empty['id']}", headers=user.headers)).status_code == 204


async def test_another_users_list_is_not_found_and_their_path_is_forbidden(
    client: httpx.AsyncClient, user: User
) -> None:
    other = await sign_up(client)
    theirs = await create_list(client, other, name="Secret")
    url = f"{lists_url()}/{theirs['id']}"
    assert_problem(await client.get(url, headers=user.headers), 404, "list_not_found")
    assert_problem(await client.patch(url, json={"name": "Mine"}, headers=user.headers), 404, "list_not_found")
    assert_problem(await client.delete(url, params={"cascade": "true"}, headers=user.headers), 404, "list_not_found")
    assert_problem(await client.get(lists_url(other), headers=user.headers), 403)
    assert_problem(await client.get(lists_url()), 401)
    assert (await client.get(url, headers=other.headers)).json()["name"] == "Secret"


async def test_tasks_filter_by_list(client: httpx.AsyncClient, user: User) -> None:
    work = await create_list(client, user)
    await create_task(client, user, title="At work", list_id=work["id"])
    await create_task(client, user, title="Anywhere")
    response = await client.get(tasks_url(), params={"list_id": work["id"]}, headers=user.headers)
    assert [task["title"] for task in response.json()["data"]] == ["At work"]


async def test_lists_reorder_by_moving_one_and_a_crowded_gap_is_rebalanced(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    inbox = (await all_lists(client, user))[0]
    a, b, c = [await create_list(client, user, name=name) for name in "ABC"]
    moved = await client.post(f"{lists_url()}/{c['id']}/move", json={"before_id": a["id"]}, headers=user.headers)
    assert moved.status_code == 200, moved.text
    assert (moved.json()["version"], moved.headers["ETag"]) == (2, '"2.0.0"')
    assert [item["name"] for item in await all_lists(client, user)] == ["Inbox", "C", "A", "B"]
    assert await db.fetchval("SELECT max(version) FROM lists WHERE user_id = $1 AND id <> $2", user.id, c["id"]) == 1
    # A and B as ~370 moves into one gap leave them: the next key between them would be too long.
    crowded = crowded_after(a["position"])
    await db.execute("UPDATE lists SET position = $1 WHERE id = $2", crowded, b["id"])
    again = await client.post(f"{lists_url()}/{c['id']}/move", json={"after_id": a["id"]}, headers=user.headers)
    assert again.status_code == 200, again.text
    rows = await db.fetch("SELECT name, position FROM lists WHERE user_id = $1 ORDER BY position, id", user.id)
    assert [row["name"] for row in rows] == ["Inbox", "A", "C", "B"]
    assert max(len(row["position"]) for row in rows) <= MAX_KEY_CHARS
    assert await db.fetchval("SELECT version FROM lists WHERE id = $1", inbox["id"]) == 2  # rebalanced
    last = await client.post(f"{lists_url()}/{inbox['id']}/move", json={}, headers=user.headers)
    assert last.status_code == 200, last.text
    assert [item["name"] for item in await all_lists(client, user)] == ["A", "C", "B", "Inbox"]


@pytest.mark.parametrize(
    ("anchor", "status", "code"), [("self", 422, "invalid_move"), ("theirs", 404, "list_not_found")]
)
async def test_a_list_move_next_to_itself_or_a_foreign_list_is_refused(
    client: httpx.AsyncClient, user: User, anchor: str, status: int, code: str
) -> None:
    mine = await create_list(client, user)
    theirs = await create_list(client, await sign_up(client))
    anchor_id = mine["id"] if anchor == "self" else theirs["id"]
    response = await client.post(f"{lists_url()}/{mine['id']}/move", json={"after_id": anchor_id}, headers=user.headers)
    assert_problem(response, status, code)
    both = await client.post(
        f"{lists_url()}/{mine['id']}/move", json={"after_id": 1, "before_id": 2}, headers=user.headers
    )
    assert assert_problem(both, 422)["errors"]
