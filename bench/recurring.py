"""Recurring tasks and reminders: what completing an occurrence costs against a plain completion,
and how late the reminder scheduler fires with 100,000 reminders armed.

    .venv/bin/python -m bench.recurring [--completions 300] [--due 10000] [--armed 100000] [--spread 10]

Starts `python -m todo_api` (one worker, production settings, its workers running: the scheduler
polls every second) on a fresh `todo_bench_recurring` database (DATABASE_URL's server, else the
embedded one in .data/bench), signs one person up, then:

- completes `--completions` one-off tasks and as many recurring ones (`FREQ=DAILY`, so each creates
  its next occurrence in the same transaction), alternating, one request at a time on one kept-alive
  connection, and reports each kind's p50/p99 and the ratio of the medians (issue 15: at most 1.5);
- arms `--armed` reminders (SQL, as the API would store them), `--due` of them falling due over the
  next `--spread` seconds and the rest days later, waits until the due ones fired and reports the lag
  (`fired_at - fire_at`, both stamped by the server) p50/p99/max, and whether each fired exactly once
  (one `task.reminder_due` event each).

Not in `python -m bench` (compare): those scenarios measure the API against the bare-ASGI baseline,
which has neither series nor reminders; these figures are the API against itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time

import httpx
from bench import database as db

NAME = "todo_bench_recurring"
HOST = "127.0.0.1"
SECRET_KEY = "bench-recurring-secret-key-0123456789-abcdefghijklmnopqrstuv"  # noqa: S105 - a bench key
PEPPER = "bench-recurring-pepper-0123456789-abcdefghijklmnopqrstuvwxyz-01"
DAILY = {"rule": "FREQ=DAILY", "timezone": "Europe/Berlin", "from": "due"}

# `--armed` tasks of the person, each with one reminder: the first `--due` fire over the next
# `--spread` seconds (from 5 s after the seed, so the seed's own commit is not measured), the rest
# from a day later on. The reminders table is filled as the API's `arm` fills it.
SEED = """
WITH inbox AS (SELECT id, user_id FROM lists WHERE user_id = $1 AND is_inbox),
made AS (
    INSERT INTO tasks (user_id, list_id, position, title, due_at, reminders)
    SELECT inbox.user_id, inbox.id, 'b' || lpad(n::text, 7, '0'), 'Reminded ' || n,
           CASE WHEN n <= $3 THEN now() + interval '5 seconds' + (n * $4::float8 / $3) * interval '1 second'
                ELSE now() + interval '1 day' + n * interval '1 second' END + interval '15 minutes',
           '[{"before": "PT15M"}]'::jsonb
    FROM inbox, generate_series(1, $2::int) AS n
    RETURNING id, user_id, due_at
)
INSERT INTO reminders (task_id, user_id, ordinal, fire_at)
SELECT id, user_id, 0, due_at - interval '15 minutes' FROM made
"""
LAG = """
SELECT extract(epoch FROM fired_at - fire_at) * 1000 AS lag_ms FROM reminders
WHERE fired_at IS NOT NULL AND fire_at > $1
"""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def spread(values: list[float]) -> str:
    return f"p50 {statistics.median(values):.1f} ms, p99 {percentile(values, 0.99):.1f} ms, max {max(values):.1f} ms"


async def main(o: argparse.Namespace) -> int:
    async with db.server() as (server_url, source):
        print(f"PostgreSQL: {source}")
        async with db.connect(db.dsn(server_url)) as admin:
            await admin.execute(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{NAME}"')
        url = db.dsn(server_url, NAME)
        alembic = [sys.executable, "-m", "alembic", "-c", str(db.ROOT / "alembic.ini"), "upgrade", "head"]
        migrate_env = {**os.environ, "DATABASE_URL": url}
        await asyncio.to_thread(subprocess.run, alembic, cwd=db.ROOT, env=migrate_env, check=True, capture_output=True)
        port = _free_port()
        env = {**os.environ, "ENVIRONMENT": "production", "DATABASE_URL": url, "SECRET_KEY": SECRET_KEY,
               "PASSWORD_PEPPER": PEPPER, "BCRYPT_COST": "4", "LOG_LEVEL": "WARNING", "HOST": HOST,
               "PORT": str(port), "WEB_CONCURRENCY": "1", "RUN_WORKERS": "true", "PYTHONUNBUFFERED": "1"}  # fmt: skip
        (db.ROOT / ".data").mkdir(exist_ok=True)
        log = (db.ROOT / ".data" / "bench-recurring.log").open("wb")
        server = subprocess.Popen(  # noqa: ASYNC220 - starting the server, once
            [sys.executable, "-m", "todo_api"], cwd=db.ROOT, env=env, stdout=log, stderr=log, start_new_session=True
        )
        try:
            async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=30) as client:
                token = await _ready(client)
                completions = await _completions(client, token, o.completions)
                scheduler = await _scheduler(client, url, token, o)
            return 0 if completions and scheduler else 1
        finally:
            server.terminate()
            server.wait(30)


async def _ready(client: httpx.AsyncClient) -> str:
    for _ in range(300):
        with contextlib.suppress(httpx.TransportError):
            if (await client.get("/healthz")).status_code == 200:
                break
        await asyncio.sleep(0.1)
    signed = await client.post("/api/auth/signup", json={"email": "series@bench.example", "password": db.PASSWORD})
    signed.raise_for_status()
    token: str = signed.json()["access_token"]
    return token


async def _completions(client: httpx.AsyncClient, token: str, count: int) -> bool:
    headers = {"Authorization": f"Bearer {token}"}
    due = "2027-03-01T08:30:00Z"
    ids: dict[str, list[int]] = {"plain": [], "recurring": []}
    for _ in range(count + 20):  # 20 of each warm the code paths up, unmeasured
        for kind, extra in (("plain", {}), ("recurring", {"recurrence": DAILY})):
            created = await client.post("/api/me/tasks", json={"title": "t", "due_at": due, **extra}, headers=headers)
            created.raise_for_status()
            ids[kind].append(created.json()["id"])
    times: dict[str, list[float]] = {"plain": [], "recurring": []}
    for n in range(count + 20):
        for kind in ("plain", "recurring") if n % 2 else ("recurring", "plain"):
            started = time.perf_counter()
            done = await client.patch(
                f"/api/me/tasks/{ids[kind][n]}/complete", json={"completed": True}, headers=headers
            )
            elapsed = (time.perf_counter() - started) * 1000
            done.raise_for_status()
            if n >= 20:
                times[kind].append(elapsed)
    successors = (await client.get("/api/me/tasks?recurring=true&status=pending&include_total=true&limit=1",
                                   headers=headers)).json()["meta"]["total"]  # fmt: skip
    ratio = statistics.median(times["recurring"]) / statistics.median(times["plain"])
    print(f"completing, {count} of each, one at a time:")
    print(f"  plain toggle:            {spread(times['plain'])}")
    print(f"  recurring (+ successor): {spread(times['recurring'])}")
    print(f"  ratio of medians: {ratio:.2f} (issue 15: at most 1.5); next occurrences created: {successors}")
    return bool(successors == count + 20)


async def _scheduler(client: httpx.AsyncClient, url: str, token: str, o: argparse.Namespace) -> bool:
    me = (await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})).json()["id"]
    async with db.connect(url) as connection:
        started = time.perf_counter()
        await connection.execute(SEED, me, o.armed, o.due, o.spread)
        await connection.execute("ANALYZE reminders")
        seeded_at = await connection.fetchval("SELECT now()")
        print(f"armed {o.armed:,} reminders in {time.perf_counter() - started:.1f} s; {o.due:,} fall due over "
              f"{o.spread:g} s")  # fmt: skip
        deadline = time.monotonic() + o.spread + 60
        fired = 0
        while time.monotonic() < deadline:
            fired = await connection.fetchval("SELECT count(*) FROM reminders WHERE fired_at IS NOT NULL")
            if fired >= o.due:
                break
            await asyncio.sleep(0.5)
        lags = [float(row["lag_ms"]) for row in await connection.fetch(LAG, seeded_at)]
        events = await connection.fetchval("SELECT count(*) FROM events WHERE type = 'task.reminder_due'")
        distinct = await connection.fetchval(
            "SELECT count(DISTINCT payload->'data'->'reminder'->>'id') FROM events WHERE type = 'task.reminder_due'"
        )
        armed = await connection.fetchval("SELECT count(*) FROM reminders WHERE fired_at IS NULL")
    print(f"  fired {fired:,} of {o.due:,}; lag (fired_at - fire_at): {spread(lags) if lags else 'none'}")
    print(f"  task.reminder_due events: {events:,} for {distinct:,} reminders; still armed: {armed:,}")
    return bool(fired == o.due == events == distinct)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--completions", type=int, default=300)
    parser.add_argument("--armed", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--spread", type=float, default=10.0, help="seconds over which the due ones fall due")
    sys.exit(asyncio.run(main(parser.parse_args())))
