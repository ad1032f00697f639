"""What every error response must look like: RFC 9457 problem+json with our code and request id."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import httpx

PROBLEM = "application/problem+json"
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "code", "request_id"}


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_KEYS, body
    assert body["status"] == status
    assert body["title"] == HTTPStatus(status).phrase
    assert body["type"] == f"https://todo-api.dev/problems/{body['code']}"
    assert body["instance"] == response.request.url.path
    assert body["request_id"] == response.headers["x-request-id"]
    if code is not None:
        assert body["code"] == code, body
    return body
