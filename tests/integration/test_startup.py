"""`python -m todo_api` refuses unsafe production settings with a one-line reason."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SAFE = {
    "ENVIRONMENT": "production",
    "DATABASE_URL": "postgresql://app:pw@db.example.com/todo",
    "SECRET_KEY": "k" * 48,
    "PASSWORD_PEPPER": "p" * 48,
    "CORS_ORIGINS": "https://app.example.com",
}


def start(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SAFE and k not in {"WEB_CONCURRENCY", "PORT"}}
    return subprocess.run(
        [sys.executable, "-m", "todo_api"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"DATABASE_URL": ""}, "DATABASE_URL"),
        ({"PASSWORD_PEPPER": ""}, "PASSWORD_PEPPER"),
        ({"CORS_ORIGINS": "*"}, "CORS_ORIGINS"),
        ({"WEB_CONCURRENCY": "two"}, "WEB_CONCURRENCY: a whole number is expected (got 'two')"),
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY"),
        ({"PORT": "99999"}, "PORT"),
        ({"ACCESS_LOG": "sometimes"}, "ACCESS_LOG: true or false is expected (got 'sometimes')"),
        ({"DB_POOL_TIMEOUT_S": "soon"}, "DB_POOL_TIMEOUT_S: a number is expected (got 'soon')"),
    ],
)
def test_production_refuses_unsafe_settings_with_one_line(override: dict[str, str], reason: str) -> None:
    env = {**SAFE, **override}
    result = start(**{k: v for k, v in env.items() if v})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("todo-api: refusing to start:")
    assert reason in lines[0]
    assert "Traceback" not in result.stderr
