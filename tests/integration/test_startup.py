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
    clean = {k: v for k, v in os.environ.items() if k not in SAFE}
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
