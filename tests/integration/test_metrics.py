"""/metrics: Prometheus text format with requests and latency by route template and status, and the
database pool's gauges; off in production unless enabled, behind METRICS_TOKEN when set; and with
several workers, one scrape of any worker counts every worker's requests.

prometheus_client's default registry is process-global and every in-process app in this test run
feeds it, so the in-process tests compare a scrape before with a scrape after.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import make_settings
from tests.integration.database import asyncpg_dsn
from tests.integration.live_server import LiveServer, free_port, live_server, server_env
from tests.integration.tasks_support import assert_problem, create_task, sign_up, task_url, tasks_url
from todo_api.adapters.http.metrics import exposition
from todo_api.main import create_app

TASKS_ROUTE = "/api/{user_id}/tasks"
TASK_ROUTE = "/api/{user_id}/tasks/{task_id}"
PROMETHEUS_TEXT = "text/plain; version="  # the text exposition format, whichever version

Labels = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class Scrape:
    samples: dict[tuple[str, Labels], float]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[sample.name, frozenset(sample.labels.items())] = sample.value
        return cls(samples)

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def has(self, name: str) -> bool:
        return any(sample_name == name for sample_name, _ in self.samples)

    def label_values(self) -> set[str]:
        return {value for _, labels in self.samples for _, value in labels}

    def routes(self) -> set[str]:
        return {value for _, labels in self.samples for key, value in labels if key == "route"}


async def scrape(client: httpx.AsyncClient, **headers: str) -> Scrape:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(PROMETHEUS_TEXT)
    return Scrape.parse(response.text)


def delta(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


# In process ----------------------------------------------------------------------------------------


async def test_requests_are_counted_by_method_route_template_and_status(client: httpx.AsyncClient) -> None:
    user = await sign_up(client)
    other = await sign_up(client)
    task = await create_task(client, user)
    before = await scrape(client)

    for _ in range(7):
        assert (await client.get(tasks_url(), headers=user.headers)).status_code == 200
    for _ in range(3):
        assert (await client.get(tasks_url(user), headers=user.headers)).status_code == 200
    assert (await client.get(tasks_url(other), headers=user.headers)).status_code == 403
    assert (await client.get(task_url(task["id"]), headers=user.headers)).status_code == 200
    assert (await client.get(task_url(task["id"], user), headers=user.headers)).status_code == 200
    assert (await client.get(task_url(987654321), headers=user.headers)).status_code == 404

    after = await scrape(client)
    tasks_200 = {"method": "GET", "route": TASKS_ROUTE, "status": "200"}
    assert delta(before, after, "http_requests_total", **tasks_200) == 10
    assert delta(before, after, "http_requests_total", method="GET", route=TASKS_ROUTE, status="403") == 1
    assert delta(before, after, "http_requests_total", method="GET", route=TASK_ROUTE, status="200") == 2
    # A matched route answering 404 keeps its template; only paths no route matches are "unmatched".
    assert delta(before, after, "http_requests_total", method="GET", route=TASK_ROUTE, status="404") == 1
    assert delta(before, after, "http_requests_total", method="GET", route="/metrics", status="200") == 1

    latency = {"method": "GET", "route": TASKS_ROUTE}
    assert delta(before, after, "http_request_duration_seconds_count", **latency) == 11
    assert delta(before, after, "http_request_duration_seconds_bucket", le="+Inf", **latency) == 11
    assert delta(before, after, "http_request_duration_seconds_sum", **latency) > 0
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in after.samples.items()
        if name == "http_request_duration_seconds_bucket"
        and dict(labels).get("route") == TASKS_ROUTE
        and dict(labels).get("method") == "GET"
    )
    assert len(buckets) > 5
    assert [value for _, value in buckets] == sorted(value for _, value in buckets)  # cumulative

    # Templates only: no concrete user id, task id or `me` in any label.
    labels = after.label_values()
    assert not {user.id, other.id} & {part for value in labels for part in value.split("/")}
    assert not [value for value in labels if user.id in value or other.id in value]
    assert not [route for route in after.routes() if re.search(r"/\d+(/|$)|^/api/me(/|$)", route)], after.routes()
    assert TASKS_ROUTE in after.routes()


async def test_paths_no_route_matches_are_labelled_unmatched(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    for path in ("/nope", "/api/nope/at/all", "/wp-login.php", f"/random-{'x' * 40}"):
        assert (await client.get(path)).status_code == 404
    after = await scrape(client)
    assert delta(before, after, "http_requests_total", method="GET", route="unmatched", status="404") == 4
    assert not [route for route in after.routes() if "nope" in route or "wp-login" in route or "random-" in route]


async def test_the_pool_gauges_follow_connections_in_use_and_open(database_url: str, db: asyncpg.Connection) -> None:
    app = create_app(make_settings(), database_url=database_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            idle = await scrape(client)
            assert idle.has("db_pool_connections_in_use")
            assert idle.has("db_pool_connections_open")
            user = await sign_up(client)
            task = await create_task(client, user)
            settled = await scrape(client)
            assert delta(idle, settled, "db_pool_connections_open") >= 1  # this app's pool opened some
            assert delta(idle, settled, "db_pool_connections_in_use") == 0  # and gave them all back

            # A PATCH waits on a row lock held here, keeping its pooled connection checked out.
            async with db.transaction():
                await db.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", task["id"])
                patch = asyncio.create_task(
                    client.patch(task_url(task["id"]), json={"title": "Waits"}, headers=user.headers)
                )
                busy = settled
                for _ in range(100):
                    await asyncio.sleep(0.02)
                    busy = await scrape(client)
                    if delta(settled, busy, "db_pool_connections_in_use") >= 1:
                        break
                assert delta(settled, busy, "db_pool_connections_in_use") == 1
            assert (await patch).status_code == 200
            done = await scrape(client)
            assert delta(settled, done, "db_pool_connections_in_use") == 0
    # Closing the pool closes its connections: the open gauge is back where it started.
    final = Scrape.parse(exposition()[0].decode())
    assert final.value("db_pool_connections_open") == idle.value("db_pool_connections_open")
    assert final.value("db_pool_connections_in_use") == idle.value("db_pool_connections_in_use")


# Production: off unless enabled, and then behind the token when one is set ------------------------


@asynccontextmanager
async def production_client(database_url: str, **overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        environment="production",
        database_url=database_url,
        password_pepper="p" * 40,
        cors_origins=["https://app.example.com"],
        **overrides,
    )
    app = create_app(settings, database_url=database_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://api.example.com") as client:
            yield client


async def test_production_serves_no_metrics_unless_enabled(database_url: str) -> None:
    async with production_client(database_url) as client:
        assert_problem(await client.get("/metrics"), 404)
    async with production_client(database_url, metrics_enabled=False) as client:
        assert_problem(await client.get("/metrics"), 404)
    async with production_client(database_url, metrics_enabled=True) as client:
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert "http_requests_total" in response.text


async def test_development_serves_metrics_unless_disabled(database_url: str) -> None:
    app = create_app(make_settings(metrics_enabled=False), database_url=database_url)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert_problem(await client.get("/metrics"), 404)


async def test_the_metrics_token_protects_metrics(database_url: str) -> None:
    token = "metrics-token-0123456789abcdef"
    async with production_client(database_url, metrics_enabled=True, metrics_token=token) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}, {"Authorization": "Basic x"}):
            response = await client.get("/metrics", headers=headers)
            assert_problem(response, 401)
            assert "http_requests_total" not in response.text
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith(PROMETHEUS_TEXT)
        assert "http_requests_total" in response.text


# Several workers: every scrape sums them all -------------------------------------------------------


def worker_pids(supervisor: int) -> list[int]:
    """uvicorn's workers: the supervisor's children started by multiprocessing's spawn."""
    workers = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == supervisor and b"spawn_main" in cmdline:
            workers.append(int(entry.name))
    return sorted(workers)


def environment_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode().split("=", 1) for item in raw.split(b"\0") if b"=" in item)


def per_worker(metrics_dir: Path, kind: str, name: str, **labels: str) -> dict[int, float]:
    """One sample's value in each worker's own file (`kind`: counter, gauge_livesum, ...), read alone."""
    values = {}
    for path in metrics_dir.glob(f"{kind}_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        alone = Path(tempfile.mkdtemp(prefix="todo-api-one-worker-"))
        try:
            shutil.copy(path, alone / path.name)
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=str(alone))  # type: ignore[no-untyped-call]
            values[pid] = sum(
                sample.value
                for metric in registry.collect()
                for sample in metric.samples
                if sample.name == name and sample.labels == labels
            )
        finally:
            shutil.rmtree(alone, ignore_errors=True)
    return values


@dataclass
class Workers:
    server: LiveServer
    pids: list[int]
    metrics_dir: Path

    def requests_by_worker(self, method: str, route: str, status: str) -> dict[int, float]:
        """Each worker's own count of these requests."""
        return per_worker(self.metrics_dir, "counter", "http_requests_total", method=method, route=route, status=status)


def start_two_workers(database_url: str, root: Path, **overrides: str) -> Iterator[Workers]:
    env = server_env(
        DATABASE_URL=database_url,
        PORT=str(free_port()),
        WEB_CONCURRENCY="2",  # and no PROMETHEUS_MULTIPROC_DIR: __main__ must provide one
        # Two of these servers run at once (the module's and the kill test's), beside the suite's
        # other apps, on a test server with 100 connections: 40 concurrent requests must queue
        # for 5 connections a worker, not open 20 each.
        DB_POOL_SIZE="5",
        BCRYPT_COST="4",
        LOG_FORMAT="json",
        THROTTLE_SIGNUP_PER_ADDRESS="100000",
        THROTTLE_LOGIN_PER_ADDRESS="100000",
        **overrides,
    )
    with live_server(env, log_path=root / "server.log") as server:
        pids = worker_pids(server.pid)
        assert len(pids) == 2, (pids, server.log_text())
        dirs = {environment_of(pid).get("PROMETHEUS_MULTIPROC_DIR") for pid in pids}
        assert len(dirs) == 1, f"the workers do not share one PROMETHEUS_MULTIPROC_DIR: {dirs}"
        (metrics_dir,) = dirs
        assert metrics_dir, "the workers run without PROMETHEUS_MULTIPROC_DIR: each counts on its own"
        yield Workers(server, pids, Path(metrics_dir))


@pytest.fixture(scope="module")
def workers(database_url: str) -> Iterator[Workers]:
    root = Path(tempfile.mkdtemp(prefix="todo-api-metrics-"))
    try:
        yield from start_two_workers(database_url, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def settled_shares(workers: Workers, n: int) -> dict[int, float]:
    """Per-worker counts once all `n` are in: a worker counts a request just after its last byte."""
    deadline = time.monotonic() + 5
    while True:
        shares = workers.requests_by_worker("GET", TASKS_ROUTE, "200")
        if sum(shares.values()) >= n or time.monotonic() > deadline:
            return shares
        await asyncio.sleep(0.05)


def fresh_connections(base_url: str) -> httpx.AsyncClient:
    """No keep-alive: every request opens its own connection, which either worker may accept."""
    return httpx.AsyncClient(base_url=base_url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0))


async def test_every_scrape_of_either_worker_reports_all_workers_requests(workers: Workers) -> None:
    async with fresh_connections(workers.server.base_url) as http:
        user = await sign_up(http)
        gate = asyncio.Semaphore(50)

        async def list_tasks() -> httpx.Response:
            async with gate:
                return await http.get(tasks_url(), headers=user.headers)

        # 200 requests, then more until both workers have served some (the kernel picks the worker).
        n = 0
        shares: dict[int, float] = {}
        while n < 200 or len([share for share in shares.values() if share > 0]) < 2:
            assert n < 3000, f"one worker served all {n} requests: {shares}"
            responses = await asyncio.gather(*(list_tasks() for _ in range(100)))
            assert Counter(response.status_code for response in responses) == {200: 100}
            n += 100
            shares = await settled_shares(workers, n)

        # Each worker's own file has its share, and the shares add up to every request.
        assert set(shares) <= set(workers.pids), (shares, workers.pids)
        assert sum(shares.values()) == n, shares
        print(f"\n{n} requests to {TASKS_ROUTE}, per worker: {shares}")

        # Scrape, in concurrent batches so both workers answer: every answer has the full count.
        seen: list[float] = []
        for _ in range(6):
            scrapes = await asyncio.gather(*(http.get("/metrics") for _ in range(8)))
            for response in scrapes:
                assert response.status_code == 200
                parsed = Scrape.parse(response.text)
                seen.append(parsed.value("http_requests_total", method="GET", route=TASKS_ROUTE, status="200"))
                assert parsed.value("http_request_duration_seconds_count", method="GET", route=TASKS_ROUTE) == n
                assert parsed.has("db_pool_connections_open")
                assert parsed.has("db_pool_connections_in_use")
                assert parsed.value("db_pool_connections_open") >= 2  # both workers' pools, summed
            answered = workers.requests_by_worker("GET", "/metrics", "200")
            if len([count for count in answered.values() if count >= 3]) == 2:
                break
        assert set(seen) == {n}, Counter(seen)
        answered = workers.requests_by_worker("GET", "/metrics", "200")
        assert len([count for count in answered.values() if count > 0]) == 2, f"one worker answered all: {answered}"


async def test_a_killed_worker_leaves_no_phantom_pool_connections_in_the_gauges(database_url: str) -> None:
    """uvicorn replaces a worker that dies (or that it kills for failing its health check). The
    counters keep the dead worker's requests, as counters should; the pool gauges must not keep
    its connections: they were closed with the process."""
    root = Path(tempfile.mkdtemp(prefix="todo-api-metrics-kill-"))
    try:
        # No background passes: one could hold a pooled connection of the other worker just as
        # the test looks for the one worker with a connection in use (the PATCH's).
        for running in start_two_workers(database_url, root, RUN_WORKERS="false"):
            await kill_a_worker_mid_request_then_scrape(running, database_url)
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def kill_a_worker_mid_request_then_scrape(running: Workers, database_url: str) -> None:
    async with fresh_connections(running.server.base_url) as http:
        user = await sign_up(http)
        task = await create_task(http, user)
        warm = await asyncio.gather(*(http.get(tasks_url(), headers=user.headers) for _ in range(40)))
        assert {response.status_code for response in warm} == {200}

        # A PATCH held on a row lock: its worker has one pooled connection checked out.
        lock = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            async with lock.transaction():
                await lock.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", task["id"])
                patch = asyncio.create_task(
                    http.patch(task_url(task["id"]), json={"title": "Never"}, headers=user.headers)
                )
                holder = None
                for _ in range(200):
                    await asyncio.sleep(0.02)
                    in_use = per_worker(running.metrics_dir, "gauge_livesum", "db_pool_connections_in_use")
                    busy = [pid for pid, value in in_use.items() if value >= 1]
                    if busy:
                        (holder,) = busy
                        break
                assert holder in running.pids, (holder, running.pids)
                dead_open = per_worker(running.metrics_dir, "gauge_livesum", "db_pool_connections_open")[holder]
                assert dead_open >= 1  # what it held when it died
                os.kill(holder, signal.SIGKILL)
                with pytest.raises(httpx.TransportError):
                    await patch
        finally:
            await lock.close()

        # uvicorn starts a replacement; wait until two live workers serve again.
        deadline = time.monotonic() + 60
        while True:
            pids = worker_pids(running.server.pid)
            if len(pids) == 2 and holder not in pids:
                break
            assert time.monotonic() < deadline, f"no replacement worker: {pids}\n{running.server.log_text()}"
            await asyncio.sleep(0.1)
        ready = await asyncio.gather(*(http.get("/readyz") for _ in range(20)))
        assert {response.status_code for response in ready} == {200}
        await asyncio.sleep(0.5)  # let the last requests' check-ins reach the gauges

        live_open = per_worker(running.metrics_dir, "gauge_livesum", "db_pool_connections_open")
        for response in await asyncio.gather(*(http.get("/metrics") for _ in range(8))):
            assert response.status_code == 200
            scraped = Scrape.parse(response.text)
            assert scraped.value("db_pool_connections_in_use") == 0, (
                "db_pool_connections_in_use counts the killed worker's checked-out connection"
            )
            assert scraped.value("db_pool_connections_open") == sum(
                value for pid, value in live_open.items() if pid in pids
            ), f"db_pool_connections_open counts the killed worker's {dead_open:.0f} closed connections"
