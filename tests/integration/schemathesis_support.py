"""Helpers for test_schemathesis.py: sign-ups over Schemathesis' own ASGI client, and counters for the report."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, cast

import asyncpg
import schemathesis
from schemathesis.python import asgi
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.integration.database import asyncpg_dsn
from todo_api.adapters.sql.tables import metadata, users

PASSWORD = "correct horse battery staple"
ANONYMOUS = "anonymous"
OTHER = "other credentials"


@dataclass
class RequestCounter:
    """An ASGI wrapper around the app that counts every request it gets, generated or probe, by identity
    (the users' bearer tokens, none, or anything else) and every status it answers."""

    app: ASGIApp | None = None
    identities: dict[str, str] = field(default_factory=dict)
    by_identity: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "set `app` first"
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        authorization = next((value.decode("latin-1") for name, value in headers if name == b"authorization"), None)
        if authorization is None:
            self.by_identity[ANONYMOUS] += 1
        else:
            self.by_identity[self.identities.get(authorization, OTHER)] += 1

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.by_status[message["status"]] += 1
            await send(message)

        await self.app(scope, receive, counting_send)

    def summary(self) -> list[str]:
        identities = ", ".join(f"{name} {count}" for name, count in sorted(self.by_identity.items()))
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(self.by_status.items()))
        return [
            f"{sum(self.by_identity.values())} requests reached the app (with the checks' probes): {identities}",
            f"statuses: {statuses}",
        ]


@dataclass
class CaseCounter:
    """Counts the generated cases sent (not the checks' probes), per operation and per generation mode."""

    per_operation: Counter[str] = field(default_factory=Counter)
    per_mode: Counter[str] = field(default_factory=Counter)
    stateless_ran: bool = False
    stateful_ran: bool = False

    @property
    def total(self) -> int:
        return sum(self.per_operation.values())

    def attach(self, schema: schemathesis.BaseSchema) -> None:
        """Count what `schema` sends (its clones share its hooks); attach once per loaded schema."""

        def after_call(context: schemathesis.HookContext, case: schemathesis.Case[Any], response: Any) -> None:
            self.per_operation[case.operation.label] += 1
            self.per_mode[case.meta.generation.mode.value if case.meta is not None else "unknown"] += 1

        schema.hooks.register_hook_with_name(after_call, "after_call")

    def summary(self) -> list[str]:
        modes = ", ".join(f"{mode} {count}" for mode, count in sorted(self.per_mode.items()))
        lines = [f"{self.total} generated cases sent ({modes})"]
        lines += [f"  {count:5d}  {label}" for label, count in sorted(self.per_operation.items())]
        return lines


def other_users_paths_refused(own: Collection[str]) -> schemathesis.CheckFunction:
    """A check: a request whose `{user_id}` is not the caller's (`me` or their id) never succeeds.

    The built-in object-level check replays one read per run, and takes an object its peer can also
    list for a shared one; this one looks at every response, so a path guard that trusts the path fails.
    """

    def other_users_paths_refused(
        ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
    ) -> bool | None:
        user_id = (case.path_parameters or {}).get("user_id")
        if user_id is not None and str(user_id) not in own and 200 <= response.status_code < 300:
            raise AssertionError(
                f"{case.method} {case.formatted_path} names another user, yet got {response.status_code} "
                f"(expected 403 `not_your_tasks`)"
            )
        return None

    return other_users_paths_refused


@dataclass(frozen=True)
class Account:
    name: str
    user_id: str
    access_token: str


def sign_up(app: RequestCounter, name: str) -> Account:
    """Sign `name` up through the API, on the event loop Schemathesis serves the app from."""
    email = f"{name}-{uuid.uuid4().hex[:12]}@example.com"
    # Schemathesis types ASGI messages as `dict`, Starlette as `MutableMapping`: the same app either way.
    with asgi.get_client(cast(asgi.ASGIApp, app)) as client:
        response = client.post("/api/auth/signup", json={"email": email, "password": PASSWORD, "name": name})
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(name=name, user_id=body["user"]["id"], access_token=body["access_token"])


class ScenarioReset:
    """Brings the database back to "these users, nothing else" (ids restarted) before each stateful scenario.

    Hypothesis replays the start of earlier scenarios to find new ones; it needs each scenario to meet the
    same state, or it reports the difference as flaky data generation. The users' bearer tokens are
    stateless JWTs, so they keep working; everything else (tasks, sessions, throttles, other users) goes.
    """

    def __init__(self, database_url: str, keep_user_ids: Iterable[str]) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._keep = list(keep_user_ids)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection: asyncpg.Connection | None = None

    def __enter__(self) -> ScenarioReset:
        self._loop = asyncio.new_event_loop()  # its own loop, never installed as the thread's current one
        try:
            self._connection = self._loop.run_until_complete(asyncpg.connect(self._dsn))
            # An app connection left inside a transaction would make TRUNCATE wait forever: fail instead.
            self._loop.run_until_complete(self._connection.execute("SET lock_timeout = '10s'"))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        loop, connection = self._loop, self._connection
        self._loop = self._connection = None
        if loop is None:
            return
        try:
            if connection is not None:
                loop.run_until_complete(connection.close())
        finally:
            loop.close()

    def __call__(self) -> None:
        loop, connection = self._loop, self._connection
        if loop is None or connection is None:
            raise RuntimeError("use ScenarioReset as a context manager")
        others = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables if table is not users)

        async def reset() -> None:
            async with connection.transaction():
                await connection.execute("DELETE FROM users WHERE id <> ALL($1::text[])", self._keep)
                await connection.execute(f"TRUNCATE {others} RESTART IDENTITY")

        loop.run_until_complete(reset())
