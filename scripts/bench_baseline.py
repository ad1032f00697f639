"""The benchmark's yardstick: a bare ASGI app (no framework, no ORM) doing the API's work per request.

For each route the benchmark drives it does what the API does, with nothing in between: it checks
the same HS256 access token (python-jose, same algorithm allow-list, issuer, audience and required
claims), runs the same SQL with asyncpg (the same statements in the same transactions: reads in
autocommit, writes inside BEGIN/COMMIT), and answers the same JSON (orjson) with the same headers.
Login takes the same two rate-limit upserts, the same keyed pre-hash and bcrypt check on a
two-thread pool, and writes the same refresh-token row. Like the API's `BearerTokenVerifier`, it
remembers a verified token until it expires, so neither side checks a signature per request.

What it leaves out is exactly what the benchmark measures: FastAPI's routing, dependency injection
and validation, pydantic models, SQLAlchemy Core compilation and result processing, the use-case
and repository layers, middleware and the metrics. The ratio API / baseline is what they cost.

Only the benchmark's routes exist (list with the default `-created_at` order, get, create, toggle
completion, login, /healthz). It reads the API's settings from the environment (DATABASE_URL,
SECRET_KEY, PASSWORD_PEPPER, ...), so both verify the same tokens and cursors.

    .venv/bin/python -m scripts.bench_baseline --port 8001 [--workers 1]
    (or `python -m uvicorn scripts.bench_baseline:create_app --factory ...`, as the benchmark does)
"""

from __future__ import annotations

import argparse
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
from dataclasses import dataclass
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

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

PRIORITY_LABELS = ("none", "low", "medium", "high")
_PRIORITY_BY_LABEL = {label: value for value, label in enumerate(PRIORITY_LABELS)}
_COLUMNS = (
    "id, user_id, title, description, completed, completed_at, priority, tags, due_at, created_at, updated_at, version"
)
_REQUIRED = {"require_exp": True, "require_sub": True, "require_iat": True, "leeway": 10}
_UNUSABLE = (JOSEError, ValueError, TypeError, AttributeError, KeyError, RecursionError, OverflowError)
_TASK_FIELDS = frozenset({"title", "description", "priority", "tags", "due_at", "completed"})
_WRITE_ATTEMPTS = 5
_API_CSP = b"default-src 'none'; frame-ancestors 'none'"

_ACQUIRE_SQL = """
INSERT INTO rate_limits (key, window_started_at, hits) VALUES ($1, now(), 1)
ON CONFLICT (key) DO UPDATE SET
  hits = CASE WHEN rate_limits.window_started_at <= now() - $2::interval THEN 1 ELSE rate_limits.hits + 1 END,
  window_started_at = CASE WHEN rate_limits.window_started_at <= now() - $2::interval
                           THEN now() ELSE rate_limits.window_started_at END
RETURNING rate_limits.hits, rate_limits.window_started_at + $2::interval - now()
"""
_USER_BY_EMAIL_SQL = "SELECT id, email, name, password_hash, created_at, updated_at FROM users WHERE email = $1"
_RESET_SQL = "DELETE FROM rate_limits WHERE key = $1"
_RELEASE_SQL = "UPDATE rate_limits SET hits = hits - 1 WHERE key = $1 AND hits > 0"
_ADD_REFRESH_SQL = (
    "INSERT INTO refresh_tokens (token_hash, family_id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)"
)
# The f-strings below only splice in the constant column list; every value is a bound parameter.
_GET_SQL = f"SELECT {_COLUMNS} FROM tasks WHERE id = $1 AND user_id = $2"  # noqa: S608
_INSERT_SQL = f"""
INSERT INTO tasks (user_id, completed_at, created_at, updated_at, title, description, completed, priority, tags, due_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {_COLUMNS}
"""  # noqa: S608
_SAVE_SQL = f"""
UPDATE tasks SET completed_at = $4, updated_at = $5, version = version + 1, title = $6, description = $7,
  completed = $8, priority = $9, tags = $10, due_at = $11
WHERE id = $1 AND user_id = $2 AND version = $3 RETURNING {_COLUMNS}
"""  # noqa: S608


class Problem(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


@dataclass(frozen=True, slots=True)
class Config:
    database_url: str
    secret_key: str
    pepper: bytes
    issuer: str
    audience: str
    token_lifetime_s: int
    refresh_lifetime: timedelta
    pool_size: int
    statement_timeout_ms: int
    bcrypt_cost: int
    bcrypt_threads: int
    login_per_account: int
    login_per_address: int
    login_window: timedelta
    production: bool

    @classmethod
    def from_environment(cls) -> Config:
        env = os.environ.get
        url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", env("DATABASE_URL", ""))
        if not url or not env("SECRET_KEY"):
            raise RuntimeError("the baseline needs DATABASE_URL and SECRET_KEY (the API's)")
        return cls(
            database_url=url,
            secret_key=env("SECRET_KEY", ""),
            pepper=env("PASSWORD_PEPPER", "todo-api-development-pepper-not-for-production").encode(),
            issuer=env("JWT_ISSUER", "todo-api"),
            audience=env("JWT_AUDIENCE", "todo-api"),
            token_lifetime_s=int(env("ACCESS_TOKEN_LIFETIME_S", "900")),
            refresh_lifetime=timedelta(days=int(env("REFRESH_TOKEN_LIFETIME_DAYS", "30"))),
            pool_size=int(env("DB_POOL_SIZE", "10")) + int(env("DB_MAX_OVERFLOW", "5")),
            statement_timeout_ms=int(env("DB_STATEMENT_TIMEOUT_MS", "5000")),
            bcrypt_cost=int(env("BCRYPT_COST", "12")),
            bcrypt_threads=int(env("BCRYPT_THREADS", "2")),
            login_per_account=int(env("THROTTLE_LOGIN_PER_ACCOUNT", "5")),
            login_per_address=int(env("THROTTLE_LOGIN_PER_ADDRESS", "20")),
            login_window=timedelta(seconds=int(env("THROTTLE_LOGIN_WINDOW_S", "900"))),
            production=env("ENVIRONMENT", "development") == "production",
        )


# Helpers ------------------------------------------------------------------------------------


def _task_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "title": row["title"],
        "description": row["description"],
        "completed": row["completed"],
        "completed_at": row["completed_at"],
        "priority": PRIORITY_LABELS[row["priority"]],
        "tags": row["tags"],
        "due_at": row["due_at"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "version": row["version"],
    }


def _dumps(value: object) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_UTC_Z)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Cursors:
    """Byte for byte the API's `CursorCodec`, for the one sort the baseline serves."""

    SORT = "-created_at"

    def __init__(self, key: str) -> None:
        self._key = hashlib.sha256(b"todo-api cursor " + key.encode()).digest()

    def encode(self, created_at: datetime, task_id: int) -> str:
        payload = json.dumps([self.SORT, created_at.isoformat(), task_id], separators=(",", ":")).encode()
        return _b64(payload + hmac.new(self._key, payload, hashlib.sha256).digest()[:16])

    def decode(self, cursor: str) -> tuple[datetime, int]:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            payload, signature = raw[:-16], raw[-16:]
            if not hmac.compare_digest(signature, hmac.new(self._key, payload, hashlib.sha256).digest()[:16]):
                raise ValueError("bad signature")
            sort, value, task_id = json.loads(payload)
            if sort != self.SORT:
                raise ValueError("another sort")
            return datetime.fromisoformat(value), int(task_id)
        except (ValueError, TypeError) as error:
            raise Problem(400, "invalid_cursor", "The cursor is not one this API issued.") from error


def _normalise_tag(raw: object) -> str:
    if not isinstance(raw, str):
        raise Problem(422, "validation_failed", "A tag is a string.")
    tag = " ".join(raw.split()).lower()
    if not 1 <= len(tag) <= 50:
        raise Problem(422, "invalid_tag", "A tag has 1 to 50 characters.")
    return tag


def _tags(raw: object) -> list[str]:
    if not isinstance(raw, list) or len(raw) > 40:
        raise Problem(422, "validation_failed", "`tags` is a list of at most 40 strings.")
    tags = list(dict.fromkeys(_normalise_tag(tag) for tag in raw))
    if len(tags) > 20:
        raise Problem(422, "too_many_tags", "A task has at most 20 tags.")
    return tags


def _draft(body: bytes) -> dict[str, Any]:
    """The API's TaskCreate + TaskDraft checks, by hand."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise Problem(400, "malformed_json", "The body is not valid JSON.") from error
    if not isinstance(data, dict) or not set(data) <= _TASK_FIELDS or not isinstance(data.get("title"), str):
        raise Problem(422, "validation_failed", "The body does not match TaskCreate.")
    title = data["title"].strip()
    if not 1 <= len(title) <= 200:
        raise Problem(422, "invalid_title", "A title has 1 to 200 characters.")
    description = data.get("description")
    if description is not None:
        if not isinstance(description, str) or len(description.strip()) > 1000:
            raise Problem(422, "invalid_description", "A description has at most 1000 characters.")
        description = description.strip() or None
    priority = _PRIORITY_BY_LABEL.get(data.get("priority", "none"))
    completed = data.get("completed", False)
    if priority is None or not isinstance(completed, bool):
        raise Problem(422, "validation_failed", "`priority` or `completed` is not valid.")
    due_at = data.get("due_at")
    if due_at is not None:
        try:
            due_at = datetime.fromisoformat(due_at)
        except (TypeError, ValueError) as error:
            raise Problem(422, "validation_failed", "`due_at` is not a date-time.") from error
        if due_at.utcoffset() is None:
            raise Problem(422, "naive_datetime", "`due_at` needs a time zone.")
    return {
        "title": title,
        "description": description,
        "priority": priority,
        "tags": _tags(data.get("tags", [])),
        "due_at": due_at,
        "completed": completed,
    }


def _completion(body: bytes) -> bool | None:
    """The API's optional CompletionUpdate body: absent or `{}` toggles, `{"completed": b}` sets."""
    if not body.strip():
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise Problem(400, "malformed_json", "The body is not valid JSON.") from error
    completed = data.get("completed") if isinstance(data, dict) and set(data) <= {"completed"} else "invalid"
    if completed is not None and not isinstance(completed, bool):
        raise Problem(422, "validation_failed", "The body does not match CompletionUpdate.")
    return completed


# The app ------------------------------------------------------------------------------------


class Baseline:
    def __init__(self, config: Config) -> None:
        self._config = config
        self._cursors = Cursors(config.secret_key)
        self._verified: dict[str, tuple[str, float]] = {}
        self._pool: asyncpg.Pool | None = None
        self._bcrypt: ThreadPoolExecutor | None = None
        self._dummy_hash = b""
        self._headers: Headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"content-security-policy", _API_CSP),
        ]
        if config.production:
            self._headers.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the pool opens at lifespan start-up")
        return self._pool

    # ASGI plumbing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request_id = uuid.uuid4().hex
        try:
            status, body, headers = await self._route(scope, receive)
            content_type = b"application/json"
        except Problem as problem:
            status, headers, content_type = problem.status, [], b"application/problem+json"
            body = _dumps(
                {
                    "type": f"https://todo-api.dev/problems/{problem.code}",
                    "title": HTTPStatus(problem.status).phrase,
                    "status": problem.status,
                    "detail": problem.detail,
                    "instance": scope["path"],
                    "code": problem.code,
                    "request_id": request_id,
                }
            )
        headers += [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        headers += [*self._headers, (b"x-request-id", request_id.encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.pool.close()
                if self._bcrypt is not None:
                    self._bcrypt.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start(self) -> None:
        async def no_reset(_: asyncpg.Connection) -> None:
            """SQLAlchemy's pool only rolls back an open transaction on return; so do we (none is open)."""

        self._pool = await asyncpg.create_pool(
            self._config.database_url,
            min_size=1,
            max_size=self._config.pool_size,
            reset=no_reset,
            command_timeout=self._config.statement_timeout_ms / 1000 + 5,
            server_settings={
                "application_name": "todo-api-baseline",
                "statement_timeout": str(self._config.statement_timeout_ms),
            },
        )
        self._bcrypt = ThreadPoolExecutor(max_workers=self._config.bcrypt_threads, thread_name_prefix="bcrypt")
        self._dummy_hash = bcrypt.hashpw(
            b"dummy-password-for-unknown-accounts", bcrypt.gensalt(self._config.bcrypt_cost)
        )

    async def _route(self, scope: Scope, receive: Receive) -> tuple[int, bytes, Headers]:
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
            task_id = _task_id(parts[4]) if len(parts) >= 5 else 0
            if len(parts) == 5 and method == "GET":
                return await self._get(owner, task_id, _header(scope, b"if-none-match"))
            if len(parts) == 6 and parts[5] == "complete" and method == "PATCH":
                return await self._toggle(owner, task_id, await _body(receive))
        raise Problem(404, "not_found", "The baseline serves only the benchmark's routes.")

    # Authentication

    def _owner(self, scope: Scope, path_user: str) -> str:
        authorization = _header(scope, b"authorization") or ""
        scheme, _, token = authorization.partition(" ")
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
            claims = jwt.decode(
                token,
                self._config.secret_key,
                algorithms=["HS256"],
                audience=self._config.audience,
                issuer=self._config.issuer,
                options=_REQUIRED,
            )
        except _UNUSABLE as error:
            raise Problem(401, "invalid_token", "The bearer token is invalid or expired.") from error
        if claims.get("type") != "access" or not isinstance(claims.get("sid"), str):
            raise Problem(401, "invalid_token", "This is not an access token.")
        if len(self._verified) >= 4096:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (str(claims["sub"]), float(claims["exp"]))
        return str(claims["sub"])

    # Tasks

    async def _list(self, scope: Scope, owner: str) -> tuple[int, bytes, Headers]:
        params = parse_qsl(scope["query_string"].decode("latin-1"))
        sql, args, limit = self._list_query(owner, params)
        rows = await self.pool.fetch(sql, *args)
        page, more = rows[:limit], len(rows) > limit
        next_cursor = self._cursors.encode(page[-1]["created_at"], page[-1]["id"]) if more else None
        headers: Headers = []
        if next_cursor is not None:
            query = urlencode([(k, v) for k, v in params if k != "cursor"] + [("cursor", next_cursor)])
            host = _header(scope, b"host") or "localhost"
            headers.append((b"link", f'<http://{host}{scope["path"]}?{query}>; rel="next"'.encode()))
        body = {
            "data": [_task_json(row) for row in page],
            "meta": {"next_cursor": next_cursor, "limit": limit, "total": None},
        }
        return 200, _dumps(body), headers

    def _list_query(self, owner: str, params: list[tuple[str, str]]) -> tuple[str, list[Any], int]:
        """The API's listing statement, for the default order: the same conditions in the same order."""
        single = dict(params)
        if single.get("sort", "-created_at") not in ("-created_at", "-created"):
            raise Problem(422, "invalid_sort", "The baseline sorts by -created_at only.")
        limit = int(single.get("limit", "20"))
        if not 1 <= limit <= 100:
            raise Problem(422, "invalid_limit", "`limit` is between 1 and 100.")
        conditions, args = ["user_id = $1"], list[object]([owner])

        def arg(value: object) -> str:
            args.append(value)
            return f"${len(args)}"

        status = single.get("status", "all")
        if status != "all":
            conditions.append("completed IS true" if status == "completed" else "completed IS false")
        if priorities := sorted({_PRIORITY_BY_LABEL[v] for k, v in params if k == "priority"}):
            conditions.append(f"priority IN ({', '.join(arg(p) for p in priorities)})")
        if tags := list(dict.fromkeys(_normalise_tag(v) for k, v in params if k == "tag")):
            conditions.append(f"tags @> {arg(tags)}")
        if search := single.get("q", "").strip():
            pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            conditions.append(
                f"(title ILIKE {arg(pattern)} ESCAPE '\\' OR description ILIKE {arg(pattern)} ESCAPE '\\')"
            )
        if cursor := single.get("cursor"):
            created_at, task_id = self._cursors.decode(cursor)
            conditions.append(f"(created_at, id) < ({arg(created_at)}, {arg(task_id)})")
        where = " AND ".join(conditions)
        order = f"ORDER BY created_at DESC, id DESC LIMIT {arg(limit + 1)}"
        sql = f"SELECT {_COLUMNS} FROM tasks WHERE {where} {order}"  # noqa: S608 - placeholders only
        return sql, args, limit

    async def _get(self, owner: str, task_id: int, if_none_match: str | None) -> tuple[int, bytes, Headers]:
        row = await self.pool.fetchrow(_GET_SQL, task_id, owner)
        if row is None:
            raise Problem(404, "task_not_found", f"Task {task_id} was not found.")
        etag = f'"{row["version"]}"'.encode()
        if if_none_match is not None and if_none_match.strip() in ("*", etag.decode()):
            return 304, b"", [(b"etag", etag)]
        return 200, _dumps(_task_json(row)), [(b"etag", etag)]

    async def _create(self, owner: str, body: bytes) -> tuple[int, bytes, Headers]:
        draft = _draft(body)
        now = datetime.now(UTC)
        async with self.pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                _INSERT_SQL,
                owner,
                now if draft["completed"] else None,
                now,
                now,
                draft["title"],
                draft["description"],
                draft["completed"],
                draft["priority"],
                draft["tags"],
                draft["due_at"],
            )
        if row is None:  # pragma: no cover - INSERT ... RETURNING returns the row
            raise Problem(500, "internal_error", "The insert returned nothing.")
        headers = [(b"location", f"/api/{owner}/tasks/{row['id']}".encode()), (b"etag", f'"{row["version"]}"'.encode())]
        return 201, _dumps(_task_json(row)), headers

    async def _toggle(self, owner: str, task_id: int, body: bytes) -> tuple[int, bytes, Headers]:
        wanted = _completion(body)
        for _ in range(_WRITE_ATTEMPTS):
            async with self.pool.acquire() as connection, connection.transaction():
                task = await connection.fetchrow(_GET_SQL, task_id, owner)
                if task is None:
                    raise Problem(404, "task_not_found", f"Task {task_id} was not found.")
                completed = (not task["completed"]) if wanted is None else wanted
                if completed == task["completed"]:
                    return 200, _dumps(_task_json(task)), [(b"etag", f'"{task["version"]}"'.encode())]
                now = datetime.now(UTC)
                saved = await connection.fetchrow(
                    _SAVE_SQL,
                    task_id,
                    owner,
                    task["version"],
                    now if completed else None,
                    now,
                    task["title"],
                    task["description"],
                    completed,
                    task["priority"],
                    task["tags"],
                    task["due_at"],
                )
            if saved is not None:
                return 200, _dumps(_task_json(saved)), [(b"etag", f'"{saved["version"]}"'.encode())]
        raise Problem(503, "service_unavailable", "The task is changing too fast; try again.")

    # Login

    async def _login(self, scope: Scope, body: bytes) -> tuple[int, bytes, Headers]:
        try:
            data = orjson.loads(body)
            email, password = data["email"].strip().lower(), data["password"]
        except (orjson.JSONDecodeError, TypeError, KeyError, AttributeError) as error:
            raise Problem(422, "validation_failed", "The body does not match LogInRequest.") from error
        config = self._config
        account_key, address_key = f"login:account:{email}", f"login:address:{scope['client'][0]}"
        async with self.pool.acquire() as connection, connection.transaction():
            waits = [
                await connection.fetchrow(_ACQUIRE_SQL, account_key, config.login_window),
                await connection.fetchrow(_ACQUIRE_SQL, address_key, config.login_window),
            ]
            user = await connection.fetchrow(_USER_BY_EMAIL_SQL, email)
        limits = (config.login_per_account, config.login_per_address)
        if any(row is not None and row[0] > limit for row, limit in zip(waits, limits, strict=True)):
            raise Problem(429, "rate_limited", "Too many attempts; try again later.")
        stored = user["password_hash"].encode() if user is not None and user["password_hash"] else self._dummy_hash
        if not await self._check_password(password, stored) or user is None:
            raise Problem(401, "invalid_credentials", "The e-mail address or password is incorrect.")
        now = datetime.now(UTC)
        refresh, family = secrets.token_urlsafe(32), uuid.uuid4().hex
        expires_at = now + config.refresh_lifetime
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute(_RESET_SQL, account_key)
            await connection.execute(_RELEASE_SQL, address_key)
            await connection.execute(
                _ADD_REFRESH_SQL, hashlib.sha256(refresh.encode()).hexdigest(), family, user["id"], now, expires_at
            )
        session = {
            "access_token": self._issue(user["id"], family),
            "token_type": "bearer",
            "expires_in": config.token_lifetime_s,
            "user": {"id": user["id"], "email": user["email"], "name": user["name"], "created_at": user["created_at"]},
            "refresh_token": refresh,
        }
        secure = "; secure" if config.production else ""
        cookie = (
            f"refresh_token={refresh}; expires={format_datetime(expires_at, usegmt=True)}; HttpOnly; "
            f"Path=/api/auth; SameSite=lax{secure}"
        )
        return 200, _dumps(session), [(b"set-cookie", cookie.encode())]

    async def _check_password(self, password: str, stored: bytes) -> bool:
        prehashed = base64.b64encode(hmac.new(self._config.pepper, password.encode(), hashlib.sha384).digest())
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._bcrypt, bcrypt.checkpw, prehashed, stored)
        except ValueError:
            return False

    def _issue(self, user_id: str, session_id: str) -> str:
        now = int(time.time())
        claims = {
            "sub": user_id,
            "sid": session_id,
            "iat": now,
            "exp": now + self._config.token_lifetime_s,
            "iss": self._config.issuer,
            "aud": self._config.audience,
            "jti": uuid.uuid4().hex,
            "type": "access",
        }
        return jwt.encode(claims, self._config.secret_key, algorithm="HS256")


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
    return Baseline(Config.from_environment())


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Serve the benchmark's bare-ASGI baseline with uvicorn.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    uvicorn.run(
        "scripts.bench_baseline:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
