"""What the bench sends: one declaration per scenario, so a new route is one line (see `Scenario`)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import asyncpg
import orjson
from bench import database as db
from bench.baseline import PRIORITIES, Cursors, access_token

DEPTH = 50_000
ENDED_SESSIONS = 10_000  # ended lately: what every API process holds in memory and checks each token against
BATCH = 100  # tasks per bulk change: the API's most
WRONG = "not-the-right-password-at-all-42"
_SKIP = object()  # what a body function answers for a sample the scenario cannot use


class Sample(NamedTuple):
    user: int  # the seeded account: user<n>@bench.example
    token: str
    task: int  # one of its tasks
    inbox: int  # its Inbox's id
    batch: tuple[int, ...] = ()  # BATCH of its pending top-level tasks (the same for all its samples)


class Fixtures(NamedTuple):
    samples: list[Sample]  # 2,000 (user, task) pairs over 200 users
    deep: Sample
    cursor: str  # the deep user's at row 50,000 by -created_at
    position_cursor: str  # ... and in the person's order (its Inbox's top level by position)


class Request(NamedTuple):
    key: str
    expect: int
    data: bytes  # the whole HTTP/1.1 message


@dataclass(frozen=True, slots=True)
class Scenario:
    """`Scenario("archive", "archive a task", "POST", "/api/me/tasks/{task}/archive", expect=204, mix=3)`.

    `path` may name `{task}` (one of the user's tasks), `{inbox}` (its Inbox), `{cursor}` and
    `{position_cursor}` (the deep user's at row 50,000); `body` is JSON or a function of a seeded
    `random.Random` and the `Sample` (answering `_SKIP` for a sample it cannot use); `user` is
    "sample" (200 accounts, another per request), "deep" or "anonymous" (no token; a login's e-mail
    is the sample's). `baseline`: the baseline serves it, so `compare` measures it; `mix`: its
    weight in `load`.

    `undo`: the body that reverses `body`, for a write that would change nothing the second time
    (completing completed tasks). Each walker then sends its own share of the requests, then the
    same share undone, round and round (`lanes`), and every `undo` is sent once before each run.
    """

    key: str
    title: str
    method: str
    path: str
    body: Callable[[random.Random, Sample], object] | dict[str, object] | None = None
    user: Literal["sample", "deep", "anonymous"] = "sample"
    expect: int = 200
    writes: bool = False  # VACUUM after it
    baseline: bool = True
    mix: int = 0
    connections: int = 0  # wrk connections when not --connections
    undo: Callable[[random.Random, Sample], object] | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def requests(self, fixtures: Fixtures) -> list[Request]:
        """The distinct requests drawn over the samples, the same every run."""
        return [request for request, _ in self._pairs(fixtures)]

    def undoing(self, fixtures: Fixtures) -> list[Request]:
        """With `undo`: the request that reverses each of `requests`, in the same order."""
        return [undo for _, undo in self._pairs(fixtures) if undo is not None]

    def lanes(self, fixtures: Fixtures, walkers: int, connections: int) -> list[list[Request]]:
        """The requests in the order walkers (wrk's threads, or the generator's connections) send them
        on `connections` connections. Without `undo`: one lane, which every walker goes round from its
        own offset. With it: a lane per walker, its share of the requests and then the same share
        undone, so a request and its undo are half a lane apart (more than the walker has in flight)
        and, walked from the start on tasks as the `undo`s left them, every request changes everything
        it names."""
        if self.undo is None:
            return [self.requests(fixtures)]
        if len(pairs := self._pairs(fixtures)) < 2 * connections:
            raise RuntimeError(f"{self.title}: {len(pairs)} requests for {connections} connections; seed more users")
        return [[r for r, _ in pairs[k::walkers]] + [u for _, u in pairs[k::walkers] if u] for k in range(walkers)]

    def _pairs(self, fixtures: Fixtures) -> list[tuple[Request, Request | None]]:
        draw, pairs = random.Random(self.key), dict[bytes, tuple[Request, Request | None]]()
        for sample in fixtures.samples:
            who = fixtures.deep if self.user == "deep" else sample
            token = None if self.user == "anonymous" else who.token
            path = self.path.format(
                task=who.task, inbox=who.inbox, cursor=fixtures.cursor, position_cursor=fixtures.position_cursor
            )
            if (body := self.body(draw, sample) if callable(self.body) else self.body) is _SKIP:
                continue
            message, undo = http_request(self.method, path, token, body, self.headers), None
            if self.undo is not None:
                undone = http_request(self.method, path, token, self.undo(draw, sample), self.headers)
                undo = Request(self.key, self.expect, undone)
            pairs.setdefault(message, (Request(self.key, self.expect, message), undo))
        return list(pairs.values())


def http_request(
    method: str, path: str, token: str | None = None, body: object = None, headers: tuple[tuple[str, str], ...] = ()
) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: todo-bench\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers)
    head += f"Authorization: Bearer {token}\r\n" if token else ""
    payload = b"" if body is None else orjson.dumps(body)
    head += "Content-Type: application/json\r\n" if body is not None else ""
    head += f"Content-Length: {len(payload)}\r\n" if body is not None or method in ("POST", "PUT", "PATCH") else ""
    return (head + "\r\n").encode() + payload


def _task(draw: random.Random, _: Sample) -> dict[str, object]:
    """A valid TaskCreate drawn like the seed's tasks."""
    title = f"{draw.choice(db.VERBS)} {draw.choice(db.OBJECTS)}"
    priority = draw.choice(("none", "none", "low", "medium", "high"))
    body: dict[str, object] = {"title": title, "priority": priority, "tags": draw.sample(db.TAGS, draw.randint(0, 3))}
    if draw.random() < 0.5:
        body["description"] = " ".join(draw.choice(part) for part in (db.OPENINGS, db.MIDDLES, db.ENDINGS))
    if draw.random() < 0.6:
        body["due_at"] = f"2027-{draw.randint(1, 12):02d}-{draw.randint(1, 28):02d}T17:00:00Z"
    return body


def _login(password: str, unknown: bool = False) -> Callable[[random.Random, Sample], object]:
    def body(draw: random.Random, sample: Sample) -> object:
        email = f"nobody-{draw.getrandbits(64):x}@bench.example" if unknown else db.email(sample.user)
        return {"email": email, "password": password}

    return body


def _priority(draw: random.Random, _: Sample) -> dict[str, object]:
    return {"priority": draw.choice(PRIORITIES)}


def _bulk(op: str) -> Callable[[random.Random, Sample], object]:
    """A bulk status change of the sample user's BATCH pending tasks (none for a user without them)."""

    def body(_: random.Random, sample: Sample) -> object:
        return {"operations": [{"op": op, "task_ids": list(sample.batch)}], "atomic": True} if sample.batch else _SKIP

    return body


TASKS, LOGIN = "/api/me/tasks", "/api/auth/login"
SEARCH = "status=pending&priority=high&priority=medium&tag=work&q=report"
BULK = TASKS + "/bulk"
ORDER = TASKS + "?sort=position&parent_id=none&list_id={inbox}"  # the person's order: its Inbox's top level
SCENARIOS = (
    Scenario("list", "list first page", "GET", TASKS, mix=25),
    Scenario("deep", f"list at depth {DEPTH:,}", "GET", TASKS + "?cursor={cursor}", user="deep"),
    Scenario("get", "get one task", "GET", TASKS + "/{task}", mix=15),
    # The same GET, named for what it measures: the token's session checked against the sessions
    # ended lately (ENDED_SESSIONS, seeded by `fixtures`), in memory, no query; the baseline has no check.
    Scenario("session", f"get, {ENDED_SESSIONS:,} ended sessions", "GET", TASKS + "/{task}"),
    Scenario("create", "create", "POST", TASKS, _task, expect=201, writes=True, mix=15),
    Scenario("toggle", "toggle complete", "PATCH", TASKS + "/{task}/complete", writes=True, mix=10),
    Scenario("search", "filtered + searched list", "GET", f"{TASKS}?{SEARCH}"),
    Scenario("login", "login", "POST", LOGIN, _login(db.PASSWORD), "anonymous", writes=True, mix=2, connections=4),
    Scenario("bulk", f"bulk complete of {BATCH}", "POST", BULK, _bulk("complete"), writes=True, undo=_bulk("reopen")),
    Scenario("position", "list in the person's order", "GET", ORDER),
    Scenario("position-deep", f"own order at depth {DEPTH:,}", "GET", ORDER + "&cursor={position_cursor}", user="deep"),
    # The API's alone: `load`'s mix and `timing`.
    Scenario("due", "pending by due date", "GET", TASKS + "?status=pending&sort=due_at", baseline=False, mix=25),
    Scenario("patch", "patch the priority", "PATCH", TASKS + "/{task}", _priority, baseline=False, mix=5),
    Scenario("missing", "404 on purpose", "GET", TASKS + "/9000000000000", expect=404, baseline=False, mix=2),
    Scenario("invalid", "422 on purpose", "POST", TASKS, {"title": ""}, expect=422, baseline=False, mix=1),
    Scenario("wrong", "login, wrong password", "POST", LOGIN, _login(WRONG), "anonymous", 401, baseline=False),
    Scenario("unknown", "login, unknown e-mail", "POST", LOGIN, _login(WRONG, True), "anonymous", 401, baseline=False),
)
# The REST list's first page as an MCP tools/call (stateless: no initialize, no session), `python -m bench mcp`.
MCP_HEADERS = (("Accept", "application/json, text/event-stream"), ("MCP-Protocol-Version", "2025-06-18"))
MCP_LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "list_tasks", "arguments": {"user_id": "me", "limit": 20}}}  # fmt: skip
MCP_SCENARIOS = (
    Scenario("mcp-list", "MCP list_tasks (20)", "POST", "/mcp", MCP_LIST, baseline=False, headers=MCP_HEADERS),
)
BY_KEY = {scenario.key: scenario for scenario in (*SCENARIOS, *MCP_SCENARIOS)}


def mixed(fixtures: Fixtures, count: int = 5000) -> list[Request]:
    """`count` requests drawn by the scenarios' `mix` weights, in a fixed order."""
    draw, pools = random.Random("mix"), [(s.mix, s.requests(fixtures)) for s in SCENARIOS if s.mix]
    return [draw.choice(pool) for _, pool in draw.choices(pools, [weight for weight, _ in pools], k=count)]


async def fixtures(url: str, secret: str, users: int) -> Fixtures:
    """Tokens for the first 200 users, 2,000 random tasks of theirs, their Inboxes and BATCH pending
    top-level tasks each (a user with fewer has none), the deep user's cursors at row 50,000."""
    ids = {db.user_id(index): index for index in range(1, min(users, 200) + 1)}
    deep = db.user_id(db.DEEP_USER)
    tokens = {user: access_token(secret, "todo-api", "todo-api", user, "bench", 6 * 3600) for user in [*ids, deep]}
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("SELECT setseed(0.17)")
        sql = "SELECT user_id, id FROM tasks WHERE user_id = ANY($1::text[]) ORDER BY random() LIMIT 2000"
        rows = await connection.fetch(sql, list(ids))
        inboxes: dict[str, int] = {r["user_id"]: r["id"] for r in await connection.fetch(_INBOXES_SQL, [*ids, deep])}
        batches = {user: tuple(batch) for user, batch in await connection.fetch(_BATCHES_SQL, list(ids), BATCH)}
        sql = "SELECT created_at, id FROM tasks WHERE user_id = $1 ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT 1"
        row = await connection.fetchrow(sql, deep, DEPTH - 1)
        placed = await connection.fetchrow(_ORDER_SQL, deep, inboxes.get(deep), DEPTH - 1)
        await connection.execute(_ENDED_SQL, ENDED_SESSIONS)
    finally:
        await connection.close()
    cursors = Cursors(secret)
    cursor = cursors.encode("-created_at", row["created_at"], row["id"]) if row else ""
    position_cursor = cursors.encode("position", placed["position"], placed["id"]) if placed else ""
    samples = [
        Sample(ids[r["user_id"]], tokens[r["user_id"]], r["id"], inboxes[r["user_id"]], batches.get(r["user_id"], ()))
        for r in rows
    ]
    return Fixtures(samples, Sample(db.DEEP_USER, tokens[deep], 0, inboxes.get(deep, 0)), cursor, position_cursor)


# Stamped now: each API process loads them at its next reload (SESSION_REVOCATION_REFRESH_S) and keeps
# them for an access-token lifetime, longer than a scenario runs.
_ENDED_SQL = """
INSERT INTO revoked_sessions (session_id, revoked_at)
SELECT md5('bench-ended-' || n), now() FROM generate_series(1, $1::int) AS n
ON CONFLICT (session_id) DO UPDATE SET revoked_at = excluded.revoked_at"""
_INBOXES_SQL = "SELECT user_id, id FROM lists WHERE user_id = ANY($1::text[]) AND is_inbox"
# Pending top-level tasks in a random order (setseed before), BATCH of them per user that has as many.
_BATCHES_SQL = """
SELECT user_id, array_agg(id ORDER BY id) FROM (
    SELECT user_id, id, row_number() OVER (PARTITION BY user_id ORDER BY random()) AS n
    FROM tasks WHERE user_id = ANY($1::text[]) AND NOT completed AND parent_id IS NULL
) AS pending
WHERE n <= $2 GROUP BY user_id HAVING count(*) = $2
"""
_ORDER_SQL = """
SELECT position, id FROM tasks WHERE user_id = $1 AND list_id = $2 AND parent_id IS NULL
ORDER BY position, id OFFSET $3 LIMIT 1"""
