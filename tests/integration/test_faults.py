"""Database faults against a real PostgreSQL: the app answers 503 problem+json with Retry-After (never a
500 or a hang), recovers by itself, and never acknowledges a write it did not store (nor stores one it
refused, unless it answered that the commit's outcome is unknown).

Every test here runs on a dedicated embedded PostgreSQL of this module, which the outage test really
stops and starts again; faults inside the database come from a BEFORE INSERT trigger on tasks steered
by the task's title (see faults_support.py), installed for one test and dropped after it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests.integration.conftest import make_settings
from tests.integration.database import asyncpg_dsn, create_database, migrate
from tests.integration.faults_support import (
    DedicatedServer,
    LogRecorder,
    Outcome,
    attempts,
    dedicated_server,
    fault_trigger,
    problems_with_503,
    recording_logs,
    restart_attempts,
    stored_titles,
    timed,
)
from tests.integration.tasks_support import User, sign_up, tasks_url
from todo_api.main import create_app
from todo_api.use_cases.retries import ATTEMPTS

BOUND_S = 5.0  # no request may take longer, whatever the database does
RECOVERY_S = 1.0  # requests succeed again within this long of the database's return


@pytest.fixture(scope="module")
def faults_server() -> Iterator[DedicatedServer]:
    with dedicated_server() as server:
        yield server


@pytest.fixture(scope="module")
def faults_url(faults_server: DedicatedServer) -> str:
    url = create_database(faults_server.url)
    migrate(url)
    return url


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[tuple[httpx.AsyncClient, LogRecorder]]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        with recording_logs() as logs:
            yield client, logs


def _post(client: httpx.AsyncClient, user: User, title: str) -> Callable[[], Awaitable[httpx.Response]]:
    return lambda: client.post(tasks_url(), json={"title": title}, headers=user.headers)


def _get(client: httpx.AsyncClient, user: User) -> Callable[[], Awaitable[httpx.Response]]:
    return lambda: client.get(tasks_url(), headers=user.headers)


async def create(client: httpx.AsyncClient, user: User, title: str) -> Outcome:
    return await timed("create", _post(client, user, title), bound_s=BOUND_S, title=title)


async def list_tasks(client: httpx.AsyncClient, user: User) -> Outcome:
    return await timed("list", _get(client, user), bound_s=BOUND_S)


def assert_503(outcome: Outcome, code: str, *, bound_s: float = BOUND_S) -> None:
    assert outcome.status == 503, outcome
    assert not problems_with_503(outcome), (problems_with_503(outcome), outcome)
    assert outcome.code == code, outcome
    assert outcome.latency < bound_s, outcome


def _report(title: str, *lines: object) -> None:
    print(f"\n[{title}]", *lines, sep="\n  ")  # figures for the report: pytest -s or -rP


# --- 1. the database stops mid-traffic and comes back ----------------------------------------------


async def _start_and_wait_until_it_answers(server: DedicatedServer, dsn: str) -> float:
    """Start the server; return when it first answered a plain client (`pg_ctl -w` may notice later)."""
    starting = asyncio.create_task(asyncio.to_thread(server.start))
    answered: float | None = None
    while answered is None:
        try:
            connection = await asyncpg.connect(dsn, timeout=0.5)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            if starting.done():
                starting.result()  # pg_ctl failed: raise why
            await asyncio.sleep(0.01)
            continue
        try:
            await connection.fetchval("SELECT 1")
            answered = time.monotonic()
        finally:
            await connection.close()
    await starting
    return answered


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_outage_answers_503_then_recovers_within_a_second_and_loses_no_acknowledged_write(
    faults_server: DedicatedServer, faults_url: str, mode: str
) -> None:
    app = create_app(make_settings(db_connect_timeout_s=1, db_pool_timeout_s=1), database_url=faults_url)
    outcomes: list[Outcome] = []
    async with running(app) as (client, logs):
        user = await sign_up(client)
        traffic_on = True
        serial = 0

        async def worker() -> None:
            nonlocal serial
            while traffic_on:
                serial += 1
                outcomes.append(await create(client, user, f"outage-{serial}"))
                outcomes.append(await list_tasks(client, user))
                await asyncio.sleep(0.02)

        workers = [asyncio.create_task(worker()) for _ in range(8)]
        try:
            await asyncio.sleep(0.5)
            stopping = time.monotonic()
            await asyncio.to_thread(faults_server.stop, mode)
            down = time.monotonic()
            await asyncio.sleep(2.0)
            ready = await _start_and_wait_until_it_answers(faults_server, asyncpg_dsn(faults_url))

            # Probe right away: a write and a read, until both succeed.
            recovered: float | None = None
            while recovered is None and time.monotonic() - ready < BOUND_S:
                serial += 1
                probe = [await create(client, user, f"outage-{serial}"), await list_tasks(client, user)]
                outcomes.extend(probe)
                if all(outcome.ok for outcome in probe):
                    recovered = probe[-1].finished
                else:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(1.5)
        finally:
            traffic_on = False
            await asyncio.gather(*workers)
            if not await asyncio.to_thread(faults_server.is_running):  # the test failed half-way
                await asyncio.to_thread(faults_server.start)

    admin = await asyncpg.connect(asyncpg_dsn(faults_url))
    try:
        stored = await stored_titles(admin, user.id)
    finally:
        await admin.close()

    statuses: dict[int | None, int] = {}
    for outcome in outcomes:
        statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
    acknowledged = [o.title for o in outcomes if o.kind == "create" and o.ok]
    # A create whose COMMIT was sent when the server died cannot know whether it was stored: it
    # says so (503 commit_outcome_unknown); every other refused create must have stored nothing.
    refused = {o.title for o in outcomes if o.kind == "create" and not o.ok and o.code != "commit_outcome_unknown"}
    during = [o for o in outcomes if o.finished >= stopping and o.started <= ready]
    in_flight = [o for o in outcomes if o.started < stopping <= o.finished]
    _report(
        f"outage (pg_ctl stop -m {mode})",
        f"requests: {len(outcomes)} (creates {sum(o.kind == 'create' for o in outcomes)}), statuses: {statuses}",
        f"pg_ctl stop -m {mode} took {down - stopping:.3f} s, down for {ready - down:.3f} s",
        f"during the outage: {len(during)} requests, {sum(o.status == 503 for o in during)} x 503; "
        f"in flight when the stop began: {len(in_flight)} ({sorted(str(o.status) for o in in_flight)})",
        f"max latency: {max(o.latency for o in outcomes):.3f} s "
        f"(during the outage {max((o.latency for o in during), default=0):.3f} s)",
        "recovery after the server first answered a plain client: "
        + (f"{recovered - ready:.3f} s" if recovered is not None else "none within the bound"),
        f"creates acknowledged: {len(acknowledged)}, rows stored: {len(stored)}",
        f"503 codes: {sorted({str(o.code) for o in outcomes if o.status == 503})}",
        "logs:\n" + logs.summary(),
    )

    assert [o for o in outcomes if o.status is None] == [], f"requests hung past {BOUND_S} s"
    assert [o for o in outcomes if o.status not in (200, 201, 503)] == [], "only 2xx or 503, never a 500"
    assert [o for o in outcomes if o.status == 503 and problems_with_503(o)] == []
    assert any(o.status == 503 for o in during), "the outage was not seen at all"
    assert all(o.ok for o in outcomes if o.finished < stopping), "requests failed before the outage"

    assert recovered is not None, f"no request succeeded within {BOUND_S} s of the database's return"
    assert recovered - ready <= RECOVERY_S
    late_failures = [o for o in outcomes if o.started >= ready + RECOVERY_S and not o.ok]
    assert late_failures == [], "requests still fail a second after the database came back"

    assert sorted(set(acknowledged) - set(stored)) == [], "acknowledged (2xx) creates missing from the database"
    assert sorted(refused & set(stored)) == [], "creates answered 503 are in the database anyway"
    in_doubt = {o.title for o in outcomes if o.code == "commit_outcome_unknown"}
    assert set(stored) - set(acknowledged) <= in_doubt, "stored creates that were neither acknowledged nor in doubt"
    assert len(stored) == len(set(stored)), "a create stored twice"


# --- 2. pg_terminate_backend on every pooled connection --------------------------------------------


async def _terminate_app_backends(dsn: str) -> int:
    admin = await asyncpg.connect(dsn)
    try:
        killed = await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    return sum(1 for row in killed if row[0])


async def test_requests_after_the_server_terminates_every_pooled_connection_succeed(faults_url: str) -> None:
    dsn = asyncpg_dsn(faults_url)
    app = create_app(make_settings(), database_url=faults_url)
    async with running(app) as (client, logs):
        user = await sign_up(client)
        warm = await asyncio.gather(*(list_tasks(client, user) for _ in range(15)))
        assert all(o.ok for o in warm)

        outcomes: list[Outcome] = []
        killed_before_concurrent = await _terminate_app_backends(dsn)
        await asyncio.sleep(0.1)
        batch = [
            *(create(client, user, f"terminated-concurrent-{n}") for n in range(20)),
            *(list_tasks(client, user) for _ in range(20)),
        ]
        outcomes += await asyncio.gather(*batch)

        killed_before_sequential = await _terminate_app_backends(dsn)
        await asyncio.sleep(0.1)
        for n in range(20):
            outcomes.append(await create(client, user, f"terminated-sequential-{n}"))
            outcomes.append(await list_tasks(client, user))

    admin = await asyncpg.connect(dsn)
    try:
        stored = await stored_titles(admin, user.id)
    finally:
        await admin.close()
    _report(
        "pg_terminate_backend",
        f"backends terminated: {killed_before_concurrent} (then 20+20 concurrent), "
        f"{killed_before_sequential} (then 20+20 sequential)",
        f"statuses: {sorted(str(o.status) for o in outcomes if not o.ok)} failed of {len(outcomes)}",
        "logs:\n" + logs.summary(),
    )
    assert killed_before_concurrent >= 1
    assert killed_before_sequential >= 1
    assert [o for o in outcomes if not o.ok] == []
    assert sorted(stored) == sorted(o.title for o in outcomes if o.kind == "create")


# --- 3. a statement timeout and an exhausted pool -------------------------------------------------


async def test_a_statement_over_the_timeout_is_503_and_stores_nothing(faults_url: str) -> None:
    app = create_app(make_settings(db_statement_timeout_ms=200), database_url=faults_url)
    async with fault_trigger(asyncpg_dsn(faults_url)) as admin, running(app) as (client, logs):
        user = await sign_up(client)
        slow = await create(client, user, f"sleep:1:{uuid.uuid4().hex}")
        quick = await create(client, user, "quick")
        stored = await stored_titles(admin, user.id)
    _report("statement timeout", f"slow insert: {slow.status} in {slow.latency:.3f} s", "logs:\n" + logs.summary())
    assert_503(slow, "service_unavailable")
    assert quick.status == 201, quick
    assert stored == ["quick"]


async def test_an_exhausted_pool_is_503_within_the_pool_timeout(faults_url: str) -> None:
    settings = make_settings(db_pool_size=1, db_max_overflow=0, db_pool_timeout_s=0.5)
    app = create_app(settings, database_url=faults_url)
    async with fault_trigger(asyncpg_dsn(faults_url)) as admin, running(app) as (client, logs):
        user = await sign_up(client)
        holder = asyncio.create_task(create(client, user, f"sleep:2:{uuid.uuid4().hex}"))
        await asyncio.sleep(0.3)  # the holder has the only connection and sleeps in its INSERT
        read, write = await asyncio.gather(list_tasks(client, user), create(client, user, "waiting"))
        held = await holder
        after = await list_tasks(client, user)
        stored = await stored_titles(admin, user.id)
    _report(
        "exhausted pool",
        f"read: {read.status} in {read.latency:.3f} s, write: {write.status} in {write.latency:.3f} s",
        f"holder: {held.status} in {held.latency:.3f} s; afterwards: {after.status}",
        "logs:\n" + logs.summary(),
    )
    for waiting in (read, write):
        assert_503(waiting, "service_unavailable")
        assert waiting.latency <= 1.0, waiting
    assert held.status == 201, held
    assert after.status == 200, after
    assert stored == [held.title]


async def test_retry_after_of_an_unavailable_database_follows_the_db_retry_after_s_setting(faults_url: str) -> None:
    """config.py has DB_RETRY_AFTER_S; a 503 for an unavailable database should carry it."""
    settings = make_settings(
        db_retry_after_s=7, db_statement_timeout_ms=1000, db_pool_size=1, db_max_overflow=0, db_pool_timeout_s=0.2
    )
    app = create_app(settings, database_url=faults_url)
    async with fault_trigger(asyncpg_dsn(faults_url)), running(app) as (client, _):
        user = await sign_up(client)
        timed_out = await create(client, user, f"sleep:1.5:{uuid.uuid4().hex}")
        holder = asyncio.create_task(create(client, user, f"sleep:0.6:{uuid.uuid4().hex}"))
        await asyncio.sleep(0.1)
        pool_exhausted = await list_tasks(client, user)
        held = await holder
    _report(
        "DB_RETRY_AFTER_S=7",
        f"Retry-After: {timed_out.retry_after!r} (statement timeout, {timed_out.status}), "
        f"{pool_exhausted.retry_after!r} (pool timeout, {pool_exhausted.status}); holder {held.status}",
    )
    assert timed_out.status == pool_exhausted.status == 503, (timed_out, pool_exhausted)
    assert held.status == 201, held
    assert (timed_out.retry_after, pool_exhausted.retry_after) == ("7", "7")


# --- 4. serialization failures and deadlocks: bounded retry, then 503 -------------------------------


@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
async def test_a_transient_conflict_is_retried_and_then_answered_503(faults_url: str, sqlstate: str) -> None:
    app = create_app(make_settings(), database_url=faults_url)
    async with fault_trigger(asyncpg_dsn(faults_url)) as admin, running(app) as (client, logs):
        user = await sign_up(client)

        await restart_attempts(admin)
        twice = await create(client, user, f"fail:2:{sqlstate}:{uuid.uuid4().hex}")
        attempts_twice = await attempts(admin)

        await restart_attempts(admin)
        always = await create(client, user, f"fail:100:{sqlstate}:{uuid.uuid4().hex}")
        attempts_always = await attempts(admin)

        stored = await stored_titles(admin, user.id)
    _report(
        f"transient conflict {sqlstate}",
        f"fails twice: {twice.status} after {attempts_twice} attempts",
        f"fails always: {always.status} {always.code} after {attempts_always} attempts, in {always.latency:.3f} s",
        "logs:\n" + logs.summary(),
    )
    assert twice.status == 201, twice
    assert attempts_twice == 3
    assert_503(always, "write_conflict")
    assert attempts_always == ATTEMPTS, "the retry must be bounded"
    assert stored == [twice.title], "exactly the acknowledged row, once"


async def test_a_real_deadlock_between_two_creates_is_retried_and_both_succeed(faults_url: str) -> None:
    dsn = asyncpg_dsn(faults_url)
    app = create_app(make_settings(), database_url=faults_url)
    async with fault_trigger(dsn) as admin, running(app) as (client, logs):
        user = await sign_up(client)
        await restart_attempts(admin)
        deadlocks_before = await admin.fetchval(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        )
        first, second = await asyncio.gather(
            create(client, user, f"deadlock:1:2:{uuid.uuid4().hex}"),
            create(client, user, f"deadlock:2:1:{uuid.uuid4().hex}"),
        )
        tries = await attempts(admin)
        stored = await stored_titles(admin, user.id)
        deadlocks = deadlocks_before
        deadline = time.monotonic() + 3
        while deadlocks == deadlocks_before and time.monotonic() < deadline:  # statistics arrive late
            await asyncio.sleep(0.2)
            await admin.execute("SELECT pg_stat_clear_snapshot()")
            deadlocks = await admin.fetchval(
                "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
            )
    _report(
        "real deadlock",
        f"statuses: {first.status} in {first.latency:.3f} s, {second.status} in {second.latency:.3f} s",
        f"insert attempts: {tries}; deadlocks the server counted: {deadlocks - deadlocks_before}",
        "logs:\n" + logs.summary(),
    )
    assert (first.status, second.status) == (201, 201), (first, second)
    assert tries == 3, "one of the two was aborted by the deadlock detector and retried once"
    assert deadlocks - deadlocks_before == 1
    assert sorted(stored) == sorted([first.title, second.title])


# --- beyond the list: a backend that stops answering (frozen, as behind a dead network) -----


async def test_a_frozen_backend_is_503_within_the_command_timeout_not_a_hang(faults_url: str) -> None:
    dsn = asyncpg_dsn(faults_url)
    settings = make_settings(db_pool_size=1, db_max_overflow=0, db_statement_timeout_ms=200, db_pool_timeout_s=1)
    command_timeout_s = settings.db_statement_timeout_ms / 1000 + 5  # database.py adds 1 s; 4 s of slack
    app = create_app(settings, database_url=faults_url)
    async with running(app) as (client, logs):
        user = await sign_up(client)
        assert (await list_tasks(client, user)).ok  # the pool's one connection now exists
        admin = await asyncpg.connect(dsn)
        try:
            pids = await admin.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'todo-api'"
            )
            assert len(pids) == 1, pids
            pid = int(pids[0]["pid"])
            os.kill(pid, signal.SIGSTOP)
            try:
                frozen = await timed("list", _get(client, user), bound_s=command_timeout_s + 3)
                next_while_frozen = await timed("list", _get(client, user), bound_s=command_timeout_s + 3)
            finally:
                os.kill(pid, signal.SIGCONT)
            await asyncio.sleep(0.2)
            thawed = [await list_tasks(client, user) for _ in range(3)]
        finally:
            await admin.close()
    _report(
        "frozen backend (SIGSTOP)",
        f"command timeout {command_timeout_s} s; frozen: {frozen.status} in {frozen.latency:.3f} s",
        f"next request while still frozen: {next_while_frozen.status} in {next_while_frozen.latency:.3f} s",
        f"after SIGCONT: {[o.status for o in thawed]}",
        "logs:\n" + logs.summary(),
    )
    # Bounded by the command timeout (the frozen connection is then closed in the background).
    for outcome in (frozen, next_while_frozen):
        assert outcome.status is not None, f"no answer within {command_timeout_s + 3} s"
        if outcome.status != 200:
            assert_503(outcome, "service_unavailable", bound_s=command_timeout_s + 3)
    assert all(o.ok for o in thawed), thawed
