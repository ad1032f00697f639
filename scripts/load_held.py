"""Load held: mixed traffic at the highest rate the API sustains, for a minute, with 2 workers.

    .venv/bin/python -m scripts.load_held [--duration 60] [--workers 2] [--connections N]

What it does:
1. PostgreSQL: DATABASE_URL if set, else an embedded server in a temporary directory; migrated.
2. `python -m todo_api` as a real process (WEB_CONCURRENCY=--workers, a free port, JSON logs to a
   file, throttles out of the way), via the tests' `live_server` helper.
3. Seeds a few users (through the API) with tasks each.
4. Closed-loop load from one asyncio (uvloop) process speaking raw keep-alive HTTP/1.1, each
   connection as one of the users: list 50%, get 15%, create 15%, toggle 10%, patch 5%, login 2%,
   and 3% deliberate failures (a 404 and a 422, expected). Without --connections, a calibration
   (5 s at each of 4, 8, 16, 32 and 64 connections, which is also the warm-up) picks the fewest
   connections within 5% of the best rate.
5. Reports requests served, req/s, statuses (expected vs unexpected), p50/p99 (overall and per
   kind), and the RSS of each worker before (after the warm-up) and after the run.

Exit status 1 when anything unexpected happened (a non-2xx the mix did not ask for, a socket error,
an `unhandled_exception` in the server log), else 0.

The generator is Python, not wrk: every connection is a user of its own (its token, its task
ids) and each request is drawn from the mix. It runs on the same machine as the server and the
database, so it takes some of the CPU the server could have had (its share is printed, as is the
load average, since anything else running on the machine skews the figures).
Login uses BCRYPT_COST=--bcrypt-cost (4 by default, like the tests): at the production cost of 12
one verification takes ~0.37 s of CPU here, so 2% logins would make the run a bcrypt benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvloop
from tests.integration.live_server import ROOT, LiveServer, free_port, live_server, server_env

from todo_api.adapters.sql.embedded import embedded_postgres

PASSWORD = "load-held-password-correct-horse-77"  # noqa: S105 - the seeded accounts' known password
SECRET_KEY = "load-held-secret-key-0123456789abcdefghijklmnopqrstuv"  # noqa: S105 - a throwaway server's
PRIORITIES = ("none", "low", "medium", "high")

# kind: (weight %, the statuses that kind is meant to get)
MIX: dict[str, tuple[int, frozenset[int]]] = {
    "list": (50, frozenset({200})),
    "get": (15, frozenset({200})),
    "create": (15, frozenset({201})),
    "toggle": (10, frozenset({200})),
    "patch": (5, frozenset({200})),
    "login": (2, frozenset({200})),
    "expected_404": (2, frozenset({404})),
    "expected_422": (1, frozenset({422})),
}
EXPECTED_4XX = {"expected_404", "expected_422"}


# Raw HTTP/1.1 -----------------------------------------------------------------------------------


def render(method: str, path: str, *, port: int, token: str | None = None, body: object = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    payload = b""
    if body is not None:
        payload = json.dumps(body).encode()
        lines.append("Content-Type: application/json")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


class Connection:
    """One keep-alive connection; reconnects when the server closed the last one."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self, message: bytes) -> int:
        if self.streams is None:
            self.streams = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 5)
        reader, writer = self.streams
        writer.write(message)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        status = int(head[9:12])
        lowered = head.lower()
        length = 0
        if (at := lowered.find(b"\r\ncontent-length:")) >= 0:
            length = int(lowered[at + 17 : lowered.find(b"\r\n", at + 2)])
        if length:
            await reader.readexactly(length)
        if b"\r\nconnection: close" in lowered:
            self.close()
        return status

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
        self.streams = None


# The traffic -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    email: str
    token: str
    task_ids: tuple[int, ...]


@dataclass
class Requests:
    """Pre-rendered requests for one account, by kind."""

    by_kind: dict[str, list[bytes]]

    @classmethod
    def for_account(cls, account: Account, port: int) -> Requests:
        token, ids = account.token, account.task_ids
        by_kind: dict[str, list[bytes]] = {
            "list": [
                render("GET", "/api/me/tasks?limit=20", port=port, token=token),
                render("GET", "/api/me/tasks?status=pending&limit=20", port=port, token=token),
                render("GET", "/api/me/tasks?sort=due_at&limit=20", port=port, token=token),
            ],
            "get": [render("GET", f"/api/me/tasks/{i}", port=port, token=token) for i in ids],
            "create": [
                render(
                    "POST", "/api/me/tasks", port=port, token=token, body={"title": f"Load task {n}", "tags": ["load"]}
                )
                for n in range(16)
            ],
            "toggle": [render("PATCH", f"/api/me/tasks/{i}/complete", port=port, token=token) for i in ids],
            "patch": [
                render("PATCH", f"/api/me/tasks/{i}", port=port, token=token, body={"priority": PRIORITIES[i % 4]})
                for i in ids
            ],
            "login": [
                render("POST", "/api/auth/login", port=port, body={"email": account.email, "password": PASSWORD})
            ],
            "expected_404": [render("GET", "/api/me/tasks/9000000000000", port=port, token=token)],
            "expected_422": [render("POST", "/api/me/tasks", port=port, token=token, body={"title": ""})],
        }
        return cls(by_kind)


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    socket_errors: Counter[str] = field(default_factory=Counter)

    @property
    def served(self) -> int:
        return sum(sum(counts.values()) for counts in self.statuses.values())


async def closed_loop(accounts: Sequence[Requests], port: int, connections: int, duration_s: float) -> Tally:
    tally = Tally()
    kinds = list(MIX)
    weights = [MIX[kind][0] for kind in kinds]
    deadline = time.perf_counter() + duration_s

    async def one_connection(index: int) -> None:
        requests = accounts[index % len(accounts)].by_kind
        rng = random.Random(index)
        connection = Connection(port)
        try:
            while time.perf_counter() < deadline:
                kind = rng.choices(kinds, weights)[0]
                message = rng.choice(requests[kind])
                started = time.perf_counter()
                try:
                    status = await connection.request(message)
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as error:
                    tally.socket_errors[type(error).__name__] += 1
                    connection.close()
                    await asyncio.sleep(0.01)
                    continue
                tally.latencies[kind].append(time.perf_counter() - started)
                tally.statuses[kind][status] += 1
        finally:
            connection.close()

    await asyncio.gather(*(one_connection(i) for i in range(connections)))
    return tally


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


# The server --------------------------------------------------------------------------------------


def worker_pids(server: LiveServer) -> list[int]:
    """The uvicorn workers: the supervisor's children started by multiprocessing (not its tracker)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
            if parent == server.pid and b"spawn_main" in cmdline:
                pids.append(int(entry.name))
    return sorted(pids) or [server.pid]  # one worker: the server process serves itself


def wait_for_workers(server: LiveServer, workers: int, timeout_s: float) -> None:
    """Until `workers` workers exist and have had time to start their apps (readiness answered
    from one of them already)."""
    deadline = time.monotonic() + timeout_s
    while len(worker_pids(server)) < workers and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextlib.contextmanager
def database() -> Iterator[tuple[str, str]]:
    """(URL, where it came from): DATABASE_URL, else an embedded server in a temporary directory."""
    if url := os.environ.get("DATABASE_URL"):
        yield url, "DATABASE_URL"
        return
    with (
        tempfile.TemporaryDirectory(prefix="todo-load-held-") as scratch,
        embedded_postgres(Path(scratch) / "pg") as url,
    ):
        yield url, f"embedded ({scratch})"


def migrate(url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade", "head"],
        env=server_env(DATABASE_URL=url),
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


async def seed(base_url: str, users: int, tasks_per_user: int) -> list[Account]:
    accounts = []
    run = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        for n in range(users):
            email = f"load-{run}-{n}@example.com"
            response = await http.post("/api/auth/signup", json={"email": email, "password": PASSWORD})
            response.raise_for_status()
            token = response.json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            ids = []
            for t in range(tasks_per_user):
                created = await http.post(
                    "/api/me/tasks",
                    json={"title": f"Seeded task {t}", "priority": PRIORITIES[t % 4], "due_at": "2027-01-01T09:00:00Z"},
                    headers=auth,
                )
                created.raise_for_status()
                ids.append(int(created.json()["id"]))
            accounts.append(Account(email, token, tuple(ids)))
    return accounts


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# The run -----------------------------------------------------------------------------------------


def report(
    tally: Tally,
    *,
    duration_s: float,
    workers: int,
    connections: int,
    bcrypt_cost: int,
    source: str,
    rss_start: dict[int, float],
    rss_before: dict[int, float],
    rss_after: dict[int, float],
    load_average: tuple[float, float],
    generator_cpu_s: float,
    server_log: Sequence[str],
) -> bool:
    served = tally.served
    all_latencies = [value for values in tally.latencies.values() for value in values]
    by_status: Counter[int] = Counter()
    expected_4xx: Counter[int] = Counter()
    unexpected: Counter[tuple[str, int]] = Counter()
    for kind, counts in tally.statuses.items():
        for status, count in counts.items():
            by_status[status] += count
            if status in MIX[kind][1]:
                if status >= 400:
                    expected_4xx[status] += count
            else:
                unexpected[(kind, status)] += count
    records = []
    for line in server_log:
        with contextlib.suppress(ValueError):
            records.append(json.loads(line))
    crashes = sum(1 for r in records if r.get("event") == "unhandled_exception")
    errors = sum(1 for r in records if r.get("level") in ("error", "critical"))
    access = sum(1 for r in records if r.get("event") == "request")

    print(f"load_held: {duration_s:.0f} s closed loop, {workers} workers, {connections} connections, database {source}")
    print(f"  machine               {os.cpu_count()} CPUs shared by the workers, PostgreSQL and this generator")
    print(f"  load average          {load_average[0]:.2f} before, {load_average[1]:.2f} after (1 min)")
    print(f"  bcrypt cost           {bcrypt_cost}")
    print(f"  requests served       {served} ({served / duration_s:.1f} req/s)")
    mix = ", ".join(f"{kind} {sum(tally.statuses[kind].values())}" for kind in MIX)
    print(f"  by kind               {mix}")
    print(f"  statuses              {dict(sorted(by_status.items()))}")
    print(f"  2xx                   {sum(c for s, c in by_status.items() if 200 <= s < 300)}")
    print(f"  expected 4xx          {sum(expected_4xx.values())} {dict(sorted(expected_4xx.items()))}")
    unexpected_text = {f"{kind} {status}": count for (kind, status), count in sorted(unexpected.items())}
    print(f"  unexpected non-2xx    {sum(unexpected.values())} {unexpected_text or ''}".rstrip())
    print(f"  socket errors         {sum(tally.socket_errors.values())} {dict(tally.socket_errors) or ''}".rstrip())
    print(
        f"  latency               p50 {percentile(all_latencies, 50) * 1000:.1f} ms, "
        f"p99 {percentile(all_latencies, 99) * 1000:.1f} ms, max {max(all_latencies, default=0) * 1000:.1f} ms"
    )
    for kind in MIX:
        values = tally.latencies[kind]
        print(
            f"    {kind:<19} p50 {percentile(values, 50) * 1000:6.1f} ms  p99 {percentile(values, 99) * 1000:6.1f} ms"
        )
    print("  worker RSS            at start / before the run (after warm-up) -> after the run")
    for pid in sorted(rss_before):
        start, before, after = rss_start.get(pid, 0.0), rss_before[pid], rss_after.get(pid, 0.0)
        print(f"    pid {pid:<15} {start:6.1f} / {before:6.1f} MiB -> {after:6.1f} MiB ({after - before:+.1f} MiB)")
    print(f"  generator CPU         {generator_cpu_s:.1f} s ({generator_cpu_s / duration_s * 100:.0f}% of one CPU)")
    print(f"  server log            {access} access lines, {crashes} unhandled_exception, {errors} error lines")
    return not unexpected and not tally.socket_errors and not crashes


async def calibrate(accounts: Sequence[Requests], port: int, steps: Sequence[int], step_s: float) -> int:
    """Every step is tried (one noisy step must not end the search); the answer is the fewest
    connections within 5% of the best rate, since more beyond that only queue."""
    rates = {}
    for connections in steps:
        tally = await closed_loop(accounts, port, connections, step_s)
        rates[connections] = tally.served / step_s
        print(f"  calibration: {connections:>3} connections -> {rates[connections]:7.1f} req/s", flush=True)
    best = max(rates.values())
    return min(connections for connections, rate in rates.items() if rate >= best * 0.95)


async def run(args: argparse.Namespace) -> int:
    port = free_port()
    with database() as (url, source), tempfile.TemporaryDirectory(prefix="todo-load-held-log-") as logs:
        print(f"database: {source}; migrating", flush=True)
        await asyncio.to_thread(migrate, url)
        env = server_env(
            DATABASE_URL=url,
            PORT=str(port),
            SECRET_KEY=SECRET_KEY,
            WEB_CONCURRENCY=str(args.workers),
            BCRYPT_COST=str(args.bcrypt_cost),
            LOG_FORMAT="json",
            THROTTLE_LOGIN_PER_ACCOUNT="100000000",
            THROTTLE_LOGIN_PER_ADDRESS="100000000",
            THROTTLE_SIGNUP_PER_ADDRESS="100000000",
        )
        with live_server(env, log_path=Path(logs) / "server.log", cwd=Path(logs)) as server:
            await asyncio.to_thread(wait_for_workers, server, args.workers, 60.0)
            rss_start = {pid: rss_mib(pid) for pid in worker_pids(server)}
            print(f"server pid {server.pid}, workers {sorted(rss_start)}; seeding", flush=True)
            accounts = await seed(server.base_url, args.users, args.tasks_per_user)
            requests = [Requests.for_account(account, port) for account in accounts]

            if args.connections:
                connections = args.connections
                await closed_loop(requests, port, connections, args.warmup)  # warm-up
            else:
                connections = await calibrate(requests, port, (4, 8, 16, 32, 64), args.warmup)
            pids = worker_pids(server)
            rss_before = {pid: rss_mib(pid) for pid in pids}
            print(f"running {args.duration:.0f} s with {connections} connections", flush=True)
            load_before = os.getloadavg()[0]
            cpu_start = cpu_seconds()
            started = time.perf_counter()
            tally = await closed_loop(requests, port, connections, args.duration)
            elapsed = time.perf_counter() - started
            generator_cpu = cpu_seconds() - cpu_start
            rss_after = {pid: rss_mib(pid) for pid in pids}
            load_after = os.getloadavg()[0]
            server.stop()
            ok = report(
                tally,
                duration_s=elapsed,
                workers=args.workers,
                connections=connections,
                bcrypt_cost=args.bcrypt_cost,
                source=source,
                rss_start=rss_start,
                rss_before=rss_before,
                rss_after=rss_after,
                load_average=(load_before, load_after),
                generator_cpu_s=generator_cpu,
                server_log=server.log_lines(),
            )
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of measured load (default 60)")
    parser.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY (default 2)")
    parser.add_argument("--connections", type=int, default=0, help="skip calibration and use this many")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds per calibration step / warm-up")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--tasks-per-user", type=int, default=50)
    parser.add_argument("--bcrypt-cost", type=int, default=4)
    args = parser.parse_args()
    return uvloop.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
