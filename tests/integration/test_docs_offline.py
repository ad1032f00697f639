"""/docs and /redoc work without internet: their scripts come from the Python package installed with
the app, not a CDN. Debian's headless Chromium (tests/integration/browser/docs.mjs) loads both pages
with every request to another host refused, and must see the operations rendered."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from tests.integration.test_browser_cors import BROWSER_DIR, DRIVER_TIMEOUT_S, _node
from tests.unit.http.backend import FakeBackend
from todo_api.adapters.http.app import HttpOptions, create_http_app

LOOPBACK = "127.0.0.1"
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture(scope="module")
def docs_server() -> Iterator[str]:
    """The HTTP app (over in-memory use cases: the pages need no database) on a real socket."""
    app = create_http_app(FakeBackend().use_cases, HttpOptions(cursor_key="k" * 40))
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://{LOOPBACK}:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            pytest.fail("uvicorn did not start within 30 s")
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def rendered(docs_server: str) -> dict[str, Any]:
    node = _node()
    finished = subprocess.run(
        [node, "docs.mjs", docs_server],
        cwd=BROWSER_DIR,
        capture_output=True,
        text=True,
        timeout=DRIVER_TIMEOUT_S,
        check=False,
        start_new_session=True,
    )
    if finished.returncode != 0 or not finished.stdout.strip():
        pytest.fail(f"docs.mjs exited with {finished.returncode}:\n{finished.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(finished.stdout.strip().splitlines()[-1])
    print(json.dumps(result)[:2000])
    return result


def operation_count(base: str) -> int:
    document = httpx.get(f"{base}/openapi.json").json()
    return sum(1 for item in document["paths"].values() for method in item if method != "parameters")


def test_swagger_ui_renders_every_operation_with_no_request_leaving_the_host(
    rendered: dict[str, Any], docs_server: str
) -> None:
    swagger = rendered["swagger"]

    assert (swagger["status"], swagger["rendered"], swagger["page_errors"]) == (200, True, []), swagger
    assert swagger["outside_requests"] == []
    assert len(swagger["operations"]) == operation_count(docs_server)
    assert "/api/{user_id}/tasks" in swagger["operations"]


def test_redoc_renders_the_operations_offline_too(rendered: dict[str, Any], docs_server: str) -> None:
    redoc = rendered["redoc"]

    assert (redoc["status"], redoc["rendered"], redoc["page_errors"]) == (200, True, []), redoc
    # ReDoc's sidebar always asks for its maker's logo, and hides it when it does not load.
    assert set(redoc["outside_requests"]) <= {REDOC_LOGO}
    assert "operation/listTasks" in redoc["operations"]
    assert len(redoc["operations"]) == operation_count(docs_server)


def test_the_pages_name_no_cdn(docs_server: str) -> None:
    for page in ("/docs", "/redoc"):
        html = httpx.get(docs_server + page).text
        assert "cdn.jsdelivr.net" not in html
        assert "fonts.googleapis.com" not in html
        assert "/docs/static/" in html
