"""clients/typescript's tests (node's test runner) against a live server on the test database: the
typed client, refresh on 401, If-Match from ETags, cursors as async iterators, problems as exceptions."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.integration.conftest import TEST_SECRET
from tests.integration.live_server import ROOT, free_port, live_server, server_env

CLIENT_DIR = ROOT / "clients" / "typescript"
TIMEOUT_S = 300


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("Node.js is missing: clients/typescript's tests did NOT run. Install nodejs and npm.")
    if not (CLIENT_DIR / "node_modules" / ".bin" / "tsc").exists():
        pytest.fail("clients/typescript/node_modules is missing: run `make node-deps` (npm ci there)")
    return npm


def test_the_typescript_client_passes_its_tests_against_a_live_server(database_url: str) -> None:
    npm = _npm()
    workdir = Path(tempfile.mkdtemp(prefix="todo-api-ts-client-"))
    env = server_env(
        DATABASE_URL=database_url,
        SECRET_KEY=TEST_SECRET,
        PORT=str(free_port()),
        BCRYPT_COST="4",
        RUN_WORKERS="false",
        THROTTLE_SIGNUP_PER_ADDRESS="10000",
    )
    try:
        with live_server(env, log_path=workdir / "server.log") as server:
            ran = subprocess.run(
                [npm, "test", "--silent"],
                cwd=CLIENT_DIR,
                env={**os.environ, "TODO_API_URL": server.base_url, "NO_COLOR": "1"},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=TIMEOUT_S,
                check=False,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    assert ran.returncode == 0, ran.stdout
    counts = dict(re.findall(r"^\S*\s*(tests|pass|fail|skipped|todo) (\d+)$", ran.stdout, re.MULTILINE))
    assert counts.get("fail") == "0", ran.stdout
    assert counts.get("skipped") == counts.get("todo") == "0", ran.stdout  # no test passes by not running
    assert int(counts.get("pass", "0")) >= 7, ran.stdout
