"""Every route the app serves needs a bearer token, unless it is listed here as public; every route under a
`{user_id}` refuses another user's id; `me` and the caller's own id work. Routes are read from the app,
so a new one is covered the day it is added."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.routing import BaseRoute, Route

from tests.unit.http.backend import FakeBackend
from tests.unit.http.conftest import ADA, ADA_PASSWORD, ADA_TOKEN, BOB, bearer
from tests.unit.http.problem_support import assert_problem
from todo_api.adapters.http.app import HttpOptions, create_http_app
from todo_api.domain.recurrence import Recurrence, Reminder
from todo_api.domain.sessions import Session
from todo_api.domain.tasks import TaskChanges

PUBLIC = {
    ("POST", "/api/auth/signup"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/token"),
    ("POST", "/api/auth/refresh"),
    ("POST", "/api/auth/logout"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),  # behind METRICS_TOKEN when one is set, see test_metrics_token_guards_metrics
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
}

# A request each protected operation accepts, so "works for its owner" means a 2xx.
VALID_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/{user_id}/tasks"): {"title": "Buy oat milk"},
    ("PUT", "/api/{user_id}/tasks/{task_id}"): {"title": "Buy oat milk"},
    ("PATCH", "/api/{user_id}/tasks/{task_id}"): {"title": "Buy oat milk"},
    ("PATCH", "/api/{user_id}/tasks/{task_id}/complete"): {},
    ("POST", "/api/{user_id}/tasks/{task_id}/move"): {},
    ("POST", "/api/{user_id}/tasks/{task_id}/reminders/{reminder_id}/snooze"): {"duration": "PT10M"},
    # The owner's task is the backend's first: id 1.
    ("POST", "/api/{user_id}/tasks/bulk"): {"operations": [{"op": "complete", "task_ids": [1]}]},
    ("POST", "/api/{user_id}/lists"): {"name": "Errands"},
    ("PATCH", "/api/{user_id}/lists/{list_id}"): {"name": "Chores"},
    ("POST", "/api/{user_id}/lists/{list_id}/move"): {},
    ("POST", "/api/{user_id}/webhooks"): {"url": "https://hooks.example.com/todo"},
    ("POST", "/api/{user_id}/chat"): {"message": "What is due today?"},
    ("POST", "/api/auth/password"): {"current_password": ADA_PASSWORD, "new_password": "a-brand-new-passphrase"},
    ("PATCH", "/api/auth/me"): {"name": "Ada King"},
    ("DELETE", "/api/auth/me"): {"password": ADA_PASSWORD},
}
SESSION_ID = "0123456789abcdef" * 2  # the owner's other session, which the test starts

# The query a protected operation needs to answer 2xx (clearing needs `status=completed`).
VALID_QUERIES: dict[tuple[str, str], dict[str, str]] = {("DELETE", "/api/{user_id}/tasks"): {"status": "completed"}}


def operations(routes: Sequence[BaseRoute], prefix: str = "") -> list[tuple[str, str]]:
    """(method, path) of every route, also inside included routers (FastAPI keeps those whole)."""
    found = []
    for route in routes:
        included, context = getattr(route, "original_router", None), getattr(route, "include_context", None)
        if included is not None:
            found += operations(included.routes, prefix + (context.prefix if context else ""))
        elif isinstance(route, Route):
            found += [(method, prefix + route.path) for method in sorted(route.methods or ()) if method != "HEAD"]
    return found


def all_operations() -> list[tuple[str, str]]:
    return operations(create_http_app(FakeBackend().use_cases, HttpOptions(cursor_key="k" * 40)).routes)


PROTECTED = [operation for operation in all_operations() if operation not in PUBLIC]
# An event stream never ends by itself and httpx's ASGI transport returns only complete responses:
# its owner's 200 is tested on a live stream (tests/unit/test_stream_use_cases.py, test_events_stream.py).
STREAMING = {("GET", "/api/{user_id}/events")}


def url(path: str, user_id: str, task_id: int, list_id: int = 1) -> str:
    path = path.replace("{user_id}", user_id).replace("{task_id}", str(task_id)).replace("{list_id}", str(list_id))
    path = path.replace("{conversation_id}", "1")  # the owner's first conversation, when the test made one
    path = path.replace("{session_id}", SESSION_ID)
    path = path.replace("{reminder_id}", "1")  # the owner's first reminder, when the test armed one
    if path.endswith("/reminders"):
        return path + "?from=2026-01-01T00:00:00Z&to=2026-12-31T00:00:00Z"
    return path.replace("{webhook_id}", "1")  # the owner's first webhook, when the test made one


def test_the_public_list_names_only_routes_that_exist() -> None:
    assert set(all_operations()) >= PUBLIC


def test_the_task_routes_and_the_account_routes_are_protected() -> None:
    assert len([path for _, path in PROTECTED if path.startswith("/api/{user_id}/tasks")]) == 14  # with skip and snooze
    assert len([path for _, path in PROTECTED if path.startswith("/api/{user_id}/lists")]) == 7
    assert ("GET", "/api/{user_id}/changes") in PROTECTED
    assert ("GET", "/api/{user_id}/reminders") in PROTECTED
    assert {("GET", "/api/{user_id}/summary"), ("GET", "/api/{user_id}/tags")} <= set(PROTECTED)
    assert {("GET", "/api/auth/me"), ("POST", "/api/auth/password")} <= set(PROTECTED)
    account = {("PATCH", "/api/auth/me"), ("DELETE", "/api/auth/me"), ("GET", "/api/auth/me/export")}
    assert account | {("GET", "/api/auth/sessions"), ("DELETE", "/api/auth/sessions/{session_id}")} <= set(PROTECTED)


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_without_a_token_every_protected_route_is_401(
    client: httpx.AsyncClient, backend: FakeBackend, method: str, path: str
) -> None:
    task = await backend.add_task(ADA)

    response = await client.request(
        method,
        url(path, "me", task.id),
        json=VALID_BODIES.get((method, path)),
        params=VALID_QUERIES.get((method, path)),
    )

    assert_problem(response, 401, "missing_token")
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_with_a_token_of_no_one_every_protected_route_is_401(
    client: httpx.AsyncClient, backend: FakeBackend, method: str, path: str
) -> None:
    task = await backend.add_task(ADA)

    response = await client.request(
        method,
        url(path, "me", task.id),
        json=VALID_BODIES.get((method, path)),
        params=VALID_QUERIES.get((method, path)),
        headers=bearer("forged"),
    )

    assert_problem(response, 401, "invalid_token")


@pytest.mark.parametrize(("method", "path"), [op for op in PROTECTED if "{user_id}" in op[1]])
async def test_another_users_id_in_the_path_is_403_on_every_route(
    client: httpx.AsyncClient, backend: FakeBackend, method: str, path: str
) -> None:
    bobs = await backend.add_task(BOB)
    before = backend.store.snapshot()

    response = await client.request(
        method,
        url(path, BOB, bobs.id),
        json=VALID_BODIES.get((method, path)),
        params=VALID_QUERIES.get((method, path)),
        headers=bearer(ADA_TOKEN),
    )

    assert_problem(response, 403, "not_your_tasks")
    assert backend.store == before


@pytest.mark.parametrize("owner", ["me", ADA])
@pytest.mark.parametrize(("method", "path"), [op for op in PROTECTED if op not in STREAMING])
async def test_the_owner_reaches_every_protected_route_as_me_or_by_id(
    client: httpx.AsyncClient, backend: FakeBackend, method: str, path: str, owner: str
) -> None:
    task = await backend.add_task(ADA)
    empty = await backend.use_cases.create_list.execute(ADA, "Someday")  # the Inbox cannot be deleted
    await backend.use_cases.create_webhook.execute(ADA, "https://hooks.example.com/todo")
    if path.endswith(("/skip", "/snooze")):  # only a series skips; only an armed reminder snoozes
        series = TaskChanges(
            due_at=datetime(2030, 1, 1, 9, tzinfo=UTC),
            recurrence=Recurrence("FREQ=DAILY", "Europe/Berlin"),
            reminders=(Reminder(before=timedelta(minutes=15)),),
        )
        await backend.use_cases.update_task.execute(ADA, task.id, series)
    await (await backend.use_cases.chat.start(ADA, None, "Hello")).finish()  # conversation 1
    now = backend.clock.now()
    backend.store.sessions[SESSION_ID] = Session(SESSION_ID, ADA, "phone", now, now, now + timedelta(days=1))
    if path.endswith("/restore"):  # only what was deleted can be restored
        await backend.use_cases.delete_task.execute(ADA, task.id)
        await backend.use_cases.delete_list.execute(ADA, empty.id)

    response = await client.request(
        method,
        url(path, owner, task.id, empty.id),
        json=VALID_BODIES.get((method, path)),
        params=VALID_QUERIES.get((method, path)),
        headers=bearer(ADA_TOKEN),
    )

    assert 200 <= response.status_code < 300, response.text


async def test_metrics_token_guards_metrics(backend: FakeBackend) -> None:
    app = create_http_app(backend.use_cases, HttpOptions(cursor_key="k" * 40, metrics_token="scrape-me"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        assert_problem(await http.get("/metrics"), 401, "invalid_token")
        not_ascii = {b"authorization": "Bearer scrape-m\u00e9".encode("latin-1")}
        assert_problem(await http.get("/metrics", headers=not_ascii), 401, "invalid_token")
        assert (await http.get("/metrics", headers=bearer("scrape-me"))).status_code == 200
