"""Account self-service over HTTP on PostgreSQL: the profile, the sessions and their devices, the
export, deleting the account with every row of it, and ended sessions refused on another server."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.conftest import TEST_SECRET
from tests.integration.database import asyncpg_dsn
from tests.integration.live_server import LiveServer, free_port, live_server, server_env
from tests.integration.tasks_support import PASSWORD, assert_problem, create_task, sign_up, task_url
from todo_api.adapters.sql.tables import metadata

REFRESH_S = 0.5  # the second server's SESSION_REVOCATION_REFRESH_S


async def log_in(client: httpx.AsyncClient, email: str, agent: str) -> dict[str, Any]:
    response = await client.post(
        "/api/auth/login", json={"email": email, "password": PASSWORD}, headers={"User-Agent": agent}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(session: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {session['access_token']}"}


async def test_the_sessions_list_each_device_and_marks_the_current_one(client: httpx.AsyncClient) -> None:
    user = await sign_up(client, "ada@example.com")
    phone = await log_in(client, "ada@example.com", "Safari on a phone")

    response = await client.get("/api/auth/sessions", headers=bearer(phone))

    assert response.status_code == 200, response.text
    listed = response.json()["data"]
    assert [(s["user_agent"], s["current"]) for s in listed] == [
        ("Safari on a phone", True),
        ("python-httpx/" + httpx.__version__, False),
    ]
    assert {"id", "created_at", "last_used_at", "expires_at"} <= set(listed[0])
    other = await client.get("/api/auth/sessions", headers=user.headers)
    assert [s["current"] for s in other.json()["data"]] == [False, True]


async def test_a_refresh_moves_last_used_and_a_deleted_session_can_neither_refresh_nor_call(
    client: httpx.AsyncClient,
) -> None:
    user = await sign_up(client, "ada@example.com")
    phone = await log_in(client, "ada@example.com", "phone")
    before = (await client.get("/api/auth/sessions", headers=user.headers)).json()["data"]
    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": phone["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    after = (await client.get("/api/auth/sessions", headers=user.headers)).json()["data"]
    phone_id = after[0]["id"]
    assert after[0]["last_used_at"] > next(s for s in before if s["id"] == phone_id)["last_used_at"]

    assert (await client.delete(f"/api/auth/sessions/{phone_id}", headers=user.headers)).status_code == 204

    again = await client.post("/api/auth/refresh", json={"refresh_token": refreshed.json()["refresh_token"]})
    assert_problem(again, 401, "invalid_refresh_token")
    assert_problem(await client.get("/api/me/tasks", headers=bearer(refreshed.json())), 401, "session_revoked")
    assert [s["id"] for s in (await client.get("/api/auth/sessions", headers=user.headers)).json()["data"]] != [
        phone_id
    ]
    assert_problem(
        await client.delete(f"/api/auth/sessions/{phone_id}", headers=user.headers), 404, "session_not_found"
    )


async def test_someone_elses_session_is_not_found(client: httpx.AsyncClient) -> None:
    await sign_up(client, "ada@example.com")
    ada = await log_in(client, "ada@example.com", "phone")
    bob = await sign_up(client)
    adas = (await client.get("/api/auth/sessions", headers=bearer(ada))).json()["data"][0]["id"]
    assert_problem(await client.delete(f"/api/auth/sessions/{adas}", headers=bob.headers), 404, "session_not_found")
    assert (await client.get("/api/me/tasks", headers=bearer(ada))).status_code == 200


async def test_the_name_is_changed_with_patch_me(client: httpx.AsyncClient) -> None:
    user = await sign_up(client)
    response = await client.patch("/api/auth/me", json={"name": "  Ada   King "}, headers=user.headers)
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Ada King"
    assert (await client.get("/api/auth/me", headers=user.headers)).json()["name"] == "Ada King"
    assert_problem(await client.patch("/api/auth/me", json={"email": "x@example.com"}, headers=user.headers), 422)


async def test_the_export_holds_everything_of_mine_and_nothing_of_anyone_elses(client: httpx.AsyncClient) -> None:
    user = await sign_up(client, "ada@example.com")
    work = (await client.post("/api/me/lists", json={"name": "Work"}, headers=user.headers)).json()
    kept = await create_task(client, user, title="Kept", list_id=work["id"], tags=["x"])
    gone = await create_task(client, user, title="Deleted")
    assert (await client.delete(task_url(gone["id"]), headers=user.headers)).status_code == 204
    other = await sign_up(client)
    await create_task(client, other, title="Not mine")

    response = await client.get("/api/auth/me/export", headers=user.headers)

    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == 'attachment; filename="todo-export.json"'
    body = response.json()
    assert body["user"]["email"] == "ada@example.com"
    assert [x["name"] for x in body["lists"]] == ["Inbox", "Work"]
    assert body["tasks"] == [(await client.get(task_url(kept["id"]), headers=user.headers)).json()]
    assert [task["id"] for task in body["deleted_tasks"]] == [gone["id"]]
    assert [s["current"] for s in body["sessions"]] == [True]
    assert "password_hash" not in str(body)


async def rows_naming(db: asyncpg.Connection, user_id: str) -> dict[str, int]:
    """Rows of every table with a `user_id` (or the users row itself) that name the person."""
    found = {}
    for table in metadata.sorted_tables:
        column = "id" if table.name == "users" else "user_id" if "user_id" in table.c else None
        if column is not None:
            count = await db.fetchval(f'SELECT count(*) FROM "{table.name}" WHERE {column} = $1', user_id)  # noqa: S608
            if count:
                found[table.name] = count
    return found


async def test_deleting_the_account_needs_the_password_and_removes_every_row_of_it(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = await sign_up(client, "ada@example.com")
    task = await create_task(client, user, title="Mine")
    assert (await client.delete(task_url(task["id"]), headers=user.headers)).status_code == 204
    await create_task(client, user, title="Live")
    await db.execute(
        "INSERT INTO webhooks (user_id, url, secret, created_at, position) "
        "VALUES ($1, 'https://h.test', 's', now(), 0)",
        user.id,
    )
    other = await sign_up(client)
    await create_task(client, other)
    assert set(await rows_naming(db, user.id)) >= {
        "users",
        "tasks",
        "lists",
        "deleted_tasks",
        "events",
        "sessions",
        "webhooks",
    }
    others_before = await rows_naming(db, other.id)

    wrong = await client.request("DELETE", "/api/auth/me", json={"password": "not it at all"}, headers=user.headers)
    assert_problem(wrong, 403, "current_password_incorrect")
    assert "users" in await rows_naming(db, user.id)

    deleted = await client.request("DELETE", "/api/auth/me", json={"password": PASSWORD}, headers=user.headers)

    assert deleted.status_code == 204, deleted.text
    assert await rows_naming(db, user.id) == {}
    assert await rows_naming(db, other.id) == others_before
    assert_problem(await client.get("/api/me/tasks", headers=user.headers), 401, "session_revoked")
    login = await client.post("/api/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert_problem(login, 401, "invalid_credentials")


async def test_an_event_committed_while_the_account_is_being_deleted_is_deleted_with_it(
    client: httpx.AsyncClient, db: asyncpg.Connection, database_url: str
) -> None:
    """Events have no foreign key to `users` (tables.py): the deletion removes them itself, after
    the person, so an event written under the feed counter the deletion waits for goes too."""
    user = await sign_up(client)
    await create_task(client, user)
    writer = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        async with writer.transaction():
            # What any write does last: bump the person's counter, append under its lock.
            position = await writer.fetchval(
                "UPDATE change_feeds SET position = position + 1 WHERE user_id = $1 RETURNING position", user.id
            )
            await writer.execute(
                "INSERT INTO events (user_id, position, id, aggregate_type, aggregate_id, type, payload, created_at) "
                "VALUES ($1, $2, gen_random_uuid(), 'task', '1', 'task.updated', '{}', now())",
                user.id,
                position,
            )
            deleting = asyncio.create_task(
                client.request("DELETE", "/api/auth/me", json={"password": PASSWORD}, headers=user.headers)
            )
            waits = "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'"
            for _ in range(500):  # until the deletion waits for the counter's row
                if await db.fetchval(waits):
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the deletion never waited for the writer's counter")
        deleted = await deleting
    finally:
        await writer.close()

    assert deleted.status_code == 204, deleted.text
    assert await db.fetchval("SELECT count(*) FROM events WHERE user_id = $1", user.id) == 0
    assert await rows_naming(db, user.id) == {}


@pytest.fixture(scope="module")
def second_server(database_url: str) -> Iterator[LiveServer]:
    """Another process on the same database, as a second replica is."""
    workdir = Path(tempfile.mkdtemp(prefix="todo-api-sessions-"))
    env = server_env(
        DATABASE_URL=database_url,
        SECRET_KEY=TEST_SECRET,
        PORT=str(free_port()),
        BCRYPT_COST="4",
        RUN_WORKERS="false",
        SESSION_REVOCATION_REFRESH_S=str(REFRESH_S),
    )
    try:
        with live_server(env, log_path=workdir / "server.log") as server:
            yield server
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def test_a_logged_out_sessions_access_token_is_refused_by_another_server_after_its_refresh(
    client: httpx.AsyncClient, second_server: LiveServer
) -> None:
    user = await sign_up(client)
    other_session = await log_in(client, (await client.get("/api/auth/me", headers=user.headers)).json()["email"], "b")
    async with httpx.AsyncClient(base_url=second_server.base_url) as b:
        # Both sessions' tokens verified, and remembered, there.
        assert (await b.get("/api/me/tasks", headers=user.headers)).status_code == 200
        assert (await b.get("/api/me/tasks", headers=bearer(other_session))).status_code == 200

        logged_out = await client.post("/api/auth/logout", json={"refresh_token": other_session["refresh_token"]})
        assert logged_out.status_code == 204
        assert (await b.get("/api/me/tasks", headers=user.headers)).status_code == 200  # another session: untouched

        # The session that logged out: the server that answered refuses its token at once; the other
        # one after its next reload, which comes every REFRESH_S (a generous bound for a busy machine).
        assert_problem(await client.get("/api/me/tasks", headers=bearer(other_session)), 401, "session_revoked")
        deadline = time.monotonic() + 40 * REFRESH_S
        while (answer := await b.get("/api/me/tasks", headers=bearer(other_session))).status_code == 200:
            assert time.monotonic() < deadline, "the second server never refused the ended session's token"
            await asyncio.sleep(REFRESH_S / 5)
        assert_problem(answer, 401, "session_revoked")
