"""openapi.json at the repository root is the app's document, byte for byte, so a frontend team can
generate its client from a clone without running the backend. `make openapi` rewrites it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "openapi.json"


def current_document() -> str:
    finished = subprocess.run(
        [sys.executable, "-m", "todo_api", "openapi"], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return finished.stdout


@pytest.fixture(scope="module")
def current() -> str:
    return current_document()


def test_the_committed_openapi_json_is_what_the_app_serves(current: str) -> None:
    assert COMMITTED.exists(), "openapi.json is missing: run `make openapi`"
    assert COMMITTED.read_text(encoding="utf-8") == current, "openapi.json is stale: run `make openapi` and commit it"


def test_the_document_is_written_deterministically(current: str) -> None:
    first, second = current, current_document()

    assert first == second
    assert first.endswith("}\n")
    assert first == json.dumps(json.loads(first), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
