"""The yardstick: a bare ASGI app (no framework, no ORM) doing the API's work per request.

Per route the bench measures: the same HS256 token check (python-jose, same claims; verified tokens
remembered until they expire, as the API does), the same owner check, the same SQL with asyncpg in
the same transactions, the same JSON (orjson) and headers; login with the same rate-limit upserts,
keyed pre-hash, bcrypt on its own threads and refresh-token row. What it leaves out (framework,
validation models, layers, middleware, metrics, access log) is what the ratio API / baseline measures.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode

import asyncpg
import bcrypt
import orjson
from jose import jwt
from jose.exceptions import JOSEError

from todo_api.domain.ordering import key_between  # a pure rule the API runs too: part of the work

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
Answer = tuple[int, bytes, Headers]

PRIORITIES = ("none", "low", "medium", "high")
_PRIORITY = {label: value for value, label in enumerate(PRIORITIES)}
_REQUIRED = {"require_exp": True, "require_sub": True, "require_iat": True, "leeway": 10}
_UNUSABLE = (JOSEError, ValueError, TypeError, AttributeError, KeyError, RecursionError, OverflowError)
# The sorts the baseline serves: column, direction, keyset comparison, the cast the API gives the
# cursor's value (`position` is `varchar COLLATE "C"`; the column's collation decides).
_SORTS = {"-created_at": ("created_at", "DESC", "<", ""), "position": ("position", "ASC", ">", "::varchar")}
_SORT_ALIASES = {"-created": "-created_at"}
_TASK_FIELDS = frozenset({"title", "description", "priority", "tags", "due_at", "completed"})
_COLUMNS = (
    "id, user_id, title, description, completed, completed_at, priority, tags, due_at, created_at, updated_at, version,"
    " list_id, parent_id, position"
)
_ACQUIRE_SQL = """
INSERT INTO rate_limits (key, window_started_at, hits) VALUES ($1, now(), 1)
ON CONFLICT (key) DO UPDATE SET
  hits = CASE WHEN rate_limits.window_started_at <= now() - $2::interval THEN 1 ELSE rate_limits.hits + 1 END,
  window_started_at = CASE WHEN rate_limits.window_started_at <= now() - $2::interval
                           THEN now() ELSE rate_limits.window_started_at END
RETURNING rate_limits.hits, rate_limits.window_started_at + $2::interval - now()
"""
_USER_SQL = "SELECT id, email, name, password_hash, created_at, updated_at FROM users WHERE email = $1"
_RESET_SQL = "DELETE FROM rate_limits WHERE key = $1"
_RELEASE_SQL = "UPDATE rate_limits SET hits = hits - 1 WHERE key = $1 AND hits > 0"
_REFRESH_SQL = (
    "INSERT INTO refresh_tokens (token_hash, family_id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)"
)
# Only the constant column list is spliced in; every value is a bound parameter.
_GET_SQL = f"SELECT {_COLUMNS} FROM tasks WHERE id = $1 AND user_id = $2"  # noqa: S608
# Where a new task goes, as the API asks it: the Inbox and its last top-level task's order key.
_APPEND_SQL = """
SELECT lists.id, (SELECT tasks.position FROM tasks
                  WHERE tasks.user_id = lists.user_id AND tasks.list_id = lists.id AND tasks.parent_id IS NULL
                  ORDER BY tasks.position DESC, tasks.id DESC LIMIT 1)
FROM lists WHERE lists.user_id = $1 AND lists.is_inbox"""
_INSERT_SQL = f"""
INSERT INTO tasks (user_id, completed_at, created_at, updated_at, title, description, completed, priority, tags, due_at,
                   list_id, position)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {_COLUMNS}"""  # noqa: S608
# The API's statement for the open subtasks of tasks just completed, at any depth.
_COMPLETE_DESCENDANTS_SQL = """
WITH RECURSIVE down(id, depth) AS (
    SELECT id, 1 FROM tasks WHERE parent_id = ANY($1::bigint[]) AND user_id = $2
    UNION ALL
    SELECT tasks.id, down.depth + 1 FROM tasks JOIN down ON tasks.parent_id = down.id WHERE down.depth < 16
)
UPDATE tasks SET completed = true, completed_at = $3, updated_at = $3, version = version + 1
WHERE id IN (SELECT id FROM down) AND completed IS false"""
_MAX_BULK = 100
_LOCK_MANY_SQL = "SELECT id, completed FROM tasks WHERE id = ANY($1::bigint[]) AND user_id = $2 ORDER BY id FOR UPDATE"
# The tasks whose state changes and, when completing, their pending subtasks (the API's rule), in
# one statement; `completed_at` keeps the first completion, reopening clears it.
_STATUS_MANY_SQL = """
WITH RECURSIVE named(id, depth) AS (
    SELECT unnest($1::bigint[]), 0
    UNION ALL
    SELECT tasks.id, named.depth + 1 FROM tasks JOIN named ON tasks.parent_id = named.id
    WHERE $3 AND tasks.user_id = $2 AND named.depth < 16
)
UPDATE tasks SET completed = $3, completed_at = CASE WHEN $3 THEN $4::timestamptz END, updated_at = $4,
  version = version + 1
WHERE id IN (SELECT id FROM named) AND user_id = $2 AND completed IS DISTINCT FROM $3
RETURNING id"""
_SAVE_SQL = f"""
UPDATE tasks SET completed_at = $4, updated_at = $5, version = version + 1, title = $6, description = $7,
  completed = $8, priority = $9, tags = $10, due_at = $11
WHERE id = $1 AND user_id = $2 AND version = $3 RETURNING {_COLUMNS}"""  # noqa: S608


class Problem(Exception):
    def __init__(self, status: int, code: str, detail: str, extensions: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.extensions = status, code, detail, extensions or {}


def access_token(secret: str, issuer: str, audience: str, user_id: str, session_id: str, lifetime_s: int) -> str:
    """An access token exactly as the API's `JwtAccessTokens.issue` makes them."""
    now = int(time.time())
    claims = {"sub": user_id, "sid": session_id, "iat": now, "exp": now + lifetime_s, "iss": issuer,
              "aud": audience, "jti": uuid.uuid4().hex, "type": "access"}  # fmt: skip
    return jwt.encode(claims, secret, algorithm="HS256")


class Cursors:
    """Byte for byte the API's `CursorCodec`, for the sorts the baseline serves (`_SORTS`)."""

    def __init__(self, key: str) -> None:
        self._key = hashlib.sha256(b"todo-api cursor " + key.encode()).digest()

    def encode(self, sort: str, value: datetime | str, task_id: int) -> str:
        raw = value.isoformat() if isinstance(value, datetime) else value
        payload = json.dumps([sort, raw, task_id], separators=(",", ":")).encode()
        signed = payload + hmac.new(self._key, payload, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(signed).rstrip(b"=").decode()

    def decode(self, cursor: str, sort: str) -> tuple[datetime | str, int]:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            payload, signature = raw[:-16], raw[-16:]
            if not hmac.compare_digest(signature, hmac.new(self._key, payload, hashlib.sha256).digest()[:16]):
                raise ValueError("bad signature")
            issued_for, value, task_id = json.loads(payload)
            if issued_for != sort or not isinstance(value, str):
                raise ValueError("another sort")
            return (datetime.fromisoformat(value) if sort == "-created_at" else value), int(task_id)
        except (ValueError, TypeError) as error:
            raise Problem(400, "invalid_cursor", "The cursor is not one this API issued.") from error


def _task_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"], "title": row["title"], "description": row["description"], "completed": row["completed"],
        "completed_at": row["completed_at"], "priority": PRIORITIES[row["priority"]], "tags": row["tags"],
        "due_at": row["due_at"], "created_at": row["created_at"], "updated_at": row["updated_at"],
        "version": row["version"], "list_id": row["list_id"], "parent_id": row["parent_id"],
        "position": row["position"],
    }  # fmt: skip


def _dumps(value: object) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_UTC_Z)


def _tag(raw: object) -> str:
    if not isinstance(raw, str):
        raise Problem(422, "validation_failed", "A tag is a string.")
    tag = " ".join(raw.split()).lower()
    if not 1 <= len(tag) <= 50:
        raise Problem(422, "invalid_tag", "A tag has 1 to 50 characters.")
    return tag


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise Problem(400, "malformed_json", "The body is not valid JSON.") from error


def _draft(body: bytes) -> dict[str, Any]:
    """The API's TaskCreate + TaskDraft checks, by hand."""
    data = _json(body)
    if not isinstance(data, dict) or not set(data) <= _TASK_FIELDS or not isinstance(data.get("title"), str):
        raise Problem(422, "validation_failed", "The body does not match TaskCreate.")
    title = data["title"].strip()
    if not 1 <= len(title) <= 200:
        raise Problem(422, "invalid_title", "A title has 1 to 200 characters.")
    if (description := data.get("description")) is not None:
        if not isinstance(description, str) or len(description.strip()) > 1000:
            raise Problem(422, "invalid_description", "A description has at most 1000 characters.")
        description = description.strip() or None
    priority, completed = _PRIORITY.get(data.get("priority", "none")), data.get("completed", False)
    if priority is None or not isinstance(completed, bool):
        raise Problem(422, "validation_failed", "`priority` or `completed` is not valid.")
    if (due_at := data.get("due_at")) is not None:
        try:
            due_at = datetime.fromisoformat(due_at)
        except (TypeError, ValueError) as error:
            raise Problem(422, "validation_failed", "`due_at` is not a date-time.") from error
        if due_at.utcoffset() is None:
            raise Problem(422, "naive_datetime", "`due_at` needs a time zone.")
    raw_tags = data.get("tags", [])
    if not isinstance(raw_tags, list) or len(raw_tags) > 40:
        raise Problem(422, "validation_failed", "`tags` is a list of at most 40 strings.")
    if len(tags := list(dict.fromkeys(_tag(tag) for tag in raw_tags))) > 20:
        raise Problem(422, "too_many_tags", "A task has at most 20 tags.")
    return {"title": title, "description": description, "priority": priority, "tags": tags, "due_at": due_at,
            "completed": completed}  # fmt: skip


def _status_change(body: bytes) -> tuple[str, list[int], bool]:
    """The API's BulkRequest checks, for the one kind the baseline serves: a single complete or reopen."""
    data, error = _json(body), Problem(422, "validation_failed", "The baseline serves one complete or reopen only.")
    if not isinstance(data, dict) or not set(data) <= {"operations", "atomic"}:
        raise error
    operations, atomic = data.get("operations"), data.get("atomic", True)
    if not isinstance(operations, list) or len(operations) != 1 or not isinstance(atomic, bool):
        raise error
    if not isinstance(operation := operations[0], dict) or set(operation) != {"op", "task_ids"}:
        raise error
    op, task_ids = operation["op"], operation["task_ids"]
    if op not in ("complete", "reopen") or not isinstance(task_ids, list) or not 1 <= len(task_ids) <= _MAX_BULK:
        raise error
    if not all(type(task_id) is int and 1 <= task_id <= 2**63 - 1 for task_id in task_ids):
        raise Problem(422, "validation_failed", "A task id is a positive integer.")
    return op, task_ids, atomic


def _completion(body: bytes) -> bool | None:
    """The API's optional CompletionUpdate body: absent or `{}` toggles, `{"completed": b}` sets."""
    if not body.strip():
        return None
    data = _json(body)
    completed = data.get("completed") if isinstance(data, dict) and set(data) <= {"completed"} else "invalid"
    if completed is not None and not isinstance(completed, bool):
        raise Problem(422, "validation_failed", "The body does not match CompletionUpdate.")
    return completed


async def _no_reset(_: asyncpg.Connection) -> None:
    """The API's pool only rolls back an open transaction on return; so do we (none is open)."""


class Baseline:
    pool: asyncpg.Pool  # opened at lifespan start-up, with the bcrypt threads
    _bcrypt: ThreadPoolExecutor
    _dummy_hash: bytes

    def __init__(self) -> None:
        env = os.environ.get
        self._dsn = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", env("DATABASE_URL", ""))
        self._secret = env("SECRET_KEY", "")
        if not self._dsn or not self._secret:
            raise RuntimeError("the baseline needs DATABASE_URL and SECRET_KEY (the API's)")
        self._pepper = env("PASSWORD_PEPPER", "todo-api-development-pepper-not-for-production").encode()
        self._issuer, self._audience = env("JWT_ISSUER", "todo-api"), env("JWT_AUDIENCE", "todo-api")
        self._token_lifetime_s = int(env("ACCESS_TOKEN_LIFETIME_S", "900"))
        self._refresh_lifetime = timedelta(days=int(env("REFRESH_TOKEN_LIFETIME_DAYS", "30")))
        self._pool_size = int(env("DB_POOL_SIZE", "10")) + int(env("DB_MAX_OVERFLOW", "5"))
        self._timeout_ms = int(env("DB_STATEMENT_TIMEOUT_MS", "5000"))
        self._bcrypt_cost, self._bcrypt_threads = int(env("BCRYPT_COST", "12")), int(env("BCRYPT_THREADS", "2"))
        self._limits = (int(env("THROTTLE_LOGIN_PER_ACCOUNT", "5")), int(env("THROTTLE_LOGIN_PER_ADDRESS", "20")))
        self._window = timedelta(seconds=int(env("THROTTLE_LOGIN_WINDOW_S", "900")))
        self._production = env("ENVIRONMENT", "development") == "production"
        self._cursors = Cursors(self._secret)
        self._verified: dict[str, tuple[str, float]] = {}
        self._headers: Headers = [
            (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"), (b"cross-origin-opener-policy", b"same-origin"),
            (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
        ]  # fmt: skip
        if self._production:
            self._headers.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request_id = uuid.uuid4().hex
        content_type = b"application/json"
        try:
            status, body, headers = await self._route(scope, receive)
        except Problem as problem:
            status, headers, content_type = problem.status, [], b"application/problem+json"
            body = _dumps({"type": f"https://todo-api.dev/problems/{problem.code}",
                           "title": HTTPStatus(problem.status).phrase, "status": problem.status,
                           "detail": problem.detail, "instance": scope["path"], "code": problem.code,
                           "request_id": request_id, **problem.extensions})  # fmt: skip
        headers += [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        headers += [*self._headers, (b"x-request-id", request_id.encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        self.pool = await asyncpg.create_pool(
            self._dsn, min_size=1, max_size=self._pool_size, reset=_no_reset,
            command_timeout=self._timeout_ms / 1000 + 5,
            server_settings={"application_name": "todo-api-baseline", "statement_timeout": str(self._timeout_ms)}
        )  # fmt: skip
        self._bcrypt = ThreadPoolExecutor(max_workers=self._bcrypt_threads, thread_name_prefix="bcrypt")
        self._dummy_hash = bcrypt.hashpw(b"dummy-password-for-unknown-accounts", bcrypt.gensalt(self._bcrypt_cost))
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await self.pool.close()
        self._bcrypt.shutdown(wait=False, cancel_futures=True)
        await send({"type": "lifespan.shutdown.complete"})

    async def _route(self, scope: Scope, receive: Receive) -> Answer:
        method: str = scope["method"]
        parts = scope["path"].split("/")
        if scope["path"] == "/healthz":
            return 200, b'{"status":"ok"}', []
        if scope["path"] == "/api/auth/login" and method == "POST":
            return await self._login(scope, await _body(receive))
        if len(parts) >= 4 and parts[1] == "api" and parts[3] == "tasks":
            owner = self._owner(scope, parts[2])
            if len(parts) == 4 and method == "GET":
                return await self._list(scope, owner)
            if len(parts) == 4 and method == "POST":
                return await self._create(owner, await _body(receive))
            if len(parts) == 5 and parts[4] == "bulk" and method == "POST":
                return await self._bulk(owner, await _body(receive))
            task_id = _task_id(parts[4]) if len(parts) >= 5 else 0
            if len(parts) == 5 and method == "GET":
                return await self._get(owner, task_id, _header(scope, b"if-none-match"))
            if len(parts) == 6 and parts[5] == "complete" and method == "PATCH":
                return await self._toggle(owner, task_id, await _body(receive))
        raise Problem(404, "not_found", "The baseline serves only the benchmark's routes.")

    def _owner(self, scope: Scope, path_user: str) -> str:
        scheme, _, token = (_header(scope, b"authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Problem(401, "missing_token", "This route needs a bearer token.")
        user_id = self._verify(token)
        if path_user not in ("me", user_id):
            raise Problem(403, "not_your_tasks", "You can only reach your own tasks.")
        return user_id

    def _verify(self, token: str) -> str:
        if (known := self._verified.get(token)) is not None:
            if known[1] > time.time():
                return known[0]
            del self._verified[token]
        if len(token) > 8192:
            raise Problem(401, "invalid_token", "The bearer token is too large.")
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"], audience=self._audience,
                                issuer=self._issuer, options=_REQUIRED)  # fmt: skip
        except _UNUSABLE as error:
            raise Problem(401, "invalid_token", "The bearer token is invalid or expired.") from error
        if claims.get("type") != "access" or not isinstance(claims.get("sid"), str):
            raise Problem(401, "invalid_token", "This is not an access token.")
        if len(self._verified) >= 4096:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (str(claims["sub"]), float(claims["exp"]))
        return str(claims["sub"])

    async def _list(self, scope: Scope, owner: str) -> Answer:
        params = parse_qsl(scope["query_string"].decode("latin-1"))
        sql, args, limit, sort = self._list_query(owner, params)
        rows = await self.pool.fetch(sql, *args)
        page, more = rows[:limit], len(rows) > limit
        next_cursor = self._cursors.encode(sort, page[-1][_SORTS[sort][0]], page[-1]["id"]) if more else None
        headers: Headers = []
        if next_cursor is not None:
            query = urlencode([(k, v) for k, v in params if k != "cursor"] + [("cursor", next_cursor)])
            headers.append((b"link", f'<{scope["path"]}?{query}>; rel="next"'.encode()))
        meta = {"next_cursor": next_cursor, "limit": limit, "total": None}
        return 200, _dumps({"data": [_task_json(row) for row in page], "meta": meta}), headers

    def _list_query(self, owner: str, params: list[tuple[str, str]]) -> tuple[str, list[Any], int, str]:
        """The API's listing statement, for the sorts in `_SORTS`: the same conditions in the same order."""
        single = dict(params)
        if (sort := _SORT_ALIASES.get(raw := single.get("sort", "-created_at"), raw)) not in _SORTS:
            raise Problem(422, "invalid_sort", f"The baseline sorts by {' or '.join(_SORTS)} only.")
        limit = int(single.get("limit", "20"))
        if not 1 <= limit <= 100:
            raise Problem(422, "invalid_limit", "`limit` is between 1 and 100.")
        conditions, args = ["user_id = $1"], list[object]([owner])

        def arg(value: object) -> str:
            args.append(value)
            return f"${len(args)}"

        if (status := single.get("status", "all")) != "all":
            conditions.append("completed IS true" if status == "completed" else "completed IS false")
        if priorities := sorted({_PRIORITY[v] for k, v in params if k == "priority"}):
            conditions.append(f"priority IN ({', '.join(arg(p) for p in priorities)})")
        if tags := list(dict.fromkeys(_tag(v) for k, v in params if k == "tag")):
            conditions.append(f"tags @> {arg(tags)}")
        if search := single.get("q", "").strip():
            pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            conditions.append(
                f"(title ILIKE {arg(pattern)} ESCAPE '\\' OR description ILIKE {arg(pattern)} ESCAPE '\\')"
            )
        if (list_id := single.get("list_id")) is not None:
            conditions.append(f"list_id = {arg(_task_id(list_id))}::bigint")
        if (parent := single.get("parent_id")) is not None:
            if parent != "none":
                raise Problem(422, "validation_failed", "The baseline lists top-level tasks (`parent_id=none`) only.")
            conditions.append("parent_id IS NULL")
        column, direction, after, cast = _SORTS[sort]
        if cursor := single.get("cursor"):
            value, task_id = self._cursors.decode(cursor, sort)
            conditions.append(f"({column}, id) {after} ({arg(value)}{cast}, {arg(task_id)})")
        order = f"ORDER BY {column} {direction}, id {direction} LIMIT {arg(limit + 1)}"
        return f"SELECT {_COLUMNS} FROM tasks WHERE {' AND '.join(conditions)} {order}", args, limit, sort  # noqa: S608

    async def _get(self, owner: str, task_id: int, if_none_match: str | None) -> Answer:
        row = await self.pool.fetchrow(_GET_SQL, task_id, owner)
        if row is None:
            raise Problem(404, "task_not_found", f"Task {task_id} was not found.")
        etag = f'"{row["version"]}"'.encode()
        if if_none_match is not None and if_none_match.strip() in ("*", etag.decode()):
            return 304, b"", [(b"etag", etag)]
        return 200, _dumps(_task_json(row)), [(b"etag", etag)]

    async def _create(self, owner: str, body: bytes) -> Answer:
        d = _draft(body)
        now = datetime.now(UTC)
        async with self.pool.acquire() as connection, connection.transaction():
            inbox = await connection.fetchrow(_APPEND_SQL, owner)
            if inbox is None:
                raise Problem(404, "list_not_found", "The Inbox was not found.")
            row = await connection.fetchrow(
                _INSERT_SQL, owner, now if d["completed"] else None, now, now, d["title"], d["description"],
                d["completed"], d["priority"], d["tags"], d["due_at"], inbox[0], key_between(inbox[1], None),
            )  # fmt: skip
        if row is None:  # pragma: no cover - INSERT ... RETURNING returns the row
            raise Problem(500, "internal_error", "The insert returned nothing.")
        headers = [(b"location", f"/api/{owner}/tasks/{row['id']}".encode()), (b"etag", f'"{row["version"]}"'.encode())]
        return 201, _dumps(_task_json(row)), headers

    async def _toggle(self, owner: str, task_id: int, body: bytes) -> Answer:
        wanted = _completion(body)
        for _ in range(5):
            async with self.pool.acquire() as connection, connection.transaction():
                task = await connection.fetchrow(_GET_SQL, task_id, owner)
                if task is None:
                    raise Problem(404, "task_not_found", f"Task {task_id} was not found.")
                completed = (not task["completed"]) if wanted is None else wanted
                if completed == task["completed"]:
                    return 200, _dumps(_task_json(task)), [(b"etag", f'"{task["version"]}"'.encode())]
                now = datetime.now(UTC)
                saved = await connection.fetchrow(
                    _SAVE_SQL, task_id, owner, task["version"], now if completed else None, now, task["title"],
                    task["description"], completed, task["priority"], task["tags"], task["due_at"],
                )  # fmt: skip
                if saved is not None and completed:  # completing a task completes its open subtasks
                    await connection.execute(_COMPLETE_DESCENDANTS_SQL, [task_id], owner, now)
            if saved is not None:
                return 200, _dumps(_task_json(saved)), [(b"etag", f'"{saved["version"]}"'.encode())]
        raise Problem(503, "service_unavailable", "The task is changing too fast; try again.")

    async def _bulk(self, owner: str, body: bytes) -> Answer:
        """One locked read of the named tasks (in id order, as the API locks them), one UPDATE of those
        whose state changes (with, when completing, their subtasks), one result per task named."""
        op, task_ids, atomic = _status_change(body)
        completed = op == "complete"
        async with self.pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(_LOCK_MANY_SQL, sorted(set(task_ids)), owner)
            found: dict[int, bool] = {row["id"]: row["completed"] for row in rows}
            missing = [task_id for task_id in task_ids if task_id not in found]
            results = [{"task_id": task_id, "op": op, "code": "ok", "message": None} for task_id in task_ids]
            for result in results:
                if result["task_id"] in missing:
                    result |= {"code": "task_not_found", "message": f"Task {result['task_id']} was not found."}
            if missing and atomic:
                detail = f"{len(missing)} of {len(results)} tasks cannot be changed, so none was; see `results`."
                raise Problem(422, "bulk_not_applied", detail, {"results": results})
            if changing := [task_id for task_id, was in found.items() if was != completed]:
                await connection.fetch(_STATUS_MANY_SQL, changing, owner, completed, datetime.now(UTC))
        return 200, _dumps({"applied": True, "results": results}), []

    async def _login(self, scope: Scope, body: bytes) -> Answer:
        try:
            data = orjson.loads(body)
            email, password = data["email"].strip().lower(), data["password"]
        except (orjson.JSONDecodeError, TypeError, KeyError, AttributeError) as error:
            raise Problem(422, "validation_failed", "The body does not match LogInRequest.") from error
        keys = (f"login:account:{email}", f"login:address:{scope['client'][0]}")
        async with self.pool.acquire() as connection, connection.transaction():
            waits = [await connection.fetchrow(_ACQUIRE_SQL, key, self._window) for key in keys]
            user = await connection.fetchrow(_USER_SQL, email)
        if any(row is not None and row[0] > limit for row, limit in zip(waits, self._limits, strict=True)):
            raise Problem(429, "rate_limited", "Too many attempts; try again later.")
        stored = user["password_hash"].encode() if user is not None and user["password_hash"] else self._dummy_hash
        if not await self._check_password(password, stored) or user is None:
            raise Problem(401, "invalid_credentials", "The e-mail address or password is incorrect.")
        now, refresh, family = datetime.now(UTC), secrets.token_urlsafe(32), uuid.uuid4().hex
        expires_at = now + self._refresh_lifetime
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute(_RESET_SQL, keys[0])
            await connection.execute(_RELEASE_SQL, keys[1])
            token_hash = hashlib.sha256(refresh.encode()).hexdigest()
            await connection.execute(_REFRESH_SQL, token_hash, family, user["id"], now, expires_at)
        access = access_token(self._secret, self._issuer, self._audience, user["id"], family, self._token_lifetime_s)
        session = {
            "access_token": access, "token_type": "bearer", "expires_in": self._token_lifetime_s,
            "user": {"id": user["id"], "email": user["email"], "name": user["name"], "created_at": user["created_at"]},
            "refresh_token": refresh,
        }  # fmt: skip
        cookie = (f"refresh_token={refresh}; expires={format_datetime(expires_at, usegmt=True)}; HttpOnly; "
                  f"Path=/api/auth; SameSite=lax{'; secure' if self._production else ''}")  # fmt: skip
        return 200, _dumps(session), [(b"set-cookie", cookie.encode())]

    async def _check_password(self, password: str, stored: bytes) -> bool:
        prehashed = base64.b64encode(hmac.new(self._pepper, password.encode(), hashlib.sha384).digest())
        try:
            return await asyncio.get_running_loop().run_in_executor(self._bcrypt, bcrypt.checkpw, prehashed, stored)
        except ValueError:
            return False


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _task_id(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 2**63 - 1:
        raise Problem(422, "validation_failed", "A task id is a positive integer.")
    return int(raw)


def create_app() -> Baseline:
    """The uvicorn factory (`--factory`), so each worker reads the environment itself."""
    return Baseline()
