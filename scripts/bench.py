"""`make bench`: how fast is the API, against what the same work costs without the framework?

What it does, from a fresh clone, in one run:

1. PostgreSQL: DATABASE_URL's server if set, else the embedded one (data in `.data/bench`). A fresh
   database `todo_bench` is created there (dropped first if a previous run left it), migrated,
   and seeded by `scripts.bench_seed` (1,000 users x 1,000 tasks plus one user with 60,000).
2. Two servers, both `uvicorn --factory` on 127.0.0.1 with the same workers, loop and parser:
   the API (`todo_api.main:create_app`, ENVIRONMENT=production) and the baseline
   (`scripts.bench_baseline:create_app`), a bare ASGI app doing the same work per request.
3. Each scenario is driven by wrk (installed with apt-get when missing; a Python load generator
   otherwise, said loudly) against both, in alternating rounds (API, baseline, then baseline, API
   ...) so drifting noise hits both alike. Reported: req/s (2xx only, median of rounds), p50/p99
   latency (medians), errors (non-2xx plus socket errors, summed), API / baseline and RSS. After a
   scenario that writes, the database is vacuumed, analysed and checkpointed before the next.
4. The targets: the list at a fixed rate of half the API's maximum (open loop, latency counted
   from when each request was due: wrk2's method, which wrk lacks and Debian does not package),
   p99 <= 15 ms; the same with two logins in flight all the time (>= 99% of the offered rate kept,
   p99 at most doubled); RSS per worker after the run and after a second pass.
5. A table on stdout, everything as JSON in `bench-results/latest.json`, server logs beside it.

The machine matters: with two cores the load generator, PostgreSQL and the server share them, so
absolute numbers are low and noisy; the ratio to the baseline is the number to watch.

    .venv/bin/python -m scripts.bench [--workers N] [--duration S] [--rounds R] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import uvloop
from alembic import command
from alembic.config import Config as AlembicConfig
from jose import jwt
from scripts import bench_seed
from scripts.bench_load import LoadResult, closed_loop, fetch, paced
from scripts.bench_report import PacedResult, Report, ScenarioResult, print_report, write_json
from sqlalchemy import make_url

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench-results"
DATABASE = "todo_bench"
HOST = "127.0.0.1"
SECRET_KEY = "todo-api-bench-secret-key-0123456789abcdefghijkl"  # noqa: S105 - 48 characters, bench only
PEPPER = "todo-api-bench-pepper-0123456789abcdefghijklmnop"
ISSUER = AUDIENCE = "todo-api"
TOKEN_LIFETIME_S = 6 * 3600  # minted tokens outlive the longest run
NO_THROTTLE = "1000000000"
SAMPLE_USERS = 200  # users whose tokens the scenarios spread over
TASK_SAMPLES = 2000  # (user, task) pairs for get and for toggle
LOGIN_USERS = 50
CREATE_REQUESTS = 1000  # distinct create requests (bodies and users vary independently)
DEPTH = 50_000
SEARCH_QUERY = "status=pending&priority=high&priority=medium&tag=work&q=report"


# Options ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    workers: int
    duration_s: float
    rounds: int
    warmup_s: float
    connections: int
    threads: int
    paced_connections: int
    users: int
    tasks_per_user: int
    deep_tasks: int
    reuse_data: bool
    python_load: bool
    quick: bool
    only: tuple[str, ...] = ()


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers, for both servers (default 1)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per round (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per scenario and server (default 3)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per scenario and server")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (login uses 4)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--paced-connections", type=int, default=64, help="connections of the fixed-rate runs")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--tasks-per-user", type=int, default=1000)
    parser.add_argument("--deep-tasks", type=int, default=60_000)
    parser.add_argument("--reuse-data", action="store_true", help="keep an already seeded todo_bench (iterating)")
    parser.add_argument("--python-load", action="store_true", help="use the Python load generator, not wrk")
    parser.add_argument("--quick", action="store_true", help="2 s rounds, 2 rounds, 1 s warm-up: a smoke test")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated scenario keys (list,deep,get,create,toggle,search,login): measure just those, "
        "without the fixed-rate runs and the second pass (iterating)",
    )
    args = parser.parse_args(argv)
    if args.deep_tasks <= DEPTH + 100:
        parser.error(f"--deep-tasks must exceed {DEPTH + 100} for the depth scenario")
    quick = bool(args.quick)
    return Options(
        workers=args.workers,
        duration_s=2.0 if quick else args.duration,
        rounds=2 if quick else args.rounds,
        warmup_s=1.0 if quick else args.warmup,
        connections=args.connections,
        threads=args.threads,
        paced_connections=args.paced_connections,
        users=args.users,
        tasks_per_user=args.tasks_per_user,
        deep_tasks=args.deep_tasks,
        reuse_data=args.reuse_data,
        python_load=args.python_load,
        quick=quick,
        only=tuple(key for key in args.only.split(",") if key),
    )


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# The load generator -------------------------------------------------------------------------


def ensure_wrk() -> str | None:
    """wrk's path, installing Debian's package when it is missing and we may; None if impossible."""
    if found := shutil.which("wrk"):
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    say("wrk is missing: installing Debian's package (apt-get install wrk)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "wrk"]
    for refresh_first in (False, True):
        if refresh_first:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        subprocess.run(install, env=env, capture_output=True, check=False)
        if found := shutil.which("wrk"):
            return found
    return None


def wrk_version(wrk: str | None) -> str:
    if wrk is None:
        return "the Python closed-loop generator (not wrk)"
    output = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    return (output.stdout or output.stderr).splitlines()[0].strip() if (output.stdout or output.stderr) else "wrk"


# The database -------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_server() -> Iterator[tuple[str, str]]:
    """(server URL, where it came from): DATABASE_URL, else an embedded server in .data/bench."""
    if url := os.environ.get("DATABASE_URL"):
        yield url, "DATABASE_URL"
        return
    from todo_api.adapters.sql.embedded import embedded_postgres

    with embedded_postgres(ROOT / ".data" / "bench") as url:
        yield url, "embedded PostgreSQL (.data/bench)"


def plain_dsn(url: str, database: str | None = None) -> str:
    """A postgresql:// URL asyncpg takes, optionally pointing at another database."""
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def _database_state(server_dsn: str, users: int) -> bool:
    """Is there a seeded todo_bench with the expected number of users?"""
    connection = await asyncpg.connect(server_dsn)
    try:
        if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
            return False
    finally:
        await connection.close()
    bench = await asyncpg.connect(plain_dsn(server_dsn, DATABASE))
    try:
        count = await bench.fetchval("SELECT count(*) FROM users WHERE email LIKE '%@bench.example'")
    except asyncpg.PostgresError:
        return False
    finally:
        await bench.close()
    return bool(count == users + 1)


async def _recreate_database(server_dsn: str) -> None:
    connection = await asyncpg.connect(server_dsn)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await connection.close()


def migrate(database_url: str) -> None:
    config = AlembicConfig(str(ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


async def _password_hash() -> str:
    from todo_api.adapters.security.passwords import BcryptPasswordHasher

    hasher = BcryptPasswordHasher(pepper=PEPPER.encode(), cost=12)
    try:
        return await hasher.hash(bench_seed.PASSWORD)
    finally:
        hasher.close()


def prepare_database(server_url: str, options: Options) -> tuple[str, str]:
    """(the todo_bench URL, what was done): fresh, migrated and seeded, or reused when asked."""
    server_dsn = plain_dsn(server_url)
    database_url = plain_dsn(server_url, DATABASE)
    if options.reuse_data and asyncio.run(_database_state(server_dsn, options.users)):
        return database_url, "reused the seeded todo_bench (--reuse-data)"
    asyncio.run(_recreate_database(server_dsn))
    migrate(database_url)
    password_hash = asyncio.run(_password_hash())
    report = asyncio.run(
        bench_seed.seed(
            database_url,
            password_hash=password_hash,
            users=options.users,
            tasks_per_user=options.tasks_per_user,
            deep_tasks=options.deep_tasks,
        )
    )
    return database_url, bench_seed.describe(report)


# Requests and scenarios ---------------------------------------------------------------------


def mint_token(user_id: str) -> str:
    """An access token exactly as JwtAccessTokens.issue makes them (only the lifetime is longer)."""
    now = int(time.time())
    claims = {
        "sub": user_id,
        "sid": uuid.uuid4().hex,
        "iat": now,
        "exp": now + TOKEN_LIFETIME_S,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "jti": uuid.uuid4().hex,
        "type": "access",
    }
    return jwt.encode(claims, SECRET_KEY, algorithm="HS256")


def http_request(method: str, path: str, *, token: str | None = None, body: bytes | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "User-Agent: todo-bench"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    if body is not None:
        lines.append("Content-Type: application/json")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    title: str
    requests: list[bytes]
    connections: int
    threads: int
    timeout_s: int = 5
    writes: bool = False


@dataclass(frozen=True, slots=True)
class Fixtures:
    tokens: list[str]
    deep_token: str
    deep_cursor: str
    get_pairs: list[tuple[str, int]]
    toggle_pairs: list[tuple[str, int]]
    login_emails: list[str]


async def load_fixtures(database_url: str, options: Options) -> Fixtures:
    """Tokens for sample users, random tasks of theirs, and the cursor of the deep user's row 50,000."""
    from todo_api.adapters.http.cursors import CursorCodec
    from todo_api.domain.tasks import Position, Sort

    sample_ids = [bench_seed.user_id(i) for i in range(1, min(options.users, SAMPLE_USERS) + 1)]
    tokens = {user_id: mint_token(user_id) for user_id in sample_ids}
    deep_user = bench_seed.user_id(bench_seed.DEEP_USER_INDEX)
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("SELECT setseed(0.17)")
        rows = await connection.fetch(
            "SELECT user_id, id FROM tasks WHERE user_id = ANY($1::text[]) ORDER BY random() LIMIT $2",
            sample_ids,
            2 * TASK_SAMPLES,
        )
        row = await connection.fetchrow(
            "SELECT created_at, id FROM tasks WHERE user_id = $1 ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT 1",
            deep_user,
            DEPTH - 1,
        )
    finally:
        await connection.close()
    if row is None:
        raise RuntimeError(f"the deep user has fewer than {DEPTH} tasks")
    pairs = [(tokens[r["user_id"]], int(r["id"])) for r in rows]
    cursor = CursorCodec(SECRET_KEY).encode(Sort(), Position(row["created_at"], int(row["id"])))
    return Fixtures(
        tokens=list(tokens.values()),
        deep_token=mint_token(deep_user),
        deep_cursor=cursor,
        get_pairs=pairs[0::2],
        toggle_pairs=pairs[1::2],
        login_emails=[bench_seed.email(i) for i in range(1, min(options.users, LOGIN_USERS) + 1)],
    )


def _task_bodies(count: int) -> list[bytes]:
    """Varied, valid TaskCreate bodies, drawn like the seed's tasks (deterministically)."""
    draw = random.Random(42)
    bodies = []
    for _ in range(count):
        body: dict[str, Any] = {
            "title": f"{draw.choice(bench_seed.VERBS)} {draw.choice(bench_seed.OBJECTS)}",
            "priority": draw.choice(("none", "none", "low", "medium", "high")),
            "tags": draw.sample(bench_seed.TAGS, draw.randint(0, 3)),
        }
        if draw.random() < 0.5:
            parts = (bench_seed.OPENINGS, bench_seed.MIDDLES, bench_seed.ENDINGS)
            body["description"] = " ".join(draw.choice(part) for part in parts)
        if draw.random() < 0.6:
            body["due_at"] = f"2027-{draw.randint(1, 12):02d}-{draw.randint(1, 28):02d}T17:00:00Z"
        bodies.append(orjson.dumps(body))
    return bodies


def scenarios(fixtures: Fixtures, options: Options) -> list[Scenario]:
    c, t = options.connections, options.threads
    tokens = fixtures.tokens
    bodies = _task_bodies(CREATE_REQUESTS)  # one per request, so no user gets the same body every time
    logins = [orjson.dumps({"email": email, "password": bench_seed.PASSWORD}) for email in fixtures.login_emails]
    return [
        Scenario("list", "list first page", [http_request("GET", "/api/me/tasks", token=k) for k in tokens], c, t),
        Scenario(
            "deep",
            f"list at depth {DEPTH:,}",
            [http_request("GET", f"/api/me/tasks?cursor={fixtures.deep_cursor}", token=fixtures.deep_token)],
            c,
            t,
        ),
        Scenario(
            "get",
            "get one task",
            [http_request("GET", f"/api/me/tasks/{i}", token=k) for k, i in fixtures.get_pairs],
            c,
            t,
        ),
        Scenario(
            "create",
            "create",
            [
                http_request("POST", "/api/me/tasks", token=tokens[i % len(tokens)], body=body)
                for i, body in enumerate(bodies)
            ],
            c,
            t,
            writes=True,
        ),
        Scenario(
            "toggle",
            "toggle complete",
            [http_request("PATCH", f"/api/me/tasks/{i}/complete", token=k) for k, i in fixtures.toggle_pairs],
            c,
            t,
            writes=True,
        ),
        Scenario(
            "search",
            "filtered + searched list",
            [http_request("GET", f"/api/me/tasks?{SEARCH_QUERY}", token=k) for k in tokens],
            c,
            t,
        ),
        Scenario(
            "login",
            "login (bcrypt cost 12)",
            [http_request("POST", "/api/auth/login", body=body) for body in logins],
            connections=4,
            threads=1,
            timeout_s=10,
            writes=True,
        ),
    ]


# Servers ------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def worker_pids(self) -> list[int]:
        """uvicorn's worker processes (children spawned by its supervisor), or the process itself."""
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                spawned = b"spawn_main" in (entry / "cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                continue
            if parent == self.process.pid and spawned:
                children.append(int(entry.name))
        return sorted(children) or [self.process.pid]

    def rss_mib(self) -> list[float]:
        return [round(rss_kib(pid) / 1024, 1) for pid in self.worker_pids()]


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def server_environment(database_url: str, workers: int, metrics_dir: str) -> dict[str, str]:
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET_KEY,
        "PASSWORD_PEPPER": PEPPER,
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",
        "THROTTLE_LOGIN_PER_ACCOUNT": NO_THROTTLE,
        "THROTTLE_LOGIN_PER_ADDRESS": NO_THROTTLE,
        "THROTTLE_SIGNUP_PER_ADDRESS": NO_THROTTLE,
        "PYTHONUNBUFFERED": "1",
    }
    if workers > 1:
        env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # as `python -m todo_api` does with several workers
    return env


def start_server(name: str, factory: str, env: dict[str, str], workers: int) -> Server:
    port = free_port()
    log = RESULTS / f"{name}.log"
    command_line = [
        sys.executable, "-m", "uvicorn", factory, "--factory", "--host", HOST, "--port", str(port),
        "--workers", str(workers), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(
            command_line, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Server(name, port, process, log)


async def wait_until_up(server: Server, timeout_s: float = 60) -> None:
    """Poll /healthz until it answers 200; fail at once, with its log, if the server died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the {server.name} server exited with {server.process.returncode}:\n{tail}")
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ValueError):
            status, _ = await fetch(HOST, server.port, http_request("GET", "/healthz"))
            if status == 200:
                return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the {server.name} server did not answer /healthz within {timeout_s:.0f} s (see {server.log})")


def stop_server(server: Server) -> None:
    """SIGTERM to the server's own process group (it was started in a new session), then SIGKILL."""
    if server.process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=5)


# Running load -------------------------------------------------------------------------------

_LUA = """
local requests = {
%s
}
local count = #requests
local index = 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("offset", threads * 7919)
end

function init(args)
  index = (offset or 0) %% count
end

function request()
  index = index %% count + 1
  return requests[index]
end

function done(summary, latency, reqs)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,"write":%%d,"status":%%d,' ..
    '"timeout":%%d,"p50_us":%%d,"p99_us":%%d,"max_us":%%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def _lua_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r").replace("\n", "\\n")
    return f'"{escaped}"'


def write_lua(directory: Path, scenario: Scenario) -> Path:
    path = directory / f"{scenario.key}.lua"
    path.write_text(_LUA % ",\n".join(_lua_string(r.decode()) for r in scenario.requests))
    return path


def _wrk_result(output: str) -> LoadResult:
    line = next((line for line in output.splitlines() if line.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    return LoadResult(
        requests=data["requests"],
        non_2xx=data["status"],
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        duration_s=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
    )


class SessionCounter:
    """How many connections PostgreSQL accepted into the bench database (pg_stat_database.sessions).

    Only the server under load connects meanwhile, so the difference over a run is its pool churn:
    a healthy pool opens none once warm. PostgreSQL publishes the counter within about a second.
    """

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self._connection: asyncpg.Connection | None = None

    async def read(self) -> int:
        if self._connection is None:
            self._connection = await asyncpg.connect(self.url)
        await self._connection.execute("SELECT pg_stat_clear_snapshot()")
        value = await self._connection.fetchval(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        )
        return int(value or 0)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()


@dataclass
class Driver:
    """Runs a scenario against a server: wrk with a Lua script, or the Python generator."""

    wrk: str | None
    scripts: Path
    sessions: SessionCounter
    _lua: dict[str, Path] = field(default_factory=dict)

    async def measure(self, scenario: Scenario, server: Server, duration_s: float) -> tuple[LoadResult, int]:
        """A run, and the database connections the server opened during it."""
        before = await self.sessions.read()
        result = await self.run(scenario, server, duration_s)
        await asyncio.sleep(1.0)  # let the server's backends publish their statistics
        return result, await self.sessions.read() - before

    async def run(
        self, scenario: Scenario, server: Server, duration_s: float, connections: int | None = None
    ) -> LoadResult:
        conns = connections or scenario.connections
        if self.wrk is None:
            return await closed_loop(HOST, server.port, scenario.requests, connections=conns, duration_s=duration_s)
        if scenario.key not in self._lua:
            self._lua[scenario.key] = write_lua(self.scripts, scenario)
        threads = min(scenario.threads, conns)
        process = await asyncio.create_subprocess_exec(
            self.wrk, f"-t{threads}", f"-c{conns}", f"-d{max(1, round(duration_s))}s",
            f"--timeout={scenario.timeout_s}s", "-s", str(self._lua[scenario.key]), f"http://{HOST}:{server.port}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await process.communicate()
        return _wrk_result(output.decode(errors="replace"))


async def settle(database_url: str) -> None:
    """Vacuum, analyse and checkpoint after writes: what one scenario wrote must not leave autovacuum,
    GIN pending-list merges or the checkpointer to land inside the next scenario's measurement."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("VACUUM (ANALYZE)")
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):  # CHECKPOINT needs pg_checkpoint
            await connection.execute("CHECKPOINT")
    finally:
        await connection.close()


# Checks that both servers give the same answers ---------------------------------------------


def same_shape(a: object, b: object) -> bool:
    """The same keys and types, null matching anything (a toggle flips completed_at between them)."""
    if a is None or b is None:
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_shape(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return not a or not b or same_shape(a[0], b[0])
    return type(a) is type(b)


async def check_parity(scenario_list: Sequence[Scenario], api: Server, baseline: Server) -> list[str]:
    """Send each scenario's first request to both; reads must answer identical JSON, writes the same shape."""
    notes = []
    for scenario in scenario_list:
        request = scenario.requests[0]
        (api_status, api_body), (base_status, base_body) = await asyncio.gather(
            fetch(HOST, api.port, request), fetch(HOST, baseline.port, request)
        )
        if not (200 <= api_status < 300 and api_status == base_status):
            raise RuntimeError(
                f"{scenario.title}: API answered {api_status} {api_body[:300]!r}, "
                f"baseline {base_status} {base_body[:300]!r}"
            )
        api_json, base_json = orjson.loads(api_body), orjson.loads(base_body)
        same = api_json == base_json if not scenario.writes else same_shape(api_json, base_json)
        if not same:
            notes.append(f"{scenario.title}: the JSON differs (API {api_body[:200]!r} / baseline {base_body[:200]!r})")
    return notes


# The measurement plan -----------------------------------------------------------------------


def _orders(rounds: int, api: Server, baseline: Server) -> Iterator[tuple[Server, Server]]:
    for number in range(rounds):
        yield (api, baseline) if number % 2 == 0 else (baseline, api)


async def measure_scenario(
    driver: Driver, scenario: Scenario, api: Server, baseline: Server, options: Options
) -> ScenarioResult:
    result = ScenarioResult(scenario.key, scenario.title)
    for server in (api, baseline):
        await driver.run(scenario, server, options.warmup_s)
    for order in _orders(options.rounds, api, baseline):
        for server in order:
            run, opened = await driver.measure(scenario, server, options.duration_s)
            result.add("api" if server is api else "baseline", run, opened)
    result.api_rss_mib, result.baseline_rss_mib = api.rss_mib(), baseline.rss_mib()
    api_s, base_s = result.summary("api"), result.summary("baseline")
    say(
        f"  {scenario.title:<26} API {api_s['rps']:8.1f} req/s   baseline {base_s['rps']:8.1f} req/s   "
        f"ratio {result.ratio:.2f}   errors {int(api_s['errors'])}/{int(base_s['errors'])}"
    )
    return result


async def _with_logins(
    driver: Driver, login: Scenario, server: Server, duration_s: float, measure: Callable[[], Awaitable[LoadResult]]
) -> tuple[LoadResult, LoadResult]:
    """Run `measure` while two logins are in flight all the time (a closed loop of two connections)."""
    background = asyncio.create_task(driver.run(login, server, duration_s + 2.0, connections=2))
    await asyncio.sleep(1.0)  # both logins are under way before the measured window opens
    measured = await measure()
    return measured, await background


async def measure_paced(
    driver: Driver,
    list_scenario: Scenario,
    login: Scenario,
    api: Server,
    baseline: Server,
    rate: float,
    options: Options,
) -> PacedResult:
    result = PacedResult(rate=rate)

    def list_at_rate(server: Server) -> Callable[[], Awaitable[LoadResult]]:
        return lambda: paced(
            HOST, server.port, list_scenario.requests, rate=rate, duration_s=options.duration_s,
            connections=options.paced_connections,
        )  # fmt: skip

    for order in _orders(options.rounds, api, baseline):
        for server in order:
            side = "api" if server is api else "baseline"
            alone = await list_at_rate(server)()
            together, logins = await _with_logins(driver, login, server, options.duration_s, list_at_rate(server))
            (result.api_alone if side == "api" else result.baseline_alone).append(alone)
            (result.api_with_logins if side == "api" else result.baseline_with_logins).append(together)
            result.logins_rps[side].append(logins.rps)
    return result


Rss = dict[str, list[float]]
# Per-scenario results, the fixed-rate runs, RSS after the run and after a second list pass, that pass.
Measured = tuple[list[ScenarioResult], PacedResult | None, Rss, Rss, ScenarioResult | None]


async def measure_all(
    driver: Driver, scenario_list: list[Scenario], api: Server, baseline: Server, options: Options
) -> tuple[
    list[ScenarioResult], PacedResult | None, dict[str, list[float]], dict[str, list[float]], ScenarioResult | None
]:
    results = []
    wrote = False
    for scenario in scenario_list:
        if not options.only or scenario.key in options.only:
            if wrote:
                await settle(driver.sessions.url)
            results.append(await measure_scenario(driver, scenario, api, baseline, options))
            wrote = scenario.writes
    by_key = {scenario.key: scenario for scenario in scenario_list}
    if options.only:
        say("--only: no fixed-rate runs, no second pass")
        rss = {"api": api.rss_mib(), "baseline": baseline.rss_mib()}
        return results, None, rss, rss, None
    api_list_rps = results[0].summary("api")["rps"]
    paced_result = None
    if api_list_rps >= 2:
        rate = round(api_list_rps / 2)
        say(f"list at a fixed {rate} req/s (half the API's maximum), alone and with 2 logins in flight")
        await settle(driver.sessions.url)
        paced_result = await measure_paced(driver, by_key["list"], by_key["login"], api, baseline, rate, options)
    rss_after_run = {"api": api.rss_mib(), "baseline": baseline.rss_mib()}
    say("second pass of the list scenario (RSS growth)")
    second = ScenarioResult("list", "list first page (second pass)")
    for server in (api, baseline):
        run, opened = await driver.measure(by_key["list"], server, options.duration_s)
        second.add("api" if server is api else "baseline", run, opened)
    rss_after_second = {"api": api.rss_mib(), "baseline": baseline.rss_mib()}
    return results, paced_result, rss_after_run, rss_after_second, second


# Main ---------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }


def _load_warning() -> None:
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load > cpus / 2:
        say(f"WARNING: the machine is busy (load average {load:.1f} on {cpus} CPUs): numbers will be noisy")


async def _run_measurements(
    driver: Driver, scenario_list: list[Scenario], api: Server, baseline: Server, options: Options
) -> tuple[
    list[str],
    Measured,
]:
    for server in (api, baseline):
        await wait_until_up(server)
    notes = await check_parity(scenario_list, api, baseline)
    for note in notes:
        say(f"parity: {note}")
    say("both servers answer the same; measuring")
    return notes, await measure_all(driver, scenario_list, api, baseline, options)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    RESULTS.mkdir(exist_ok=True)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    machine = machine_info()
    _load_warning()
    wrk = None if options.python_load else ensure_wrk()
    if wrk is None:
        say("!" * 72)
        say("!! NOT USING wrk (missing and not installable, or --python-load): the Python generator needs far more")
        say("!! CPU per request than wrk, so maxima are LOWER than wrk would measure. Compare ratios only.")
        say("!" * 72)
    with postgres_server() as (server_url, source), tempfile.TemporaryDirectory(prefix="todo-bench-") as scratch:
        say(f"PostgreSQL: {source}; preparing database {DATABASE} (migrate + seed)")
        database_url, seeded = prepare_database(server_url, options)
        say(seeded)
        fixtures = asyncio.run(load_fixtures(database_url, options))
        scenario_list = scenarios(fixtures, options)
        env = server_environment(database_url, options.workers, scratch)
        api = start_server("api", "todo_api.main:create_app", env, options.workers)
        baseline = start_server("baseline", "scripts.bench_baseline:create_app", env, options.workers)
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                driver = Driver(wrk, Path(scratch), SessionCounter(database_url))
                try:
                    notes, measured = runner.run(_run_measurements(driver, scenario_list, api, baseline, options))
                finally:
                    runner.run(driver.sessions.close())
        finally:
            stop_server(api)
            stop_server(baseline)
    results, paced_result, rss_after_run, rss_after_second, second = measured
    report = Report(
        started_at=started_at,
        machine=machine,
        options=asdict(options),
        load_generator=wrk_version(wrk),
        database=source,
        seed=seeded,
        parity_notes=notes,
        scenarios=results,
        paced=paced_result,
        rss_after_run=rss_after_run,
        rss_after_second_pass=rss_after_second,
        second_pass=second,
        load_average_end=[round(x, 2) for x in os.getloadavg()],
    )
    print_report(report)
    write_json(report, RESULTS / "latest.json")
    print("\nresults: bench-results/latest.json; server logs: bench-results/api.log and baseline.log")
    return 0


if __name__ == "__main__":
    sys.exit(main())
