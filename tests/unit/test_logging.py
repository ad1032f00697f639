"""Redaction: nothing that looks like a password, token or Authorization header reaches a log line."""

from __future__ import annotations

import pytest

from todo_api.logging import REDACTED, redact

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLWJ5dGVz"
BCRYPT = "$2b$12$" + "a" * 53


@pytest.mark.parametrize(
    "key", ["password", "new_password", "refresh_token", "authorization", "Cookie", "password_hash"]
)
def test_secret_looking_keys_are_masked(key: str) -> None:
    assert redact(None, "info", {"event": "x", key: "hunter2"})[key] == REDACTED


@pytest.mark.parametrize(
    "text",
    [f"Authorization: Bearer {JWT}", f"token={JWT}", f"got {JWT} from client", f"hash {BCRYPT}", "password=hunter2"],
)
def test_secret_looking_text_is_masked_inside_values(text: str) -> None:
    out = redact(None, "info", {"event": "x", "detail": text})["detail"]
    assert JWT not in out
    assert BCRYPT not in out
    assert "hunter2" not in out
    assert REDACTED in out


def test_ordinary_values_pass_untouched() -> None:
    event = {"event": "request", "method": "GET", "path": "/api/me/tasks", "status": 200}
    assert redact(None, "info", dict(event)) == event


def test_passwords_inside_urls_are_masked() -> None:
    out = redact(None, "error", {"event": "x", "exception": "connect postgres://app:hunter2@db:5432/todo"})
    assert out["exception"] == f"connect postgres://app:{REDACTED}@db:5432/todo"
