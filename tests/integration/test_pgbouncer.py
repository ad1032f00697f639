"""Pooler mode behind a real PgBouncer in transaction mode (Debian's `pgbouncer` package).

Transaction mode hands each transaction to whichever server connection is free, so a named
prepared statement created on one may be missing (or already taken) on the next: with
`db_pooler_mode=True` the app must not depend on them. The bouncer here has 3 server connections
for up to 15 of the app's, so transactions really do move between server connections.

The negative control runs the same app with pooler mode off against the same bouncer: it must
fail, or this test proves nothing. Without PgBouncer installed the whole module is skipped, loudly.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.conftest import make_settings
from tests.integration.pgbouncer_support import MISSING_REASON, PgBouncer, pgbouncer, pgbouncer_binary
from tests.integration.tasks_support import (
    PASSWORD,
    User,
    assert_problem,
    create_task,
    sign_up,
    task_url,
    tasks_url,
)
from todo_api.adapters.sql.engine import ConnectionPool
from todo_api.main import create_app, pool_options

BOUNCER_POOL_SIZE = 3
APP_POOL_SIZE = 10
PREPARED_STATEMENT_ERRORS = (
    asyncpg.exceptions.InvalidSQLStatementNameError,  # 26000 prepared statement "…" does not exist
    asyncpg.exceptions.DuplicatePreparedStatementError,  # 42P05 prepared statement "…" already exists
)

# PgBouncer refuses a `statement_timeout` startup parameter ("unsupported startup parameter"); the
# negative controls leave it out so that pooler mode is the only difference they test.
WITHOUT_TIMEOUT_PARAMETER: dict[str, object] = {"db_statement_timeout_ms": 0}

Task = dict[str, Any]


@pytest.fixture(scope="module")
def bouncer(database_url: str) -> Iterator[PgBouncer]:
    if pgbouncer_binary() is None:
        pytest.skip(MISSING_REASON)
    # Not under pytest's basetemp: that is 0700 and root's, and PgBouncer runs as another user.
    workdir = Path(tempfile.mkdtemp(prefix="todo-api-pgbouncer-"))
    try:
        with pgbouncer(database_url, workdir, pool_size=BOUNCER_POOL_SIZE) as running:
            print(f"\nPgBouncer {running.version[0]}.{running.version[1]} in transaction mode at {running.url}")
            yield running
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class ExceptionRecorder(logging.Handler):
    """Keeps the exceptions the app logs (its `unhandled_exception` line carries exc_info)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.exceptions: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.exceptions.append(record.exc_info[1])


def causes(error: BaseException) -> Iterator[BaseException]:
    current: BaseException | None = error
    while current is not None:
        yield current
        current = current.__cause__ or current.__context__


@dataclass
class Instance:
    client: httpx.AsyncClient
    logged: ExceptionRecorder
    bouncer: PgBouncer

    def explain(self) -> str:
        """What the app logged as unhandled, and what PgBouncer complained of, for a failure message."""
        lines = sorted(
            {
                f"{type(c).__module__}.{type(c).__name__}: {str(c).splitlines()[0] if str(c) else ''}"
                for error in self.logged.exceptions
                for c in causes(error)
            }
        )
        complaints = sorted(
            {line.split(" ", 4)[-1] for line in self.bouncer.log_text().splitlines() if "WARNING" in line}
        )
        return (
            "the app logged:\n  " + ("\n  ".join(lines) or "no exception") + "\n"
            "PgBouncer warned:\n  " + ("\n  ".join(complaints[:10]) or "nothing")
        )


@asynccontextmanager
async def app_instance(bouncer: PgBouncer, *, pooler_mode: bool, **overrides: object) -> AsyncIterator[Instance]:
    settings = make_settings(db_pooler_mode=pooler_mode, db_pool_size=APP_POOL_SIZE, **overrides)
    app = create_app(settings, database_url=bouncer.url)
    recorder = ExceptionRecorder()
    logging.getLogger().addHandler(recorder)  # after create_app, which replaces the root handlers
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield Instance(client, recorder, bouncer)
    finally:
        logging.getLogger().removeHandler(recorder)


def statuses(responses: Sequence[httpx.Response]) -> Counter[int]:
    return Counter(response.status_code for response in responses)


def server_errors(responses: Sequence[httpx.Response]) -> list[tuple[int, str]]:
    return [(response.status_code, response.text) for response in responses if response.status_code >= 500]


# The fixture itself: many clients really share few server connections --------------------------


async def test_the_bouncer_multiplexes_many_clients_onto_its_few_server_connections(bouncer: PgBouncer) -> None:
    connections = [await asyncpg.connect(bouncer.url, statement_cache_size=0) for _ in range(12)]
    try:

        async def backend_pids(connection: asyncpg.Connection) -> set[int]:
            seen = set()
            for _ in range(10):
                async with connection.transaction():
                    seen.add(await connection.fetchval("SELECT pg_backend_pid()"))
                    await asyncio.sleep(0.005)
                await asyncio.sleep(0.001)
            return seen

        per_client = await asyncio.gather(*(backend_pids(connection) for connection in connections))

        # One client's transactions move between server connections (what breaks named statements),
        # shown without leaving it to scheduling: PgBouncer hands out the server connection released
        # last (LIFO), so a second client takes the one the first just used, and holds it.
        mover, holder = connections[0], connections[1]
        async with mover.transaction():
            first = await mover.fetchval("SELECT pg_backend_pid()")
        async with holder.transaction():
            held = await holder.fetchval("SELECT pg_backend_pid()")
            async with mover.transaction():
                second = await mover.fetchval("SELECT pg_backend_pid()")
    finally:
        await asyncio.gather(*(connection.close() for connection in connections))
    every_backend = set().union(*per_client)
    assert len(every_backend) <= BOUNCER_POOL_SIZE, every_backend
    assert held == first, "PgBouncer no longer reuses server connections last-in first-out"
    assert second != first


# Pooler mode: the whole API works ----------------------------------------------------------------


async def test_the_api_works_behind_pgbouncer_in_transaction_mode_with_pooler_mode(bouncer: PgBouncer) -> None:
    """The settings as deployed (DB_STATEMENT_TIMEOUT_MS at its default included)."""
    async with app_instance(bouncer, pooler_mode=True) as instance:
        try:
            await run_workload(instance.client)
        except AssertionError as failure:
            raise AssertionError(f"{failure}\n{instance.explain()}") from failure


async def test_pooler_mode_without_a_statement_timeout_startup_parameter_works_behind_pgbouncer(
    bouncer: PgBouncer,
) -> None:
    """The same workload with DB_STATEMENT_TIMEOUT_MS=0, which sends no `statement_timeout` startup
    parameter (PgBouncer refuses that one): this isolates the prepared-statement behaviour."""
    async with app_instance(bouncer, pooler_mode=True, **WITHOUT_TIMEOUT_PARAMETER) as instance:
        try:
            await run_workload(instance.client)
        except AssertionError as failure:
            raise AssertionError(f"{failure}\n{instance.explain()}") from failure


async def run_workload(client: httpx.AsyncClient) -> None:
    # Accounts: sign up, log in, /me, concurrent sign-ups.
    user = await sign_up(client)
    me = await client.get("/api/auth/me", headers=user.headers)
    assert me.status_code == 200, me.text
    email = me.json()["email"]
    login = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    others = await asyncio.gather(*(sign_up(client) for _ in range(10)))
    assert len({other.id for other in others}) == 10

    # 50 concurrent creates with every kind of field.
    now = datetime.now(UTC)
    priorities = ["low", "medium", "high"]
    bodies = [
        {
            "title": f"Task {n:02d}",
            "description": f"number {n} {'findme' if n % 5 == 0 else ''}",
            "priority": priorities[n % 3],
            "tags": ["even" if n % 2 == 0 else "odd", f"t{n % 4}"],
            "due_at": (now + timedelta(days=n - 10, hours=12)).isoformat(),  # 10 overdue
        }
        for n in range(50)
    ]
    created = await asyncio.gather(*(client.post(tasks_url(), json=body, headers=user.headers) for body in bodies))
    assert statuses(created) == {201: 50}, server_errors(created)
    tasks: list[Task] = [response.json() for response in created]
    ids = {task["id"] for task in tasks}
    assert len(ids) == 50

    # Lists: filters, search, sorts, totals, and every page of a cursor walk, several at once.
    async def walk(params: dict[str, Any]) -> list[Task]:
        seen: list[Task] = []
        cursor: str | None = None
        while True:
            response = await client.get(
                tasks_url(), params={**params, **({"cursor": cursor} if cursor else {})}, headers=user.headers
            )
            assert response.status_code == 200, response.text
            page = response.json()
            seen.extend(page["data"])
            cursor = page["meta"]["next_cursor"]
            if cursor is None:
                return seen

    walks = await asyncio.gather(
        walk({"limit": 7}),
        walk({"limit": 6, "sort": "title"}),
        walk({"limit": 5, "sort": "-due_at"}),
        walk({"limit": 4, "priority": "high"}),
        walk({"limit": 3, "tag": ["even", "t0"]}),
        walk({"limit": 10, "q": "findme"}),
        walk({"limit": 8, "overdue": "true", "sort": "due_at"}),
    )
    everything, by_title, by_due, high, even_t0, found, overdue = walks
    assert {task["id"] for task in everything} == ids
    assert len(everything) == 50
    assert [task["title"] for task in by_title] == sorted(f"Task {n:02d}" for n in range(50))
    assert len(by_due) == 50
    assert {task["id"] for task in high} == {task["id"] for task in tasks if task["priority"] == "high"}
    assert {task["id"] for task in even_t0} == {task["id"] for task in tasks if set(task["tags"]) >= {"even", "t0"}}
    assert len(found) == 10
    assert len(overdue) == 10
    totals = await asyncio.gather(
        *(
            client.get(tasks_url(), params={"include_total": "true", "status": status}, headers=user.headers)
            for status in ("all", "pending", "completed")
        )
    )
    assert [response.json()["meta"]["total"] for response in totals] == [50, 50, 0]

    # PATCH with If-Match, concurrently on 20 tasks; the stale tags then get 412.
    targets = tasks[:20]
    patched = await asyncio.gather(
        *(
            client.patch(
                task_url(task["id"]),
                json={"title": f"Renamed {task['id']}"},
                headers={**user.headers, "If-Match": f'"{task["version"]}"'},
            )
            for task in targets
        )
    )
    assert statuses(patched) == {200: 20}, server_errors(patched)
    stale = await asyncio.gather(
        *(
            client.patch(
                task_url(task["id"]),
                json={"title": "Late"},
                headers={**user.headers, "If-Match": f'"{task["version"]}"'},
            )
            for task in targets[:5]
        )
    )
    for response in stale:
        assert_problem(response, 412)
    fresh = await client.get(task_url(targets[0]["id"]), headers=user.headers)
    assert fresh.status_code == 200
    not_modified = await client.get(
        task_url(targets[0]["id"]), headers={**user.headers, "If-None-Match": fresh.headers["etag"]}
    )
    assert not_modified.status_code == 304

    # Toggles, concurrently, then the completed filter sees them.
    toggled = await asyncio.gather(
        *(client.patch(f"{task_url(task['id'])}/complete", headers=user.headers) for task in tasks[20:35])
    )
    assert statuses(toggled) == {200: 15}, server_errors(toggled)
    assert all(response.json()["completed"] for response in toggled)
    completed = await client.get(
        tasks_url(), params={"status": "completed", "include_total": "true"}, headers=user.headers
    )
    assert completed.json()["meta"]["total"] == 15

    # Bulk changes, concurrently (their events go in through COPY): each reprioritises 5 tasks.
    groups = [tasks[n : n + 5] for n in range(0, 20, 5)]
    bulks = await asyncio.gather(
        *(
            client.post(
                f"{tasks_url()}/bulk",
                json={"operations": [{"op": "update", "task_ids": [t["id"] for t in group], "priority": "high"}]},
                headers=user.headers,
            )
            for group in groups
        )
    )
    assert statuses(bulks) == {200: 4}, server_errors(bulks)
    high_now = await client.get(tasks_url(), params={"priority": "high", "include_total": "true"}, headers=user.headers)
    assert high_now.json()["meta"]["total"] == 20 + sum(1 for task in tasks[20:] if task["priority"] == "high")

    # Deletes, concurrently; then they are gone.
    doomed = tasks[35:50]
    deleted = await asyncio.gather(*(client.delete(task_url(task["id"]), headers=user.headers) for task in doomed))
    assert statuses(deleted) == {204: 15}, server_errors(deleted)
    gone = await asyncio.gather(*(client.get(task_url(task["id"]), headers=user.headers) for task in doomed))
    assert statuses(gone) == {404: 15}

    # Idempotency keys: a replay returns the first task; concurrent retries create one task.
    key_body = {"title": "Exactly once"}
    first = await client.post(tasks_url(), json=key_body, headers={**user.headers, "Idempotency-Key": "key-1"})
    assert first.status_code == 201, first.text
    retries = await asyncio.gather(
        *(
            client.post(tasks_url(), json=key_body, headers={**user.headers, "Idempotency-Key": "key-1"})
            for _ in range(10)
        )
    )
    assert statuses(retries) == {201: 10}, server_errors(retries)
    assert {response.json()["id"] for response in retries} == {first.json()["id"]}

    # Refresh tokens: rotation, reuse detection, concurrent rotations of one token.
    session = (await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})).json()
    rotated = await client.post("/api/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    reused = await client.post("/api/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert_problem(reused, 401, "refresh_token_reused")
    revoked = await client.post("/api/auth/refresh", json={"refresh_token": rotated.json()["refresh_token"]})
    assert_problem(revoked, 401, "invalid_refresh_token")
    racing = (await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})).json()
    races = await asyncio.gather(
        *(client.post("/api/auth/refresh", json={"refresh_token": racing["refresh_token"]}) for _ in range(10))
    )
    assert not server_errors(races), server_errors(races)
    assert statuses(races) == {200: 1, 401: 9}

    # Everything at once, from several users: still no 5xx.
    mixed = await asyncio.gather(
        *(create_task(client, other, title="Mixed") for other in others),
        *(client.get(tasks_url(), params={"limit": 5}, headers=other.headers) for other in others),
        *(client.get("/api/auth/me", headers=other.headers) for other in others),
        client.get("/readyz"),
    )
    responses = [item for item in mixed if isinstance(item, httpx.Response)]
    assert not server_errors(responses), server_errors(responses)
    assert all(response.status_code == 200 for response in responses)


async def server_prepared_statements(bouncer: PgBouncer) -> dict[int, int]:
    """Prepared statements left on each of the bouncer's server connections (backend pid -> count).

    One client transaction per server connection, all open at once, so each lands on its own.
    """
    connections = [await asyncpg.connect(bouncer.url, statement_cache_size=0) for _ in range(BOUNCER_POOL_SIZE)]
    try:
        ready = asyncio.Barrier(BOUNCER_POOL_SIZE)

        async def count(connection: asyncpg.Connection) -> tuple[int, int]:
            async with connection.transaction():
                row = await connection.fetchrow(
                    "SELECT pg_backend_pid() AS pid, (SELECT count(*) FROM pg_prepared_statements) AS n"
                )
                assert row is not None
                await ready.wait()  # hold this server connection until every client has its own
                return int(row["pid"]), int(row["n"])

        counted = dict(await asyncio.wait_for(asyncio.gather(*(count(c) for c in connections)), timeout=10))
    finally:
        await asyncio.gather(*(connection.close() for connection in connections))
    assert len(counted) == BOUNCER_POOL_SIZE, counted
    return counted


async def test_pooler_mode_leaves_no_prepared_statements_piling_up_on_the_server(database_url: str) -> None:
    """In transaction mode the server connections outlive every client (for `server_lifetime`, an
    hour by default) and nobody resets them: whatever statements the app prepares and does not
    close stay in PostgreSQL's memory. The write path alone (transactions, which work in pooler
    mode; creates, and bulk changes, whose events go in through COPY) must not leave one behind
    per query."""
    workdir = Path(tempfile.mkdtemp(prefix="todo-api-pgbouncer-leak-"))
    try:
        with pgbouncer(database_url, workdir, pool_size=BOUNCER_POOL_SIZE) as fresh:
            async with app_instance(fresh, pooler_mode=True, **WITHOUT_TIMEOUT_PARAMETER) as instance:
                user = await sign_up(instance.client)
                for batch in range(4):
                    created = await asyncio.gather(
                        *(
                            instance.client.post(tasks_url(), json={"title": f"T{batch}-{n}"}, headers=user.headers)
                            for n in range(50)
                        )
                    )
                    assert statuses(created) == {201: 50}, instance.explain()
                    ids = [response.json()["id"] for response in created]
                    bulks = await asyncio.gather(
                        *(
                            instance.client.post(
                                f"{tasks_url()}/bulk",
                                json={"operations": [{"op": "complete", "task_ids": ids[n : n + 10]}]},
                                headers=user.headers,
                            )
                            for n in range(0, 50, 10)
                        )
                    )
                    assert statuses(bulks) == {200: 5}, instance.explain()
            left = await server_prepared_statements(fresh)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    # A handful is fine (whatever the driver keeps); one per query of 200 requests is a leak.
    assert sum(left.values()) <= 10 * BOUNCER_POOL_SIZE, (
        f"after 200 task creations and 20 bulk changes the server connections hold {sum(left.values())} "
        f"prepared statements ({left}): each query's uniquely named statement is never deallocated"
    )


# The negative control: the same bouncer without pooler mode must break -------------------------


async def test_negative_control_without_pooler_mode_the_same_workload_fails_behind_pgbouncer(
    bouncer: PgBouncer,
) -> None:
    """Proves the pooler-mode test can fail: asyncpg's cached, named prepared statements break in
    transaction mode, and it shows as 5xx responses caused by prepared-statement errors."""
    failures: list[tuple[int, str]] = []
    async with app_instance(bouncer, pooler_mode=False, **WITHOUT_TIMEOUT_PARAMETER) as instance:
        client = instance.client
        users: list[User] = []
        for round_ in range(3):
            signups = await asyncio.gather(
                *(
                    client.post(
                        "/api/auth/signup", json={"email": f"control-{round_}-{n}@example.com", "password": PASSWORD}
                    )
                    for n in range(10)
                )
            )
            failures += server_errors(signups)
            users += [
                User(id=body["user"]["id"], headers={"Authorization": f"Bearer {body['access_token']}"})
                for body in (response.json() for response in signups if response.status_code == 201)
            ]
            for user in users[:3]:
                created = await asyncio.gather(
                    *(client.post(tasks_url(), json={"title": f"T{n}"}, headers=user.headers) for n in range(50))
                )
                listed = await asyncio.gather(
                    *(client.get(tasks_url(), params={"limit": 5}, headers=user.headers) for _ in range(20))
                )
                failures += server_errors(created) + server_errors(listed)
            if failures:
                break
        logged = list(instance.logged.exceptions)
    assert failures, (
        "NEGATIVE CONTROL DID NOT FAIL: without pooler mode the app worked behind PgBouncer in transaction "
        "mode, so the pooler-mode test proves nothing about prepared statements"
    )
    assert {status for status, _ in failures} <= {500, 503}, failures
    prepared = [cause for error in logged for cause in causes(error) if isinstance(cause, PREPARED_STATEMENT_ERRORS)]
    assert prepared, [repr(error) for error in logged]


async def test_negative_control_the_failures_are_prepared_statement_errors(bouncer: PgBouncer) -> None:
    """The same pool code, under the same concurrency, straight at the driver: which error it is."""
    caught: dict[bool, list[BaseException]] = {}
    for pooler_mode in (True, False):
        settings = make_settings(db_pooler_mode=pooler_mode, db_pool_size=APP_POOL_SIZE, **WITHOUT_TIMEOUT_PARAMETER)
        pool = ConnectionPool(pool_options(settings, bouncer.url))
        errors: list[BaseException] = []

        async def query(n: int, pool: ConnectionPool = pool, errors: list[BaseException] = errors) -> None:
            try:
                connection = await pool.acquire()
                try:
                    async with connection.transaction():
                        await connection.fetchval("SELECT CAST($1 AS int) + 1, pg_sleep(0.001)", n)
                        await connection.fetchval("SELECT count(*) FROM users WHERE email = $1", str(n))
                finally:
                    pool.release(connection)
            except asyncpg.PostgresError as error:
                errors.append(error)

        try:
            for _ in range(5):
                await asyncio.gather(*(query(n) for n in range(40)))
        finally:
            await pool.close()
        caught[pooler_mode] = errors
    assert caught[True] == [], caught[True]
    assert caught[False], "NEGATIVE CONTROL DID NOT FAIL: named prepared statements survived transaction mode"
    unexplained = [
        repr(error)
        for error in caught[False]
        if not any(isinstance(cause, PREPARED_STATEMENT_ERRORS) for cause in causes(error))
    ]
    assert not unexplained, unexplained
