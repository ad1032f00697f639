"""Shared helpers for the task API tests: a signed-up user with a bearer header, and task creation.

Other test modules import these; keep the API stable.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

PASSWORD = "correct horse battery staple"
PROBLEM_MEDIA_TYPE = "application/problem+json"


@dataclass(frozen=True)
class User:
    id: str
    headers: dict[str, str] = field(default_factory=dict)


async def sign_up(client: httpx.AsyncClient, email: str | None = None) -> User:
    """POST /api/auth/signup and return the new user's id with an `Authorization: Bearer` header."""
    address = email or f"user-{uuid.uuid4().hex[:12]}@example.com"
    response = await client.post("/api/auth/signup", json={"email": address, "password": PASSWORD})
    assert response.status_code == 201, response.text
    body = response.json()
    return User(id=body["user"]["id"], headers={"Authorization": f"Bearer {body['access_token']}"})


def tasks_url(user: User | str = "me") -> str:
    """The collection path; `user` is a User (its id), a raw path segment, or `me`."""
    segment = user.id if isinstance(user, User) else user
    return f"/api/{segment}/tasks"


def task_url(task_id: int | str, user: User | str = "me") -> str:
    return f"{tasks_url(user)}/{task_id}"


async def create_task(client: httpx.AsyncClient, user: User, **fields: Any) -> dict[str, Any]:
    """POST /api/me/tasks as `user` (title defaults to "A task"), assert 201, return the body."""
    body: dict[str, Any] = {"title": "A task", **fields}
    response = await client.post(tasks_url(), json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """An RFC 9457 problem+json error with this status (and `code`, when given); returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    return body
