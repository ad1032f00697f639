"""Seed a realistic benchmark data set, fast: users x tasks in one server-side statement.

What: `users` accounts (`user1@bench.example` ...) with `tasks_per_user` tasks each, plus one deep
account (`user0@bench.example`) with `deep_tasks` tasks for the deep-pagination scenario. Tasks get
titles and descriptions from word lists (half have a description), a priority (none 40%, low 25%,
medium 20%, high 15%), 0-3 distinct tags from a vocabulary of ten, a due date on 60% of them, 30%
completed, and creation times spread over two years. Rows are inserted in creation order, so one
user's tasks are scattered over the table as they are after months of real use (a list page
touches about one heap page per row, as in production, not one page in all).

Why this way: one `INSERT ... SELECT ... FROM generate_series` runs entirely in PostgreSQL (no
rows cross the wire), and the secondary indexes (trigram GIN indexes above all) are dropped first
and rebuilt afterwards, which is several times faster than maintaining them row by row. The result
is the schema the migrations made, with exactly the same indexes (and, as a superuser, the foreign
key is not checked row by row: the ids are valid by construction). Then VACUUM ANALYZE, so the
planner has statistics and index-only scans have a visibility map, as on a table autovacuum has
seen.

Every account has the same password, `PASSWORD`, hashed by the caller (so the hash uses the
API's own pepper and cost).

    .venv/bin/python -m scripts.bench_seed --database-url postgresql://... [--users 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import time
from dataclasses import dataclass

import asyncpg

PASSWORD = "bench-password-correct-horse-42"  # noqa: S105 - the benchmark accounts' known password
DEEP_USER_INDEX = 0
TAGS = ("home", "work", "errands", "health", "finance", "family", "urgent", "someday", "reading", "travel")
VERBS = (
    "Buy", "Call", "Email", "Review", "Write", "Fix", "Plan", "Book", "Pay", "Clean",
    "Schedule", "Read", "Prepare", "Update", "Send", "Check", "Renew", "Organise", "Finish", "Draft",
)  # fmt: skip
OBJECTS = (
    "groceries", "the dentist", "quarterly report", "project proposal", "car insurance",
    "birthday present", "flight to Lisbon", "electricity bill", "kitchen", "team meeting notes",
    "tax return", "library books", "presentation slides", "garden shed", "budget spreadsheet",
    "passport", "doctor appointment", "weekly report", "blog post", "bike tyre",
    "expense report", "hotel in Porto", "school forms", "gym membership", "client invoice",
    "conference talk", "water filter", "contract draft", "photo album", "newsletter",
)  # fmt: skip
QUALIFIERS = ("", "", "", "", " before Friday", " for mum", " with Alex", " this weekend", " (again)", " asap")
OPENINGS = (
    "Remember to", "Need to", "Ask Sam to", "Do not forget to", "Try to", "Make sure to",
    "Talk to Priya and", "If possible,", "Quickly", "Finally",
)  # fmt: skip
MIDDLES = (
    "check the numbers", "bring the receipts", "compare the prices", "attach the report",
    "confirm the dates", "call them back", "update the shared folder", "write down the questions",
    "pick up the keys", "double-check the address", "send a reminder", "read the small print",
)  # fmt: skip
ENDINGS = (
    "before the deadline.", "this week.", "if there is time.", "after lunch.", "on the way home.",
    "before the meeting.", "and tell the team.", "first thing tomorrow.",
)  # fmt: skip
FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Linus")
LAST_NAMES = (
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Hamilton",
    "Torvalds",
)
# Weighted picks, one array slot per 5%: priorities none 40%, low 25%, medium 20%, high 15% ...
PRIORITY_SLOTS = (0,) * 8 + (1,) * 5 + (2,) * 4 + (3,) * 3
# ... and 0, 1, 2 or 3 tags: 30%, 35%, 25%, 10%.
TAG_COUNT_SLOTS = (0,) * 6 + (1,) * 7 + (2,) * 5 + (3,) * 2
# Strides through the ten tags that never revisit one within three steps (5 would).
TAG_STRIDES = (1, 2, 3, 4, 6, 7, 8, 9)

_USERS_SQL = """
INSERT INTO users (id, email, name, password_hash, created_at, updated_at)
SELECT md5('bench-user-' || i), 'user' || i || '@bench.example',
       ($2::text[])[1 + i % 10] || ' ' || ($3::text[])[1 + (i / 10) % 10], $4,
       now() - interval '800 days', now() - interval '800 days'
FROM generate_series(0, $1::int) AS i
"""

# The inner query draws every random number a row needs once (a subquery with volatile functions in
# its select list is never flattened, and OFFSET 0 makes sure), the outer one derives the columns.
_TASKS_SQL = """
INSERT INTO tasks (user_id, title, description, completed, completed_at, priority, tags, due_at,
                   created_at, updated_at, version)
SELECT s.user_id,
       s.title,
       s.description,
       s.done,
       CASE WHEN s.done THEN least(now(), s.created_at + s.r_done * interval '10 days') END,
       s.priority,
       (ARRAY[($5::text[])[1 + s.tag_start],
              ($5::text[])[1 + (s.tag_start + s.tag_stride) % 10],
              ($5::text[])[1 + (s.tag_start + 2 * s.tag_stride) % 10]])[1:s.tag_count],
       CASE WHEN s.r_due < 0.6 THEN date_trunc('hour', s.created_at + (1 + s.r_due * 100) * interval '1 day') END,
       s.created_at,
       least(now(), s.created_at + greatest(s.r_done * interval '10 days', s.r_edit * interval '12 days')),
       1 + s.done::int + floor(s.r_edit * 3)::int
FROM (
    SELECT md5('bench-user-' || u.i) AS user_id,
           now() - random() * interval '730 days' AS created_at,
           random() < 0.3 AS done,
           random() AS r_done,
           random() AS r_due,
           random() AS r_edit,
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
ORDER BY s.created_at
"""

# Secondary indexes, i.e. those no constraint owns (the primary key stays).
_SECONDARY_INDEXES_SQL = """
SELECT c.relname, pg_get_indexdef(c.oid), pg_relation_size(c.oid)
FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
WHERE x.indrelid = 'tasks'::regclass
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)
"""


@dataclass(frozen=True, slots=True)
class SeedReport:
    users: int
    tasks: int
    deep_user_id: str
    deep_tasks: int
    seconds: float
    insert_seconds: float
    index_seconds: float
    vacuum_seconds: float


def user_id(index: int) -> str:
    """The id the seed gives account `index` (md5 of a fixed prefix: 32 characters, like real ids)."""
    return hashlib.md5(f"bench-user-{index}".encode(), usedforsecurity=False).hexdigest()


def email(index: int) -> str:
    return f"user{index}@bench.example"


async def _secondary_indexes(connection: asyncpg.Connection) -> list[tuple[str, str]]:
    rows = await connection.fetch(_SECONDARY_INDEXES_SQL)
    # Rebuild the biggest (the trigram indexes) first, so two builders finish at about the same time.
    return [(row[0], row[1]) for row in sorted(rows, key=lambda row: -len(row[1]))]


async def _build_indexes(dsn: str, definitions: list[str], builders: int) -> None:
    """CREATE INDEX on `builders` connections at once (index builds are CPU-bound, one core each)."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for definition in definitions:
        queue.put_nowait(definition)

    async def builder() -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute("SET maintenance_work_mem = '256MB'")
            while not queue.empty():
                await connection.execute(queue.get_nowait())
        finally:
            await connection.close()

    await asyncio.gather(*(builder() for _ in range(builders)))


async def _skip_foreign_key_checks(connection: asyncpg.Connection) -> None:
    """Every user_id comes from the same series as the users rows, so checking each of a million rows
    against `users` (a third of the insert's time) proves nothing. Only a superuser may skip it."""
    try:
        async with connection.transaction():  # a savepoint: a refusal must not abort the seed
            await connection.execute("SET LOCAL session_replication_role = replica")
    except asyncpg.InsufficientPrivilegeError:
        pass


async def _insert(connection: asyncpg.Connection, users: int, tasks_per_user: int, deep_tasks: int) -> int:
    await connection.execute("SET LOCAL work_mem = '512MB'")  # sort the rows in memory, not on disk
    await _skip_foreign_key_checks(connection)
    await connection.execute("SELECT setseed(0.4242)")  # the same data set every time
    status = await connection.execute(
        _TASKS_SQL,
        users,
        tasks_per_user,
        deep_tasks,
        DEEP_USER_INDEX,
        list(TAGS),
        list(VERBS),
        list(OBJECTS),
        list(QUALIFIERS),
        list(OPENINGS),
        list(MIDDLES),
        list(ENDINGS),
        list(PRIORITY_SLOTS),
        list(TAG_STRIDES),
        list(TAG_COUNT_SLOTS),
    )
    return int(status.split()[-1])


async def seed(dsn: str, *, password_hash: str, users: int, tasks_per_user: int, deep_tasks: int) -> SeedReport:
    """Fill an empty, migrated database. `dsn` is a plain postgresql:// URL asyncpg accepts."""
    if len(TAGS) != 10:
        raise ValueError("the tag strides assume a vocabulary of exactly ten tags")
    started = time.perf_counter()
    connection = await asyncpg.connect(dsn)
    try:
        indexes = await _secondary_indexes(connection)
        async with connection.transaction():
            await connection.execute(_USERS_SQL, users, list(FIRST_NAMES), list(LAST_NAMES), password_hash)
            for name, _ in indexes:
                await connection.execute(f'DROP INDEX "{name}"')
            inserted = await _insert(connection, users, tasks_per_user, deep_tasks)
        insert_done = time.perf_counter()
        await _build_indexes(dsn, [definition for _, definition in indexes], builders=2)
        index_done = time.perf_counter()
        await connection.execute("VACUUM (ANALYZE) tasks")
        await connection.execute("ANALYZE users")
        vacuum_done = time.perf_counter()
    finally:
        await connection.close()
    return SeedReport(
        users=users + 1,
        tasks=inserted,
        deep_user_id=user_id(DEEP_USER_INDEX),
        deep_tasks=deep_tasks,
        seconds=vacuum_done - started,
        insert_seconds=insert_done - started,
        index_seconds=index_done - insert_done,
        vacuum_seconds=vacuum_done - index_done,
    )


def describe(report: SeedReport) -> str:
    return (
        f"seeded {report.users:,} users and {report.tasks:,} tasks (deep user: {report.deep_tasks:,}) in "
        f"{report.seconds:.1f} s (insert {report.insert_seconds:.1f} s, indexes {report.index_seconds:.1f} s, "
        f"vacuum+analyze {report.vacuum_seconds:.1f} s)"
    )


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Seed a migrated, empty todo-api database for benchmarking.")
    parser.add_argument("--database-url", required=True, help="a postgresql:// URL (no +driver suffix)")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--tasks-per-user", type=int, default=1000)
    parser.add_argument("--deep-tasks", type=int, default=60_000)
    parser.add_argument("--pepper", required=True, help="the API's PASSWORD_PEPPER")
    return parser.parse_args()


def main() -> None:
    from todo_api.adapters.security.passwords import BcryptPasswordHasher

    args = _arguments()

    async def run() -> SeedReport:
        hasher = BcryptPasswordHasher(pepper=args.pepper.encode(), cost=12)
        try:
            password_hash = await hasher.hash(PASSWORD)
        finally:
            hasher.close()
        return await seed(
            args.database_url,
            password_hash=password_hash,
            users=args.users,
            tasks_per_user=args.tasks_per_user,
            deep_tasks=args.deep_tasks,
        )

    print(describe(asyncio.run(run())))


if __name__ == "__main__":
    main()
