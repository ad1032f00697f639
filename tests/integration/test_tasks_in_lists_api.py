"""Tasks in lists and under parents, over HTTP: where a new task goes, the person's order, the
filters, and what another user's list or parent looks like (not found)."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from tests.integration.tasks_support import User, assert_problem, create_task, sign_up, tasks_url


@pytest.fixture
async def user(client: httpx.AsyncClient) -> User:
    return await sign_up(client)


async def listed(client: httpx.AsyncClient, user: User, **params: str | int) -> list[str]:
    response = await client.get(tasks_url(), params={"limit": 100, **params}, headers=user.headers)
    assert response.status_code == 200, response.text
    return [task["title"] for task in response.json()["data"]]


async def test_sign_up_makes_the_inbox_and_a_new_task_goes_there_at_the_end(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    inbox = await db.fetchval("SELECT id FROM lists WHERE user_id = $1 AND is_inbox", user.id)
    first = await create_task(client, user, title="First")
    second = await create_task(client, user, title="Second")
    assert (first["list_id"], first["parent_id"], second["list_id"]) == (inbox, None, inbox)
    assert first["position"].encode() < second["position"].encode()


async def test_subtasks_go_under_their_parent_in_its_list_and_page_in_order(
    client: httpx.AsyncClient, user: User
) -> None:
    parent = await create_task(client, user, title="Report")
    for title in ("Outline", "Draft", "Proofread"):
        child = await create_task(client, user, title=title, parent_id=parent["id"])
        assert (child["parent_id"], child["list_id"]) == (parent["id"], parent["list_id"])
    await create_task(client, user, title="Other")
    assert await listed(client, user, parent_id=parent["id"], sort="position") == ["Outline", "Draft", "Proofread"]
    assert await listed(client, user, list_id=parent["list_id"], parent_id="none", sort="position") == [
        "Report",
        "Other",
    ]
    assert await listed(client, user, list_id=parent["list_id"], parent_id="none", sort="-position") == [
        "Other",
        "Report",
    ]


async def test_completing_a_parent_completes_its_subtasks(client: httpx.AsyncClient, user: User) -> None:
    parent = await create_task(client, user, title="Report")
    child = await create_task(client, user, title="Outline", parent_id=parent["id"])
    response = await client.patch(
        f"{tasks_url()}/{parent['id']}/complete", json={"completed": True}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    got = await client.get(f"{tasks_url()}/{child['id']}", headers=user.headers)
    assert (got.json()["completed"], got.json()["version"]) == (True, 2)


async def test_deleting_a_parent_deletes_its_subtree(client: httpx.AsyncClient, user: User) -> None:
    parent = await create_task(client, user, title="Report")
    child = await create_task(client, user, title="Outline", parent_id=parent["id"])
    assert (await client.delete(f"{tasks_url()}/{parent['id']}", headers=user.headers)).status_code == 204
    assert_problem(await client.get(f"{tasks_url()}/{child['id']}", headers=user.headers), 404, "task_not_found")


async def test_another_users_list_or_parent_is_not_found(client: httpx.AsyncClient, user: User) -> None:
    other = await sign_up(client)
    theirs = await create_task(client, other, title="Theirs")
    for field, code in (("list_id", "list_not_found"), ("parent_id", "parent_not_found")):
        response = await client.post(
            tasks_url(),
            json={"title": "Sneak", field: theirs[field if field == "list_id" else "id"]},
            headers=user.headers,
        )
        assert_problem(response, 404, code)
    assert await listed(client, user, list_id=theirs["list_id"]) == []
    assert await listed(client, user, parent_id=theirs["id"]) == []


async def test_a_fifth_level_is_refused(client: httpx.AsyncClient, user: User) -> None:
    parent = await create_task(client, user, title="Level 1")
    for level in range(2, 5):
        parent = await create_task(client, user, title=f"Level {level}", parent_id=parent["id"])
    response = await client.post(
        tasks_url(), json={"title": "Level 5", "parent_id": parent["id"]}, headers=user.headers
    )
    assert_problem(response, 422, "too_deep")


@pytest.mark.parametrize("parent_id", ["None", "0", "-1", "x", "01"])
async def test_a_malformed_parent_filter_is_a_422(client: httpx.AsyncClient, user: User, parent_id: str) -> None:
    response = await client.get(tasks_url(), params={"parent_id": parent_id}, headers=user.headers)
    assert_problem(response, 422)


async def test_placement_cannot_be_written_directly(client: httpx.AsyncClient, user: User) -> None:
    task = await create_task(client, user, title="Mine")
    for body in ({"title": "x", "position": "a0"}, {"title": "x", "list_id": task["list_id"]}):
        response = await client.put(f"{tasks_url()}/{task['id']}", json=body, headers=user.headers)
        assert_problem(response, 422)
    response = await client.post(tasks_url(), json={"title": "x", "position": "a0"}, headers=user.headers)
    assert_problem(response, 422)


@pytest.mark.parametrize(
    "params",
    [{"sort": "position"}, {"sort": "position", "parent_id": "none"}, {"sort": "-position", "list_id": 1}],
)
async def test_the_persons_order_is_asked_of_one_group_of_siblings(
    client: httpx.AsyncClient, user: User, params: dict[str, str | int]
) -> None:
    response = await client.get(tasks_url(), params=params, headers=user.headers)
    assert_problem(response, 422, "position_needs_group")


async def test_positions_compare_byte_by_byte_in_the_database(
    client: httpx.AsyncClient, user: User, db: asyncpg.Connection
) -> None:
    """Under a linguistic collation `a1` sorts before `Zz`; as bytes (COLLATE "C") `Zz` comes first."""
    upper, lower = await create_task(client, user, title="Upper"), await create_task(client, user, title="Lower")
    await db.execute("UPDATE tasks SET position = 'Zz' WHERE id = $1", upper["id"])
    await db.execute("UPDATE tasks SET position = 'a1' WHERE id = $1", lower["id"])
    columns = await db.fetch(
        "SELECT table_name, data_type, collation_name FROM information_schema.columns"
        " WHERE column_name = 'position' AND table_schema = 'public'"
    )
    order_keys = {row["table_name"]: row["collation_name"] for row in columns if row["data_type"] != "bigint"}
    # Every order key compares as bytes; the other `position`s are the change feed's numbers.
    assert order_keys == {"tasks": "C", "lists": "C", "deleted_tasks": "C", "deleted_lists": "C"}
    in_order = await listed(client, user, list_id=upper["list_id"], parent_id="none", sort="position")
    assert in_order == ["Upper", "Lower"]
