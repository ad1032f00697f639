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
WRONG = "not-the-right-password-at-all-42"


class Sample(NamedTuple):
    user: int  # the seeded account: user<n>@bench.example
    token: str
    task: int  # one of its tasks


class Fixtures(NamedTuple):
    samples: list[Sample]  # 2,000 (user, task) pairs over 200 users
    deep: Sample
    cursor: str


class Request(NamedTuple):
    key: str
    expect: int
    data: bytes  # the whole HTTP/1.1 message


@dataclass(frozen=True, slots=True)
class Scenario:
    """`Scenario("archive", "archive a task", "POST", "/api/me/tasks/{task}/archive", expect=204, mix=3)`.

    `path` may name `{task}` (one of the user's tasks) and `{cursor}` (the deep user's at row 50,000);
    `body` is JSON or a function of a seeded `random.Random` and the `Sample`; `user` is "sample" (200
    accounts, another per request), "deep" or "anonymous" (no token; a login's e-mail is the sample's).
    `baseline`: the baseline serves it, so `compare` measures it; `mix`: its weight in `load`.
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

    def requests(self, fixtures: Fixtures) -> list[Request]:
        """The distinct requests drawn over the samples, the same every run."""
        draw, requests = random.Random(self.key), {}
        for sample in fixtures.samples:
            who = fixtures.deep if self.user == "deep" else sample
            body = self.body(draw, sample) if callable(self.body) else self.body
            token = None if self.user == "anonymous" else who.token
            message = http_request(self.method, self.path.format(task=who.task, cursor=fixtures.cursor), token, body)
            requests[message] = Request(self.key, self.expect, message)
        return list(requests.values())


def http_request(method: str, path: str, token: str | None = None, body: object = None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: todo-bench\r\n"
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


TASKS, LOGIN = "/api/me/tasks", "/api/auth/login"
SEARCH = "status=pending&priority=high&priority=medium&tag=work&q=report"
SCENARIOS = (
    Scenario("list", "list first page", "GET", TASKS, mix=25),
    Scenario("deep", f"list at depth {DEPTH:,}", "GET", TASKS + "?cursor={cursor}", user="deep"),
    Scenario("get", "get one task", "GET", TASKS + "/{task}", mix=15),
    Scenario("create", "create", "POST", TASKS, _task, expect=201, writes=True, mix=15),
    Scenario("toggle", "toggle complete", "PATCH", TASKS + "/{task}/complete", writes=True, mix=10),
    Scenario("search", "filtered + searched list", "GET", f"{TASKS}?{SEARCH}"),
    Scenario("login", "login", "POST", LOGIN, _login(db.PASSWORD), "anonymous", writes=True, mix=2, connections=4),
    # The API's alone: `load`'s mix and `timing`.
    Scenario("due", "pending by due date", "GET", TASKS + "?status=pending&sort=due_at", baseline=False, mix=25),
    Scenario("patch", "patch the priority", "PATCH", TASKS + "/{task}", _priority, baseline=False, mix=5),
    Scenario("missing", "404 on purpose", "GET", TASKS + "/9000000000000", expect=404, baseline=False, mix=2),
    Scenario("invalid", "422 on purpose", "POST", TASKS, {"title": ""}, expect=422, baseline=False, mix=1),
    Scenario("wrong", "login, wrong password", "POST", LOGIN, _login(WRONG), "anonymous", 401, baseline=False),
    Scenario("unknown", "login, unknown e-mail", "POST", LOGIN, _login(WRONG, True), "anonymous", 401, baseline=False),
)
BY_KEY = {scenario.key: scenario for scenario in SCENARIOS}


def mixed(fixtures: Fixtures, count: int = 5000) -> list[Request]:
    """`count` requests drawn by the scenarios' `mix` weights, in a fixed order."""
    draw, pools = random.Random("mix"), [(s.mix, s.requests(fixtures)) for s in SCENARIOS if s.mix]
    return [draw.choice(pool) for _, pool in draw.choices(pools, [weight for weight, _ in pools], k=count)]


async def fixtures(url: str, secret: str, users: int) -> Fixtures:
    """Tokens for the first 200 users, 2,000 random tasks of theirs, the deep user's cursor at row 50,000."""
    ids = {db.user_id(index): index for index in range(1, min(users, 200) + 1)}
    deep = db.user_id(db.DEEP_USER)
    tokens = {user: access_token(secret, "todo-api", "todo-api", user, "bench", 6 * 3600) for user in [*ids, deep]}
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("SELECT setseed(0.17)")
        sql = "SELECT user_id, id FROM tasks WHERE user_id = ANY($1::text[]) ORDER BY random() LIMIT 2000"
        rows = await connection.fetch(sql, list(ids))
        sql = "SELECT created_at, id FROM tasks WHERE user_id = $1 ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT 1"
        row = await connection.fetchrow(sql, deep, DEPTH - 1)
    finally:
        await connection.close()
    cursor = Cursors(secret).encode(row["created_at"], row["id"]) if row else ""
    samples = [Sample(ids[r["user_id"]], tokens[r["user_id"]], r["id"]) for r in rows]
    return Fixtures(samples, Sample(db.DEEP_USER, tokens[deep], 0), cursor)
