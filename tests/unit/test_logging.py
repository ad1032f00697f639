"""Redaction: nothing that looks like a password, token or Authorization header reaches a log line."""

from __future__ import annotations

import json
import re

import pytest
import structlog

from todo_api.logging import REDACTED, log_access, redact

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


# --- the access line: preformatted, same shape, still redacted ------------------------------------


def test_an_access_line_is_one_json_object_with_the_request_fields(json_lines: list[str]) -> None:
    log_access("GET", "/api/me/tasks/42", "203.0.113.7", 200, 1.25, "9f1c2d3e4b5a69788796a5b4c3d2e1f0")

    [record] = [json.loads(line) for line in json_lines]
    timestamp = record.pop("timestamp")
    assert record == {
        "event": "request",
        "method": "GET",
        "path": "/api/me/tasks/42",
        "client": "203.0.113.7",
        "status": 200,
        "duration_ms": 1.25,
        "request_id": "9f1c2d3e4b5a69788796a5b4c3d2e1f0",
        "level": "info",
        "logger": "todo_api.access",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", timestamp)


def test_a_secret_in_a_path_is_masked_in_the_access_line(json_lines: list[str]) -> None:
    log_access("GET", f"/api/me/tasks/{JWT}", None, 404, 0.5, "r" * 32)

    assert JWT not in json_lines[0]
    assert REDACTED in json.loads(json_lines[0])["path"]


def test_other_lines_still_go_through_structlog(json_lines: list[str]) -> None:
    structlog.get_logger("todo_api.test").warning("something", password="hunter2")

    record = json.loads(json_lines[0])
    assert (record["event"], record["password"], record["level"]) == ("something", REDACTED, "warning")
