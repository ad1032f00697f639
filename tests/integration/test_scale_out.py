"""Replicas and workers share nothing in process memory that correctness depends on.

Two separately built apps (each with its own connection pool, hasher and settings object) on one
database behave as one API: sessions, refresh-token rotation and reuse detection, ETags, idempotency
keys, login throttling and cursors all work whichever instance a request lands on. Then the real
thing: `python -m todo_api` with WEB_CONCURRENCY=2, hammered so that both workers serve.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import CollectorRegistry, multiprocess

from tests.integration.conftest import make_settings
from tests.integration.database import asyncpg_dsn
from tests.integration.live_server import LiveServer, free_port, live_server, server_env
from tests.integration.tasks_support import PASSWORD, User, assert_problem, sign_up, task_url, tasks_url
from todo_api.main import create_app

TASKS_ROUTE = "/api/{user_id}/tasks"
LOGIN = "/api/auth/login"
REFRESH = "/api/auth/refresh"
ME = "/api/auth/me"


@asynccontextmanager
async def two_instances(database_url: str, **overrides: object) -> AsyncIterator[tuple[httpx.AsyncClient, ...]]:
    """Two apps built separately (create_app twice: two engines, two pools) on one database."""
    async with AsyncExitStack() as stack:
        clients = []
        for name in ("a", "b"):
            app = create_app(make_settings(**overrides), database_url=database_url)
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            client = httpx.AsyncClient(transport=transport, base_url=f"http://instance-{name}.test")
            clients.append(await stack.enter_async_context(client))
        assert clients[0]._transport is not clients[1]._transport
        yield tuple(clients)


@pytest.fixture
async def instances(database_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, ...]]:
    async with two_instances(database_url) as pair:
        yield pair


def statuses(responses: Sequence[httpx.Response]) -> Counter[int]:
    return Counter(response.status_code for response in responses)


def server_errors(responses: Sequence[httpx.Response]) -> list[tuple[int, str]]:
    return [(response.status_code, response.text) for response in responses if response.status_code >= 500]


async def email_of(client: httpx.AsyncClient, user: User) -> str:
    response = await client.get(ME, headers=user.headers)
    assert response.status_code == 200, response.text
    email: str = response.json()["email"]
    return email


# Two app instances, one database -----------------------------------------------------------------


async def test_a_user_signed_up_on_a_logs_in_on_b_and_tokens_work_on_both(
    instances: tuple[httpx.AsyncClient, ...],
) -> None:
    a, b = instances
    user = await sign_up(a)
    assert (await b.get(ME, headers=user.headers)).json()["id"] == user.id  # A's access token on B
    email = await email_of(a, user)
    login = await b.post(LOGIN, json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    on_a = await a.get(ME, headers={"Authorization": f"Bearer {login.json()['access_token']}"})
    assert on_a.status_code == 200
    assert on_a.json()["id"] == user.id


async def test_a_refresh_token_from_a_rotates_on_b_and_its_reuse_on_a_revokes_the_family(
    instances: tuple[httpx.AsyncClient, ...], db: asyncpg.Connection
) -> None:
    a, b = instances
    signed_up = await a.post("/api/auth/signup", json={"email": "rotate@example.com", "password": PASSWORD})
    assert signed_up.status_code == 201
    first = signed_up.json()["refresh_token"]

    rotated = await b.post(REFRESH, json={"refresh_token": first})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["refresh_token"]
    assert second != first

    assert_problem(await a.post(REFRESH, json={"refresh_token": first}), 401, "refresh_token_reused")
    # The whole family is gone, on both instances: the successor B issued no longer works anywhere.
    assert_problem(await b.post(REFRESH, json={"refresh_token": second}), 401, "invalid_refresh_token")
    assert_problem(await a.post(REFRESH, json={"refresh_token": second}), 401, "invalid_refresh_token")
    assert await db.fetchval("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL") == 0


async def test_a_task_created_on_a_is_read_and_updated_on_b_with_a_s_etag(
    instances: tuple[httpx.AsyncClient, ...],
) -> None:
    a, b = instances
    user = await sign_up(a)
    created = await a.post(tasks_url(), json={"title": "From A"}, headers=user.headers)
    assert created.status_code == 201
    task_id, etag_from_a = created.json()["id"], created.headers["etag"]

    read = await b.get(task_url(task_id), headers=user.headers)
    assert read.status_code == 200
    assert read.json()["title"] == "From A"
    assert read.headers["etag"] == etag_from_a
    assert (await b.get(task_url(task_id), headers={**user.headers, "If-None-Match": etag_from_a})).status_code == 304

    updated = await b.patch(
        task_url(task_id), json={"title": "Changed on B"}, headers={**user.headers, "If-Match": etag_from_a}
    )
    assert updated.status_code == 200, updated.text
    assert updated.headers["etag"] != etag_from_a

    stale = await b.patch(task_url(task_id), json={"title": "Lost"}, headers={**user.headers, "If-Match": etag_from_a})
    assert_problem(stale, 412)
    stale_on_a = await a.delete(task_url(task_id), headers={**user.headers, "If-Match": etag_from_a})
    assert_problem(stale_on_a, 412)
    assert (await a.get(task_url(task_id), headers=user.headers)).json()["title"] == "Changed on B"


async def test_an_idempotency_key_used_on_a_replays_the_same_task_on_b(
    instances: tuple[httpx.AsyncClient, ...], db: asyncpg.Connection
) -> None:
    a, b = instances
    user = await sign_up(a)
    headers = {**user.headers, "Idempotency-Key": "scale-out-key-1"}
    body = {"title": "Exactly once", "priority": "high"}
    first = await a.post(tasks_url(), json=body, headers=headers)
    assert first.status_code == 201, first.text
    replay = await b.post(tasks_url(), json=body, headers=headers)
    assert replay.status_code == 201, replay.text
    assert replay.json() == first.json()
    assert replay.headers.get("idempotent-replayed") == "true"
    assert replay.headers["location"] == first.headers["location"]
    # And concurrently, from both at once: still one task.
    racing = {**user.headers, "Idempotency-Key": "scale-out-key-2"}
    responses = await asyncio.gather(
        *((a if n % 2 else b).post(tasks_url(), json=body, headers=racing) for n in range(20))
    )
    assert statuses(responses) == {201: 20}, server_errors(responses)
    assert len({response.json()["id"] for response in responses}) == 1
    assert await db.fetchval("SELECT count(*) FROM tasks WHERE user_id = $1", user.id) == 2


async def test_login_throttling_counts_failures_on_both_instances(database_url: str) -> None:
    limit = 4
    async with two_instances(database_url, throttle_login_per_account=limit) as (a, b):
        user = await sign_up(a)
        email = await email_of(a, user)
        wrong = {"email": email, "password": "wrong password, not it"}
        for attempt in range(limit):  # alternating: each instance alone saw only half of them
            assert_problem(await (a if attempt % 2 else b).post(LOGIN, json=wrong), 401, "invalid_credentials")
        for instance in (a, b):
            throttled = await instance.post(LOGIN, json={"email": email, "password": PASSWORD})
            assert_problem(throttled, 429)
            assert "retry-after" in throttled.headers


async def test_a_cursor_issued_by_a_continues_on_b(instances: tuple[httpx.AsyncClient, ...]) -> None:
    a, b = instances
    user = await sign_up(a)
    for n in range(9):
        response = await (a if n % 2 else b).post(tasks_url(), json={"title": f"Task {n}"}, headers=user.headers)
        assert response.status_code == 201
    seen: list[str] = []
    cursor: str | None = None
    for page_number in range(10):
        client = (a, b)[page_number % 2]
        params: dict[str, Any] = {"limit": 2, "sort": "title", **({"cursor": cursor} if cursor else {})}
        response = await client.get(tasks_url(), params=params, headers=user.headers)
        assert response.status_code == 200, response.text
        seen += [task["title"] for task in response.json()["data"]]
        cursor = response.json()["meta"]["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"Task {n}" for n in range(9)]


# The real server with two workers ----------------------------------------------------------------


@dataclass
class TwoWorkers:
    server: LiveServer
    metrics_dir: Path

    def requests_by_worker(self) -> dict[int, Counter[tuple[str, str]]]:
        """(method, route) -> requests, per worker pid, from each worker's own metrics file."""
        served: dict[int, Counter[tuple[str, str]]] = {}
        for path in self.metrics_dir.glob("counter_*.db"):
            pid = int(path.stem.removeprefix("counter_"))
            alone = Path(tempfile.mkdtemp(prefix="todo-api-worker-metrics-"))
            try:
                shutil.copy(path, alone / path.name)
                registry = CollectorRegistry()
                multiprocess.MultiProcessCollector(registry, path=str(alone))  # type: ignore[no-untyped-call]
                counts: Counter[tuple[str, str]] = Counter()
                for metric in registry.collect():
                    for sample in metric.samples:
                        if sample.name == "http_requests_total":
                            counts[sample.labels["method"], sample.labels["route"]] += int(sample.value)
                served[pid] = counts
            finally:
                shutil.rmtree(alone, ignore_errors=True)
        return served

    async def settled(self, total: int) -> dict[int, Counter[tuple[str, str]]]:
        """The per-worker counts once they add up to `total` (a worker counts a request just after
        sending its last byte), or as they are after 5 s."""
        deadline = time.monotonic() + 5
        while True:
            counts = self.requests_by_worker()
            if sum(sum(c.values()) for c in counts.values()) >= total or time.monotonic() > deadline:
                return counts
            await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def two_workers(database_url: str) -> Iterator[TwoWorkers]:
    root = Path(tempfile.mkdtemp(prefix="todo-api-scale-out-"))
    metrics_dir = root / "metrics"
    metrics_dir.mkdir()
    env = server_env(
        DATABASE_URL=database_url,
        PORT=str(free_port()),
        WEB_CONCURRENCY="2",
        # Set here (rather than left to __main__) so the test can read each worker's own file.
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        BCRYPT_COST="4",
        LOG_FORMAT="json",
        THROTTLE_LOGIN_PER_ADDRESS="100000",
        THROTTLE_SIGNUP_PER_ADDRESS="100000",
        # No SECRET_KEY: development's random key must still be one key for every worker.
    )
    try:
        with live_server(env, log_path=root / "server.log") as server:
            yield TwoWorkers(server, metrics_dir)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def fresh_connections(base_url: str) -> httpx.AsyncClient:
    """No keep-alive: every request opens its own connection, which either worker may accept."""
    return httpx.AsyncClient(base_url=base_url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0))


async def test_two_workers_serve_one_api_idempotent_replays_and_refresh_races_hold(
    two_workers: TwoWorkers, database_url: str
) -> None:
    async with fresh_connections(two_workers.server.base_url) as http:
        user = await sign_up(http)
        email = await email_of(http, user)

        # Tokens from whichever worker work on the other: 200 mixed requests.
        created = await asyncio.gather(
            *(http.post(tasks_url(), json={"title": f"Hammer {n:03d}"}, headers=user.headers) for n in range(60))
        )
        assert statuses(created) == {201: 60}, server_errors(created)
        reads = await asyncio.gather(
            *(http.get(task_url(response.json()["id"]), headers=user.headers) for response in created),
            *(http.get(tasks_url(), params={"limit": 5}, headers=user.headers) for _ in range(40)),
            *(http.get(ME, headers=user.headers) for _ in range(40)),
        )
        assert statuses(reads) == {200: 140}, server_errors(reads)
        # A cursor walk, every page on a new connection: cursors from one worker work on the other.
        titles: list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 7, "sort": "title", **({"cursor": cursor} if cursor else {})}
            page = await http.get(tasks_url(), params=params, headers=user.headers)
            assert page.status_code == 200, page.text
            titles += [task["title"] for task in page.json()["data"]]
            cursor = page.json()["meta"]["next_cursor"]
            if cursor is None:
                break
        assert titles == [f"Hammer {n:03d}" for n in range(60)]

        # Rounds of races until each kind has at least once been split across the two workers:
        # 20 concurrent retries with one Idempotency-Key (one task), 10 concurrent refreshes of one
        # refresh token (exactly one winner).
        keys = 0
        raced_tokens: list[str] = []
        split: Counter[str] = Counter()
        while keys < 5 or not (split["idempotency"] and split["refresh"]):
            assert keys < 40, f"the races never spread over both workers: {two_workers.requests_by_worker()}"
            before = await two_workers.settled(0)
            headers = {**user.headers, "Idempotency-Key": f"live-key-{keys}"}
            body = {"title": f"Once {keys}"}
            retries = await asyncio.gather(*(http.post(tasks_url(), json=body, headers=headers) for _ in range(20)))
            assert statuses(retries) == {201: 20}, server_errors(retries)
            assert len({response.json()["id"] for response in retries}) == 1
            replayed = Counter(response.headers.get("idempotent-replayed") for response in retries)
            assert replayed == {None: 1, "true": 19}, replayed
            keys += 1

            login = await http.post(LOGIN, json={"email": email, "password": PASSWORD})
            assert login.status_code == 200, login.text
            token = login.json()["refresh_token"]
            race = await asyncio.gather(*(http.post(REFRESH, json={"refresh_token": token}) for _ in range(10)))
            assert not server_errors(race), server_errors(race)
            assert statuses(race) == {200: 1, 401: 9}, [(r.status_code, r.text) for r in race]
            raced_tokens.append(token)

            after = await two_workers.settled(sum(sum(counts.values()) for counts in before.values()) + 31)
            for kind, route in (("idempotency", ("POST", TASKS_ROUTE)), ("refresh", ("POST", REFRESH))):
                served = [pid for pid in after if after[pid][route] > before.get(pid, Counter())[route]]
                split[kind] += len(served) == 2

    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        once = await connection.fetch(
            "SELECT title, count(*) AS n FROM tasks WHERE user_id = $1 AND title LIKE 'Once %' GROUP BY title",
            user.id,
        )
        assert {row["title"]: row["n"] for row in once} == {f"Once {n}": 1 for n in range(keys)}
        for token in raced_tokens:  # each raced token was rotated exactly once
            digest = hashlib.sha256(token.encode()).hexdigest()
            family = await connection.fetchval("SELECT family_id FROM refresh_tokens WHERE token_hash = $1", digest)
            assert await connection.fetchval("SELECT count(*) FROM refresh_tokens WHERE family_id = $1", family) == 2
    finally:
        await connection.close()

    by_worker = two_workers.requests_by_worker()
    print(
        f"\n{keys} rounds, {dict(split)} split over both workers; per worker: "
        f"{ {pid: sum(counts.values()) for pid, counts in by_worker.items()} }"
    )
    assert len(by_worker) == 2, by_worker
