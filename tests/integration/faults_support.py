"""Helpers for test_faults.py: a dedicated PostgreSQL a test may really stop and start, SQL fault
injection (one BEFORE INSERT trigger on tasks, steered by the task's title), timed requests and a
recorder of the warnings and errors the app logs."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy import make_url

from todo_api.adapters.sql.embedded import _module, embedded_postgres, stop

PROBLEM_MEDIA_TYPE = "application/problem+json"


@dataclass(frozen=True)
class DedicatedServer:
    """An embedded PostgreSQL of our own: stopping it disturbs no other test."""

    data_dir: Path
    url: str  # the admin URL (database `postgres`), over the Unix socket in `socket_dir`
    socket_dir: str

    @property
    def _user(self) -> str | None:
        return "embedded_postgres" if os.geteuid() == 0 else None

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop -m fast` terminates sessions (open transactions roll back) and shuts down cleanly;
        `-m immediate` kills every process at once, as a crash would (crash recovery on the next start)."""
        _module().pg_ctl(["-w", "-m", mode, "stop"], pgdata=self.data_dir, user=self._user, timeout=30)

    def is_running(self) -> bool:
        try:
            _module().pg_ctl(["status"], pgdata=self.data_dir, user=self._user, timeout=30)
        except subprocess.CalledProcessError:
            return False
        return True

    def start(self) -> None:
        """Start it again as embedded_postgres did (same socket directory, same log); returns once ready."""
        args = ["-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.data_dir / "log"), "start"]
        _module().pg_ctl(args, pgdata=self.data_dir, user=self._user, timeout=30)


@contextmanager
def dedicated_server() -> Iterator[DedicatedServer]:
    with tempfile.TemporaryDirectory(prefix="todo-api-faults-") as tmp:
        data_dir = (Path(tmp) / "pg").resolve()
        with embedded_postgres(data_dir) as url:
            socket_dir = make_url(url).query.get("host")
            assert isinstance(socket_dir, str), url
            yield DedicatedServer(data_dir=data_dir, url=url, socket_dir=socket_dir)
        # The package stops the server (`pg_ctl stop` on the data directory) only while it believes
        # the process it started still runs; after a restart that process may be gone: stop what is left.
        stop(data_dir)


# --- fault injection -------------------------------------------------------------------------------

# A task whose title is `sleep:<seconds>:...` sleeps in its INSERT; `fail:<n>:<sqlstate>:...` fails
# with that SQLSTATE while `faults_attempts` (a sequence: not rolled back with the transaction) is at
# most n; `deadlock:<a>:<b>:...` locks row a of faults_locks, waits, then locks row b.
# Every `fail` and `deadlock` attempt draws one value from `faults_attempts`.
_INSTALL = """
CREATE SEQUENCE faults_attempts;
CREATE TABLE faults_locks (id int PRIMARY KEY);
INSERT INTO faults_locks VALUES (1), (2);
CREATE FUNCTION faults_inject() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    part text[] := string_to_array(NEW.title, ':');
BEGIN
    IF part[1] = 'sleep' THEN
        PERFORM pg_sleep(part[2]::float8);
    ELSIF part[1] = 'fail' THEN
        IF nextval('faults_attempts') <= part[2]::bigint THEN
            RAISE EXCEPTION 'injected failure %', part[3] USING ERRCODE = part[3];
        END IF;
    ELSIF part[1] = 'deadlock' THEN
        PERFORM nextval('faults_attempts');
        PERFORM 1 FROM faults_locks WHERE id = part[2]::int FOR UPDATE;
        PERFORM pg_sleep(0.3);
        PERFORM 1 FROM faults_locks WHERE id = part[3]::int FOR UPDATE;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER faults_inject BEFORE INSERT ON tasks FOR EACH ROW EXECUTE FUNCTION faults_inject();
"""

_UNINSTALL = """
DROP TRIGGER IF EXISTS faults_inject ON tasks;
DROP FUNCTION IF EXISTS faults_inject();
DROP TABLE IF EXISTS faults_locks;
DROP SEQUENCE IF EXISTS faults_attempts;
"""


@asynccontextmanager
async def fault_trigger(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """Install the fault trigger for the duration; yields an admin connection to the same database."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(_UNINSTALL + _INSTALL)
        yield connection
    finally:
        await connection.execute(_UNINSTALL)
        await connection.close()


async def restart_attempts(admin: asyncpg.Connection) -> None:
    await admin.execute("ALTER SEQUENCE faults_attempts RESTART")


async def attempts(admin: asyncpg.Connection) -> int:
    """How many `fail`/`deadlock` INSERT attempts ran since the last restart_attempts."""
    row = await admin.fetchrow("SELECT last_value, is_called FROM faults_attempts")
    assert row is not None
    return int(row["last_value"]) if row["is_called"] else 0


async def stored_titles(admin: asyncpg.Connection, user_id: str) -> list[str]:
    rows = await admin.fetch("SELECT title FROM tasks WHERE user_id = $1", user_id)
    return [str(row["title"]) for row in rows]


# --- timed requests ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    kind: str
    status: int | None  # None: no answer within the bound
    started: float
    finished: float
    title: str = ""  # of a create
    content_type: str = ""
    retry_after: str | None = None
    code: str | None = None
    detail: str = ""

    @property
    def latency(self) -> float:
        return self.finished - self.started

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


async def timed(
    kind: str, call: Callable[[], Awaitable[httpx.Response]], *, bound_s: float, title: str = ""
) -> Outcome:
    started = time.monotonic()
    try:
        async with asyncio.timeout(bound_s):
            response = await call()
    except TimeoutError:
        return Outcome(kind, None, started, time.monotonic(), title)
    finished = time.monotonic()
    content_type = response.headers.get("content-type", "")
    code = response.json().get("code") if content_type == PROBLEM_MEDIA_TYPE else None
    return Outcome(
        kind,
        response.status_code,
        started,
        finished,
        title,
        content_type,
        response.headers.get("retry-after"),
        code,
        response.text[:300] if response.status_code >= 300 else "",
    )


def problems_with_503(outcome: Outcome) -> list[str]:
    """What is wrong with a 503 as the issue wants it (problem+json, Retry-After >= 1 s)."""
    found: list[str] = []
    if outcome.content_type != PROBLEM_MEDIA_TYPE:
        found.append(f"content-type {outcome.content_type!r}")
    if outcome.retry_after is None or not outcome.retry_after.isdigit() or int(outcome.retry_after) < 1:
        found.append(f"Retry-After {outcome.retry_after!r}")
    return found


# --- logs --------------------------------------------------------------------------------------------


class LogRecorder(logging.Handler):
    """Keeps every record at WARNING or above (the app's structlog lines and foreign ones alike)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @staticmethod
    def _has_traceback(record: logging.LogRecord) -> bool:
        return bool(record.exc_info) or (isinstance(record.msg, dict) and bool(record.msg.get("exc_info")))

    @staticmethod
    def _event(record: logging.LogRecord) -> str:
        if isinstance(record.msg, dict):
            return str(record.msg.get("event", ""))[:120]
        return record.getMessage()[:120]

    def summary(self) -> str:
        """One line per distinct (level, logger, event, traceback?) with its count."""
        counts: dict[tuple[str, str, str, bool], int] = {}
        for record in self.records:
            key = (record.levelname, record.name, self._event(record), self._has_traceback(record))
            counts[key] = counts.get(key, 0) + 1
        if not counts:
            return "no log line at WARNING or above"
        return "\n".join(
            f"{count:5d} x {level} {name}: {event!r}{' (with traceback)' if tb else ''}"
            for (level, name, event, tb), count in sorted(counts.items())
        )


@contextmanager
def recording_logs() -> Iterator[LogRecorder]:
    """Attach after create_app (which replaces the root handlers)."""
    recorder = LogRecorder()
    root = logging.getLogger()
    root.addHandler(recorder)
    try:
        yield recorder
    finally:
        root.removeHandler(recorder)
