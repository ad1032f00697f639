"""`todo_bench`: created fresh, migrated by alembic and seeded inside PostgreSQL in one
`INSERT ... SELECT generate_series` (no row on the wire; the secondary indexes dropped first and
rebuilt on two connections), the same data every time (docs/performance.md describes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from sqlalchemy import make_url

ROOT = Path(__file__).resolve().parents[1]
ORDER_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # domain/ordering.py's
NAME, DEEP_USER = "todo_bench", 0
PASSWORD = "bench-password-correct-horse-42"  # noqa: S105 - every bench account's password
TAGS = ("home", "work", "errands", "health", "finance", "family", "urgent", "someday", "reading", "travel")
VERBS = ("Buy", "Call", "Email", "Review", "Write", "Fix", "Plan", "Book", "Pay", "Clean", "Schedule", "Read",
         "Prepare", "Update", "Send", "Check", "Renew", "Organise", "Finish", "Draft")  # fmt: skip
OBJECTS = (
    "groceries", "the dentist", "quarterly report", "project proposal", "car insurance", "birthday present",
    "flight to Lisbon", "electricity bill", "kitchen", "team meeting notes", "tax return", "library books",
    "presentation slides", "garden shed", "budget spreadsheet", "passport", "doctor appointment", "weekly report",
    "blog post", "bike tyre", "expense report", "hotel in Porto", "school forms", "gym membership", "client invoice",
    "conference talk", "water filter", "contract draft", "photo album", "newsletter")  # fmt: skip
QUALIFIERS = ("", "", "", "", " before Friday", " for mum", " with Alex", " this weekend", " (again)", " asap")
OPENINGS = ("Remember to", "Need to", "Ask Sam to", "Do not forget to", "Try to", "Make sure to",
            "Talk to Priya and", "If possible,", "Quickly", "Finally")  # fmt: skip
MIDDLES = ("check the numbers", "bring the receipts", "compare the prices", "attach the report", "confirm the dates",
           "call them back", "update the shared folder", "write down the questions", "pick up the keys",
           "double-check the address", "send a reminder", "read the small print")  # fmt: skip
ENDINGS = ("before the deadline.", "this week.", "if there is time.", "after lunch.", "on the way home.",
           "before the meeting.", "and tell the team.", "first thing tomorrow.")  # fmt: skip
NAMES = (("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Linus"),
         ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton",
          "Torvalds"))  # fmt: skip
# One slot per 5%: priorities none 40%, low 25%, medium 20%, high 15%; 0-3 tags 30/35/25/10%; then strides
# through the ten tags that never revisit one within three steps.
SLOTS = ((0,) * 8 + (1,) * 5 + (2,) * 4 + (3,) * 3, (1, 2, 3, 4, 6, 7, 8, 9), (0,) * 6 + (1,) * 7 + (2,) * 5 + (3,) * 2)

_USERS_SQL = """
INSERT INTO users (id, email, name, password_hash, created_at, updated_at)
SELECT md5('bench-user-' || i), 'user' || i || '@bench.example',
       ($2::text[])[1 + i % 10] || ' ' || ($3::text[])[1 + (i / 10) % 10], $4,
       now() - interval '800 days', now() - interval '800 days'
FROM generate_series(0, $1::int) AS i
"""
# Every account's Inbox, as sign-up makes it.
_INBOXES_SQL = "INSERT INTO lists (user_id, name, position, is_inbox) SELECT id, 'Inbox', 'a0', true FROM users"
# The inner query draws every random number a row needs once (a subquery with volatile functions in
# its select list is never flattened, and OFFSET 0 makes sure), the outer one derives the columns.
_TASKS_SQL = """
INSERT INTO tasks (user_id, title, description, completed, completed_at, priority, tags, due_at,
                   created_at, updated_at, version, list_id, position)
SELECT s.user_id, s.title, s.description, s.done,
       CASE WHEN s.done THEN least(now(), s.created_at + s.r_done * interval '10 days') END,
       s.priority,
       (ARRAY[($5::text[])[1 + s.tag_start],
              ($5::text[])[1 + (s.tag_start + s.tag_stride) % 10],
              ($5::text[])[1 + (s.tag_start + 2 * s.tag_stride) % 10]])[1:s.tag_count],
       CASE WHEN s.r_due < 0.6 THEN date_trunc('hour', s.created_at + (1 + s.r_due * 100) * interval '1 day') END,
       s.created_at,
       least(now(), s.created_at + greatest(s.r_done * interval '10 days', s.r_edit * interval '12 days')),
       1 + s.done::int + floor(s.r_edit * 3)::int,
       inbox.id,
       -- An order key (domain/ordering.py) for each user's tasks in creation order: `c` and three
       -- base-62 digits, enough for the deep user's 60,000.
       'c' || substr($15::text, (1 + ((row_number() OVER w - 1) / 3844) % 62)::int, 1)
           || substr($15::text, (1 + ((row_number() OVER w - 1) / 62) % 62)::int, 1)
           || substr($15::text, (1 + (row_number() OVER w - 1) % 62)::int, 1)
FROM (
    SELECT md5('bench-user-' || u.i) AS user_id,
           now() - random() * interval '730 days' AS created_at,
           random() < 0.3 AS done, random() AS r_done, random() AS r_due, random() AS r_edit,
           ($6::text[])[1 + floor(random() * cardinality($6::text[]))::int] || ' '
             || ($7::text[])[1 + floor(random() * cardinality($7::text[]))::int]
             || ($8::text[])[1 + floor(random() * cardinality($8::text[]))::int] AS title,
           CASE WHEN random() < 0.5 THEN NULL ELSE
             ($9::text[])[1 + floor(random() * cardinality($9::text[]))::int] || ' '
             || ($10::text[])[1 + floor(random() * cardinality($10::text[]))::int] || ' '
             || ($11::text[])[1 + floor(random() * cardinality($11::text[]))::int] END AS description,
           ($12::smallint[])[1 + floor(random() * 20)::int] AS priority,
           floor(random() * 10)::int AS tag_start,
           ($13::int[])[1 + floor(random() * cardinality($13::int[]))::int] AS tag_stride,
           ($14::int[])[1 + floor(random() * 20)::int] AS tag_count
    FROM generate_series(0, $1::int) AS u(i)
    CROSS JOIN LATERAL generate_series(1, CASE WHEN u.i = $4::int THEN $3::int ELSE $2::int END) AS t(j)
    OFFSET 0
) AS s
JOIN lists AS inbox ON inbox.user_id = s.user_id AND inbox.is_inbox
WINDOW w AS (PARTITION BY s.user_id ORDER BY s.created_at)
ORDER BY s.created_at
"""
# Indexes no constraint owns (the primary key stays), the biggest (trigram) first.
_SECONDARY_INDEXES_SQL = """
SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
WHERE x.indrelid = 'tasks'::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)
ORDER BY length(pg_get_indexdef(c.oid)) DESC
"""


def user_id(index: int) -> str:
    """The id the seed gives account `index` (md5 of a fixed prefix: 32 characters, like real ids)."""
    return hashlib.md5(f"bench-user-{index}".encode(), usedforsecurity=False).hexdigest()


def email(index: int) -> str:
    return f"user{index}@bench.example"


def dsn(url: str, database: str | None = None) -> str:
    """A postgresql:// URL asyncpg takes, optionally pointing at another database."""
    parsed = make_url(url).set(drivername="postgresql")
    return (parsed.set(database=database) if database else parsed).render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def connect(url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(url)
    try:
        yield connection
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def server() -> AsyncIterator[tuple[str, str]]:
    """(server URL, where it came from): DATABASE_URL as it is, else the embedded server in
    .data/bench, sized for the write scenarios (SERVER_SETTINGS)."""
    if url := os.environ.get("DATABASE_URL"):
        yield url, "DATABASE_URL"
        return
    from todo_api.adapters.sql.embedded import embedded_postgres

    data_dir, source = ROOT / ".data" / "bench", "embedded PostgreSQL (.data/bench)"
    with embedded_postgres(data_dir) as url:
        if not await _sized_for_writes(url):
            yield url, source
            return
    with embedded_postgres(data_dir) as url:  # started again: shared_buffers is read at start only
        yield url, source


SERVER_SETTINGS = {"shared_buffers": "1GB", "max_wal_size": "4GB"}
"""The embedded bench server's settings beyond initdb's defaults, which are sized to start on any
machine (128 MB of shared buffers, a checkpoint every 1 GB of WAL): under the write scenarios that
server checkpointed every 4-6 s ("checkpoints are occurring too frequently", logged 1,321 times in
one session) and its backends wrote dirty buffers out themselves, 4 MB a bulk change. A write's
figure then measured how soon its WAL brought on the next checkpoint and its full-page images more
than the write itself (docs/performance.md). A server in production is sized for its load; a
DATABASE_URL server is used as it is, and the report says how it is set."""


async def _sized_for_writes(url: str) -> bool:
    """Apply SERVER_SETTINGS (ALTER SYSTEM, kept in the data directory); True when the server must
    start again for them to take effect."""
    async with connect(dsn(url)) as admin:
        for name, value in SERVER_SETTINGS.items():
            if not await admin.fetchval("SELECT pg_size_bytes(current_setting($1)) = pg_size_bytes($2)", name, value):
                await admin.execute(f"ALTER SYSTEM SET {name} = '{value}'")  # names and values are ours
        await admin.execute("SELECT pg_reload_conf()")
        return bool(await admin.fetchval("SELECT bool_or(pending_restart) FROM pg_settings"))


async def settings(url: str) -> dict[str, str]:
    """How the server is set where it bears on the write scenarios, for the report."""
    async with connect(dsn(url)) as connection:
        rows = await connection.fetch(
            "SELECT name, current_setting(name) AS value FROM pg_settings WHERE name = ANY($1::text[]) ORDER BY name",
            [*SERVER_SETTINGS, "synchronous_commit", "fsync", "full_page_writes"],
        )
    return {row["name"]: row["value"] for row in rows}


def described(settings: dict[str, str]) -> str:
    return ", ".join(f"{name} {value}" for name, value in settings.items())


async def _migrate(url: str) -> None:
    alembic = [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade", "head"]
    env = {**os.environ, "DATABASE_URL": url}
    if (done := await asyncio.to_thread(subprocess.run, alembic, cwd=ROOT, env=env, capture_output=True)).returncode:
        raise RuntimeError(f"alembic failed:\n{done.stderr.decode(errors='replace')}")


async def prepare(server_url: str, users: int, tasks: int, deep: int, reuse: bool, pepper: str, cost: int) -> str:
    """A seeded todo_bench, or with `reuse` one seeded before with as many users; says which."""
    from todo_api.adapters.security.passwords import BcryptPasswordHasher

    hasher = BcryptPasswordHasher(pepper=pepper.encode(), cost=cost)  # the API's own hashing, at this run's cost
    password_hash = await hasher.hash(PASSWORD)
    hasher.close()
    async with connect(dsn(server_url)) as admin:
        if reuse and await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", NAME):
            async with connect(dsn(server_url, NAME)) as bench:
                with contextlib.suppress(asyncpg.PostgresError):
                    if (
                        await bench.fetchval("SELECT count(*) FROM users WHERE email LIKE '%@bench.example'")
                        == users + 1
                    ):
                        await bench.execute("UPDATE users SET password_hash = $1", password_hash)
                        await _migrate(dsn(server_url, NAME))  # what was added since it was seeded
                        return "reused the seeded todo_bench (--reuse-data)"
        await admin.execute(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{NAME}"')
    url, started = dsn(server_url, NAME), time.perf_counter()
    await _migrate(url)
    async with connect(url) as connection:
        indexes = await connection.fetch(_SECONDARY_INDEXES_SQL)
        async with connection.transaction():
            await connection.execute(_USERS_SQL, users, *map(list, NAMES), password_hash)
            for name, _ in indexes:
                await connection.execute(f'DROP INDEX "{name}"')
            await connection.execute("SET LOCAL work_mem = '512MB'")  # sort the rows in memory
            with contextlib.suppress(asyncpg.InsufficientPrivilegeError):  # a superuser skips the foreign key
                async with connection.transaction():  # checks: the ids are valid by construction
                    await connection.execute("SET LOCAL session_replication_role = replica")
            await connection.execute("SELECT setseed(0.4242)")  # the same data set every time
            words = (TAGS, VERBS, OBJECTS, QUALIFIERS, OPENINGS, MIDDLES, ENDINGS, *SLOTS)
            await connection.execute(_INBOXES_SQL)
            status = await connection.execute(
                _TASKS_SQL, users, tasks, deep, DEEP_USER, *map(list, words), ORDER_DIGITS
            )
        inserted, queue = time.perf_counter(), [definition for _, definition in indexes]

        async def build() -> None:  # index builds are CPU-bound: one core each
            async with connect(url) as builder:
                await builder.execute("SET maintenance_work_mem = '256MB'")
                while queue:
                    await builder.execute(queue.pop(0))

        await asyncio.gather(build(), build())
        await connection.execute("VACUUM (ANALYZE) tasks")
        await connection.execute("ANALYZE users")
    return (
        f"seeded {users + 1:,} users and {int(status.split()[-1]):,} tasks (deep user: {deep:,}) in "
        f"{time.perf_counter() - started:.0f} s (migrate + insert {inserted - started:.0f} s)"
    )


async def settle(url: str) -> None:
    """Vacuum, analyse and checkpoint after writes, so that autovacuum, GIN pending-list merges and the
    checkpointer do not land inside the next measurement."""
    async with connect(url) as connection:
        await connection.execute("VACUUM (ANALYZE)")
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):  # CHECKPOINT needs pg_checkpoint
            await connection.execute("CHECKPOINT")


async def sessions(monitor: asyncpg.Connection) -> int:
    """Connections PostgreSQL has accepted into the database so far (published within about a second)."""
    await monitor.execute("SELECT pg_stat_clear_snapshot()")
    return int(await monitor.fetchval("SELECT sessions FROM pg_stat_database WHERE datname = current_database()"))


async def task_versions(monitor: asyncpg.Connection, wanted: bool = True) -> int:
    """The sum of every task's `version` (0 unless `wanted`): a created task adds 1 and every change
    to a task adds 1, so its growth over a run counts the task rows a scenario wrote."""
    return int(await monitor.fetchval("SELECT coalesce(sum(version), 0) FROM tasks")) if wanted else 0
