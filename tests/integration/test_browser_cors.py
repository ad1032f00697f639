"""CORS and the refresh cookie in a real browser: Debian's headless Chromium, driven by playwright-core
(tests/integration/browser/run.mjs), loads a small SPA page from another origin than the API and runs
the SPA flow against a real uvicorn server on a real PostgreSQL; the same page from an origin not in
CORS_ORIGINS is refused by the browser. The preflight and response headers are also checked with httpx.

Host names: the page is http://app.todo.test:<port> and the API http://api.todo.test:<port> (the driver
maps *.test to 127.0.0.1 inside the browser). They are cross-origin but SAME-SITE (one registrable
domain, todo.test), which is what the SameSite=lax refresh cookie needs, as in production
(app.example.com and api.example.com). `localhost` and `127.0.0.1` would not do: they are different
*sites* (a site is the scheme plus the registrable domain, and an IP address or `localhost` is its own
site), so Chromium neither stores the Lax cookie from the cross-site fetch's Set-Cookie nor sends it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from pydantic import ValidationError

from tests.integration.conftest import TEST_SECRET, make_settings
from todo_api.config import Settings
from todo_api.main import create_app

BROWSER_DIR = Path(__file__).resolve().parent / "browser"
CHROMIUM = Path("/usr/bin/chromium")
SPA_HOST = "app.todo.test"
API_HOST = "api.todo.test"
LOOPBACK = "127.0.0.1"
API_START_TIMEOUT_S = 60.0
DRIVER_TIMEOUT_S = 120.0
SPA_FILES = {"/": "spa.html", "/spa.html": "spa.html", "/spa.js": "spa.js"}
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
PREFLIGHT_HEADERS = "authorization, content-type, if-match, idempotency-key"


@dataclass(frozen=True, slots=True)
class Spa:
    allowed_origin: str
    refused_origin: str


@dataclass(frozen=True, slots=True)
class Api:
    browser_url: str  # as the page calls it: same site as the SPA, another origin
    direct_url: str  # for httpx from the test process


# --- prerequisites --------------------------------------------------------------------------------


def _node() -> str:
    """Node.js, or a loud skip naming what to install; a missing node_modules is a failure."""
    node = shutil.which("node")
    missing = []
    if node is None:
        missing.append("Node.js (`apt-get install -y nodejs npm`)")
    if not CHROMIUM.exists():
        missing.append(f"Debian's Chromium at {CHROMIUM} (`apt-get update && apt-get install -y chromium`)")
    if node is None or missing:
        pytest.skip(
            "!!! THE REAL-BROWSER CORS TEST DID NOT RUN: missing "
            + " and ".join(missing)
            + "; then run `npm ci` in tests/integration/browser. Browser downloads are not used "
            "(no `npx playwright install`): the test drives the system Chromium."
        )
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.fail(
            f"{BROWSER_DIR / 'node_modules'} is missing: run `npm ci` in tests/integration/browser "
            "(`make node-deps` does it once tests/integration/browser is in the Makefile's NODE_DIRS)"
        )
    return node


# --- servers --------------------------------------------------------------------------------------


class _SpaFiles(BaseHTTPRequestHandler):
    """Serves spa.html and spa.js only: the SPA's own origin."""

    def do_GET(self) -> None:
        name = SPA_FILES.get(self.path.split("?", 1)[0])
        if name is None:
            self.send_error(404)
            return
        body = (BROWSER_DIR / name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPES[Path(name).suffix])
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def spa() -> Iterator[Spa]:
    """The page from two origins: one in CORS_ORIGINS, one not (same host, another port)."""
    servers = [ThreadingHTTPServer((LOOPBACK, 0), _SpaFiles) for _ in range(2)]
    threads = [threading.Thread(target=server.serve_forever, daemon=True) for server in servers]
    for thread in threads:
        thread.start()
    try:
        allowed, refused = (f"http://{SPA_HOST}:{server.server_address[1]}" for server in servers)
        yield Spa(allowed_origin=allowed, refused_origin=refused)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[Any], *, group: bool = False) -> None:
    """SIGTERM (the whole process group when `group`), then SIGKILL after 10 s."""
    if process.poll() is None:
        if group:
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            if group:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
            process.wait()
    elif group:
        # The leader is gone; a browser it started may not be.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def _tail(stream: IO[str]) -> str:
    stream.seek(0)
    return stream.read()[-4000:]


def _api_env(database_url: str, cors_origin: str) -> dict[str, str]:
    # Nothing from the calling environment may change these settings (e.g. ENVIRONMENT=production).
    ours = {name.upper() for name in Settings.model_fields}
    env = {key: value for key, value in os.environ.items() if key.upper() not in ours}
    env.update(
        DATABASE_URL=database_url,
        SECRET_KEY=TEST_SECRET,
        CORS_ORIGINS=cors_origin,
        BCRYPT_COST="4",
        LOG_LEVEL="WARNING",
        THROTTLE_SIGNUP_PER_ADDRESS="10000",
        THROTTLE_LOGIN_PER_ADDRESS="10000",
    )
    return env


@pytest.fixture(scope="module")
def api(database_url: str, spa: Spa) -> Iterator[Api]:
    """The API as a real uvicorn server (a subprocess), allowing only the SPA's first origin."""
    port = _free_port()
    command = [
        sys.executable, "-m", "uvicorn", "todo_api.main:create_app", "--factory",
        "--host", LOOPBACK, "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    direct_url = f"http://{LOOPBACK}:{port}"
    # cwd: an empty directory, so a developer's .env cannot change the settings either.
    with (
        tempfile.TemporaryDirectory(prefix="todo-api-cors-") as cwd,
        tempfile.TemporaryFile(mode="w+") as output,
    ):
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=_api_env(database_url, spa.allowed_origin),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + API_START_TIMEOUT_S
            while True:
                if process.poll() is not None:
                    pytest.fail(f"uvicorn exited with {process.returncode} before /healthz answered:\n{_tail(output)}")
                try:
                    if httpx.get(f"{direct_url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"uvicorn did not answer /healthz within {API_START_TIMEOUT_S} s:\n{_tail(output)}")
                time.sleep(0.1)
            yield Api(browser_url=f"http://{API_HOST}:{port}", direct_url=direct_url)
        finally:
            _stop(process)


# --- the browser ----------------------------------------------------------------------------------


def _run_spa(spa_url: str, api_url: str) -> dict[str, Any]:
    """`node run.mjs` in its own process group (so Chromium goes with it); its JSON line."""
    node = _node()
    with tempfile.TemporaryFile(mode="w+") as stderr:
        process = subprocess.Popen(
            [node, "run.mjs", spa_url, api_url],
            cwd=BROWSER_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            start_new_session=True,
        )
        try:
            assert process.stdout is not None
            readable, _, _ = select.select([process.stdout], [], [], DRIVER_TIMEOUT_S)
            line = process.stdout.readline() if readable else ""
            if not line:
                _stop(process, group=True)
                pytest.fail(f"run.mjs printed nothing (exit code {process.returncode}):\n{_tail(stderr)}")
            process.wait(timeout=30)
            if process.returncode != 0:
                pytest.fail(f"run.mjs exited with {process.returncode}:\n{_tail(stderr)}")
            result: dict[str, Any] = json.loads(line)
            print(f"run.mjs {spa_url} {api_url}:\n{line}")
            return result
        finally:
            _stop(process, group=True)
            if process.stdout is not None:
                process.stdout.close()


def _refresh_cookie(step: dict[str, Any]) -> dict[str, Any]:
    jar: list[dict[str, Any]] = step["jar"]
    assert len(jar) == 1, jar
    return jar[0]


def test_spa_flow_from_an_allowed_origin_works_in_a_real_browser(spa: Spa, api: Api) -> None:
    result = _run_spa(f"{spa.allowed_origin}/spa.html", api.browser_url)
    shown = json.dumps(result, indent=1)
    steps = result["steps"]

    assert "stopped_at" not in result, shown
    assert (result["origin"], result["failed_requests"], result["page_errors"]) == (spa.allowed_origin, [], []), shown
    assert not [message for message in result["console_errors"] if "CORS" in message], shown
    assert steps["healthz"] == {"status": 200, "body": {"status": "ok"}}, shown

    signup = steps["signup"]
    assert (signup["status"], signup["has_access_token"]) == (201, True), shown
    assert signup["refresh_cookie_visible_to_js"] is False, shown
    cookie = _refresh_cookie(signup)
    assert {k: cookie[k] for k in ("domain", "path", "httpOnly", "secure", "sameSite")} == {
        "domain": API_HOST,
        "path": "/api/auth",
        "httpOnly": True,
        "secure": False,  # development over plain http; production adds Secure
        "sameSite": "Lax",
    }, shown

    create = steps["create"]
    assert create["status"] == 201, shown
    assert create["etag"] == '"1"', f"ETag is not exposed to the page: {shown}"
    assert re.fullmatch(r"[A-Za-z0-9._:\-]{8,128}", create["request_id"] or ""), f"X-Request-ID not exposed: {shown}"
    assert re.fullmatch(rf"/api/[^/]+/tasks/{create['task_id']}", str(create["location"])), shown
    assert create["unexposed_x_frame_options"] is None, f"the browser exposes every header?: {shown}"

    assert steps["list"] == {
        "expected": True,
        "status": 200,
        "titles": ["Buy milk from the SPA"],
        "request_id_echoed": True,
    }, shown

    toggle = steps["toggle"]
    assert (toggle["status"], toggle["completed"], toggle["etag"]) == (200, True, '"2"'), shown
    assert (toggle["stale_status"], toggle["stale_code"], toggle["stale_current_etag"]) == (
        412,
        "precondition_failed",
        '"2"',
    ), shown

    refresh = steps["refresh"]
    assert (refresh["status"], refresh["has_access_token"], refresh["new_access_token"]) == (200, True, True), shown
    assert (refresh["me_status"], refresh["refresh_cookie_visible_to_js"]) == (200, False), shown
    rotated = _refresh_cookie(refresh)
    assert rotated["value_sha256"] != cookie["value_sha256"], f"the refresh cookie was not rotated: {shown}"

    assert (steps["logout"]["status"], steps["logout"]["jar"]) == (204, []), shown
    assert (steps["refresh_after_logout"]["status"], steps["refresh_after_logout"]["code"]) == (
        401,
        "missing_refresh_token",
    ), shown


def test_same_page_from_an_origin_not_on_the_list_is_refused_by_the_browser(spa: Spa, api: Api) -> None:
    result = _run_spa(f"{spa.refused_origin}/spa.html", api.browser_url)
    shown = json.dumps(result, indent=1)
    steps = result["steps"]

    assert result["origin"] == spa.refused_origin, shown
    # A simple GET is sent without a preflight; the answer lacks Access-Control-Allow-Origin for this
    # origin, so fetch rejects and the page never sees the status or the body.
    assert steps["healthz"] == {"error": {"name": "TypeError", "message": "Failed to fetch"}}, shown
    # The signup's preflight is refused, so the POST itself is never sent and nothing else runs.
    assert steps["signup"] == {"error": {"name": "TypeError", "message": "Failed to fetch"}}, shown
    assert (result["stopped_at"], set(steps)) == ("signup", {"healthz", "signup"}), shown
    blocked = [message for message in result["console_errors"] if "blocked by CORS policy" in message]
    assert len(blocked) == 2, shown
    healthz, signup = blocked
    prefix = "Access to fetch at '{}' from origin '" + spa.refused_origin + "' has been blocked by CORS policy: "
    assert healthz.startswith(prefix.format(f"{api.browser_url}/healthz")), shown
    assert "No 'Access-Control-Allow-Origin' header" in healthz, shown
    assert signup.startswith(prefix.format(f"{api.browser_url}/api/auth/signup")), shown
    assert "Response to preflight request doesn't pass access control check" in signup, shown
    # The account was never created: the browser did not send the POST.
    response = httpx.post(
        f"{api.direct_url}/api/auth/login",
        json={"email": result["email"], "password": "irrelevant-but-long-enough-1"},
        timeout=10,
    )
    assert (response.status_code, response.json()["code"]) == (401, "invalid_credentials"), response.text


# --- the headers, without a browser ---------------------------------------------------------------


def test_preflight_from_the_allowed_origin_grants_the_spas_methods_and_headers(spa: Spa, api: Api) -> None:
    response = httpx.options(
        f"{api.direct_url}/api/me/tasks/1/complete",
        headers={
            "Origin": spa.allowed_origin,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": PREFLIGHT_HEADERS,
        },
        timeout=10,
    )

    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == spa.allowed_origin
    assert response.headers["access-control-allow-credentials"] == "true"
    methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
    assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= methods
    allowed = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {h.strip() for h in PREFLIGHT_HEADERS.split(",")} | {"x-request-id", "if-none-match"} <= allowed
    assert "origin" in response.headers["vary"].lower()
    assert int(response.headers["access-control-max-age"]) > 0


def test_preflight_from_an_origin_not_on_the_list_gets_no_allow_origin(spa: Spa, api: Api) -> None:
    for origin in (spa.refused_origin, "https://evil.example", "null"):
        response = httpx.options(
            f"{api.direct_url}/api/me/tasks/1/complete",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": PREFLIGHT_HEADERS,
            },
            timeout=10,
        )

        assert response.status_code == 400, (origin, response.text)
        assert "access-control-allow-origin" not in response.headers, (origin, response.headers)


def test_responses_expose_request_id_and_etag_to_the_allowed_origin_only(spa: Spa, api: Api) -> None:
    allowed = httpx.get(f"{api.direct_url}/healthz", headers={"Origin": spa.allowed_origin}, timeout=10)
    refused = httpx.get(f"{api.direct_url}/healthz", headers={"Origin": spa.refused_origin}, timeout=10)

    assert allowed.headers["access-control-allow-origin"] == spa.allowed_origin
    assert allowed.headers["access-control-allow-credentials"] == "true"
    exposed = {h.strip().lower() for h in allowed.headers["access-control-expose-headers"].split(",")}
    assert {"x-request-id", "etag", "location", "link", "retry-after"} <= exposed
    assert "origin" in allowed.headers["vary"].lower()
    assert refused.status_code == 200  # answered, but without the header a browser would let the page read
    assert "access-control-allow-origin" not in refused.headers
    assert "origin" in refused.headers["vary"].lower()


def test_a_wildcard_origin_with_credentials_is_refused_at_start_up() -> None:
    """Never "any origin, with cookies": CORS_ORIGINS=* with credentials stops start-up everywhere."""
    with pytest.raises(ValidationError, match="CORS_ORIGINS"):
        make_settings(cors_origins=["*"])
    with pytest.raises(ValidationError, match="CORS_ORIGINS"):
        make_settings(cors_origins=["*"], environment="development")


async def test_a_wildcard_origin_without_credentials_grants_no_credentials(database_url: str) -> None:
    app = create_app(make_settings(cors_origins=["*"], cors_allow_credentials=False), database_url=database_url)
    origin = "https://evil.example"
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http,
    ):
        preflight = await http.options(
            "/api/auth/refresh", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
        )
    assert preflight.headers.get("access-control-allow-origin") == "*"
    assert "access-control-allow-credentials" not in preflight.headers
