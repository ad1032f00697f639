"""The logs, as a real server writes them: JSON lines, one per request with its request id, and no
secret in any of them; a 500's traceback goes to the log and nothing of it to the client.

The live part runs `python -m todo_api` (LOG_FORMAT=json, LOG_LEVEL=DEBUG) on the test database,
drives the whole scenario (sign-up, log-in, a wrong log-in, refresh by body and by cookie, the
OAuth2 form, tasks end to end, malformed JSON, a 422, 404s, password change, log-out, expired,
forged and Basic credentials), and reads what it wrote to stdout and stderr. Every secret the
scenario sent or received, and the bcrypt hashes read back from the database, are then looked for
in every line.

The app has no route that fails on purpose, and the scenario provokes no genuine 500, so the 500 is
checked in process, on the same middleware and logging set-up, with a route that crashes carrying
secrets in its exception messages and locals.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import APIRouter, FastAPI
from jose import jwt
from sqlalchemy import make_url

from tests.integration.conftest import make_settings
from tests.integration.database import asyncpg_dsn
from tests.integration.live_server import READINESS_PROBE_ID, free_port, live_server, server_env
from tests.log_support import formatted_log_lines
from todo_api.main import create_app

SECRET_KEY = "logs-test-secret-key-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
PEPPER = "logs-test-pepper-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
PASSWORD = "Purple-Walrus-Sings-At-Dawn-4417"
NEW_PASSWORD = "Quiet-Otter-Paints-Blue-Doors-9023"
WRONG_PASSWORD = "Wrong-Guess-Banana-Trumpet-5561"
UNKNOWN_ACCOUNT_PASSWORD = "Nobody-Has-This-Password-7788"
EMAIL = "logs-scenario@example.com"
CUSTOM_REQUEST_ID = "scenario-create-0001"


@dataclass
class Scenario:
    lines: list[str]
    responses: list[httpx.Response] = field(default_factory=list)
    probe_request_ids: list[str] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)

    def keep(self, label: str, value: str) -> str:
        """Remember a secret; a JWT's signature alone is one too (a log must not carry even that)."""
        assert value, label
        self.secrets[label] = value
        if value.count(".") == 2 and value.startswith("eyJ"):
            self.secrets[f"{label} (signature)"] = value.rsplit(".", 1)[1]
        return value

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


def expect(response: httpx.Response, status: int, code: str | None = None) -> httpx.Response:
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    if code is not None:
        assert response.json()["code"] == code, response.text
    return response


def mint(claims: dict[str, Any], key: str) -> str:
    token: str = jwt.encode(claims, key, algorithm="HS256")
    return token


def access_claims(sub: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "sid": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 900,
        "iss": "todo-api",
        "aud": "todo-api",
        "jti": uuid.uuid4().hex,
        "type": "access",
    }
    return {**claims, **overrides}


async def run_scenario(http: httpx.AsyncClient, seen: Scenario) -> None:
    keep = seen.keep
    keep("password", PASSWORD)
    keep("new password", NEW_PASSWORD)
    keep("wrong password", WRONG_PASSWORD)
    keep("unknown account's password", UNKNOWN_ACCOUNT_PASSWORD)

    def session(response: httpx.Response, label: str) -> tuple[str, str]:
        body = response.json()
        access = keep(f"{label} access token", body["access_token"])
        refresh = keep(f"{label} refresh token", body["refresh_token"])
        cookie = response.cookies.get("refresh_token")
        assert cookie == refresh, "the cookie carries the same refresh token as the body"
        keep(f"{label} Set-Cookie", response.headers["set-cookie"].split(";")[0])
        return access, refresh

    # Accounts and sessions.
    signed_up = expect(await http.post("/api/auth/signup", json={"email": EMAIL, "password": PASSWORD}), 201)
    user_id = signed_up.json()["user"]["id"]
    session(signed_up, "sign-up")
    logged_in = expect(await http.post("/api/auth/login", json={"email": EMAIL, "password": PASSWORD}), 200)
    _, login_refresh = session(logged_in, "log-in")
    expect(
        await http.post("/api/auth/login", json={"email": EMAIL, "password": WRONG_PASSWORD}),
        401,
        "invalid_credentials",
    )
    expect(
        await http.post("/api/auth/login", json={"email": "nobody@example.com", "password": UNKNOWN_ACCOUNT_PASSWORD}),
        401,
        "invalid_credentials",
    )
    form = expect(await http.post("/api/auth/token", data={"username": EMAIL, "password": PASSWORD}), 200)
    keep("OAuth2 form access token", form.json()["access_token"])

    http.cookies.clear()
    by_body = expect(await http.post("/api/auth/refresh", json={"refresh_token": login_refresh}), 200)
    _, body_refresh = session(by_body, "refresh (body)")
    http.cookies.clear()
    by_cookie = expect(await http.post("/api/auth/refresh", headers={"Cookie": f"refresh_token={body_refresh}"}), 200)
    access, cookie_refresh = session(by_cookie, "refresh (cookie)")
    http.cookies.clear()
    expect(await http.post("/api/auth/refresh"), 401, "missing_refresh_token")
    expect(await http.post("/api/auth/refresh", json={"refresh_token": "not-a-token-we-issued"}), 401)

    bearer = keep("Authorization header", f"Bearer {access}")
    auth = {"Authorization": bearer}
    expect(await http.get("/api/auth/me", headers=auth), 200)

    # Tasks, end to end.
    created = expect(
        await http.post(
            "/api/me/tasks",
            json={"title": "Water the plants", "tags": ["home"], "priority": "high"},
            headers={**auth, "X-Request-ID": CUSTOM_REQUEST_ID, "Idempotency-Key": str(uuid.uuid4())},
        ),
        201,
    )
    assert created.headers["x-request-id"] == CUSTOM_REQUEST_ID
    task_id = created.json()["id"]
    second = expect(await http.post("/api/me/tasks", json={"title": "Call mum"}, headers=auth), 201).json()["id"]
    expect(await http.get("/api/me/tasks", params={"sort": "title", "limit": 1}, headers=auth), 200)
    expect(await http.get("/api/me/tasks", params={"q": "plants", "include_total": "true"}, headers=auth), 200)
    got = expect(await http.get(f"/api/me/tasks/{task_id}", headers=auth), 200)
    expect(await http.get(f"/api/me/tasks/{task_id}", headers={**auth, "If-None-Match": got.headers["etag"]}), 304)
    expect(
        await http.patch(
            f"/api/me/tasks/{task_id}",
            json={"description": "the ferns too"},
            headers={**auth, "If-Match": got.headers["etag"]},
        ),
        200,
    )
    expect(
        await http.patch(f"/api/me/tasks/{task_id}", json={"title": "stale"}, headers={**auth, "If-Match": '"1"'}), 412
    )
    expect(await http.patch(f"/api/me/tasks/{task_id}/complete", headers=auth), 200)
    expect(await http.put(f"/api/me/tasks/{second}", json={"title": "Call mum back"}, headers=auth), 200)
    expect(await http.delete(f"/api/me/tasks/{second}", headers=auth), 204)
    expect(await http.get(f"/api/{user_id}/tasks", headers=auth), 200)

    # Failures the client causes.
    expect(
        await http.post(
            "/api/me/tasks", content=b'{"title": "half', headers={**auth, "Content-Type": "application/json"}
        ),
        400,
        "malformed_json",
    )
    expect(await http.post("/api/me/tasks", json={"title": "", "user_id": "x"}, headers=auth), 422)
    expect(await http.get("/api/me/tasks", params={"limit": 101}, headers=auth), 422)
    expect(await http.get(f"/api/me/tasks/{second}", headers=auth), 404, "task_not_found")
    expect(await http.get("/api/no/such/route", headers=auth), 404, "not_found")
    expect(await http.delete("/healthz"), 405, "method_not_allowed")
    expect(await http.get("/api/someone-else/tasks", headers=auth), 403, "not_your_tasks")
    expect(await http.get("/api/me/tasks", headers={"X-Request-ID": "has spaces, so replaced"}), 401)
    expect(
        await http.post("/api/auth/signup", json={"email": "weak@example.com", "password": "password1"}),
        422,
    )

    # Credentials that must not work, and must not be logged either.
    expired = keep(
        "expired token",
        mint(access_claims(user_id, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600), SECRET_KEY),
    )
    forged = keep("forged token", mint(access_claims(user_id), "not-the-server-key-" + uuid.uuid4().hex))
    basic = keep("Basic credentials", "Basic " + base64.b64encode(f"{EMAIL}:{PASSWORD}".encode()).decode())
    for header in (f"Bearer {expired}", f"Bearer {forged}", basic, "Bearer garbage.not.ajwt"):
        expect(await http.get("/api/me/tasks", headers={"Authorization": header}), 401)

    # A reused refresh token ends that session.
    again = expect(await http.post("/api/auth/login", json={"email": EMAIL, "password": PASSWORD}), 200)
    _, doomed = session(again, "second log-in")
    http.cookies.clear()
    rotated = expect(await http.post("/api/auth/refresh", json={"refresh_token": doomed}), 200)
    session(rotated, "second session's refresh")
    http.cookies.clear()
    expect(await http.post("/api/auth/refresh", json={"refresh_token": doomed}), 401, "refresh_token_reused")

    # Password change, then log-out.
    expect(
        await http.post(
            "/api/auth/password",
            json={"current_password": WRONG_PASSWORD, "new_password": NEW_PASSWORD},
            headers=auth,
        ),
        403,
    )
    expect(
        await http.post(
            "/api/auth/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}, headers=auth
        ),
        204,
    )
    final = expect(await http.post("/api/auth/login", json={"email": EMAIL, "password": NEW_PASSWORD}), 200)
    _, final_refresh = session(final, "after the password change")
    http.cookies.clear()
    expect(await http.post("/api/auth/logout", json={"refresh_token": final_refresh}), 204)
    expect(await http.post("/api/auth/refresh", json={"refresh_token": final_refresh}), 401)
    expect(await http.post("/api/auth/logout", headers={"Cookie": f"refresh_token={cookie_refresh}"}), 204)


@pytest.fixture(scope="module")
async def scenario(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    port = free_port()
    env = server_env(
        DATABASE_URL=database_url,
        PORT=str(port),
        SECRET_KEY=SECRET_KEY,
        PASSWORD_PEPPER=PEPPER,
        BCRYPT_COST="4",
        LOG_FORMAT="json",
        LOG_LEVEL="DEBUG",
        THROTTLE_LOGIN_PER_ACCOUNT="1000",
        THROTTLE_LOGIN_PER_ADDRESS="1000",
        THROTTLE_SIGNUP_PER_ADDRESS="1000",
        # The background workers log their own passes, which belong to no request (test_webhooks.py).
        RUN_WORKERS="false",
    )
    log_path: Path = tmp_path_factory.mktemp("live-logs") / "server.log"
    seen = Scenario(lines=[])
    seen.keep("SECRET_KEY", SECRET_KEY)
    seen.keep("PASSWORD_PEPPER", PEPPER)
    if password := make_url(database_url).password:
        seen.keep("database password", str(password))

    async def record(response: httpx.Response) -> None:
        seen.responses.append(response)

    with live_server(env, log_path=log_path) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30, event_hooks={"response": [record]}) as http:
            await run_scenario(http, seen)
        connection = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            for row in await connection.fetch("SELECT password_hash FROM users WHERE password_hash IS NOT NULL"):
                seen.keep(f"bcrypt hash {len(seen.secrets)}", row["password_hash"])
            for row in await connection.fetch("SELECT token_hash FROM refresh_tokens"):
                seen.keep(f"refresh token hash {len(seen.secrets)}", row["token_hash"])
        finally:
            await connection.close()
        seen.probe_request_ids = list(server.probe_request_ids)
        server.stop()  # the shutdown lines belong to the log too
        seen.lines = server.log_lines()
    assert any(label.startswith("bcrypt hash") for label in seen.secrets)
    return seen


def test_every_line_is_a_json_object(scenario: Scenario) -> None:
    assert scenario.lines, "the server wrote nothing"
    for line in scenario.lines:
        record = json.loads(line)  # raises on anything that is not JSON
        assert isinstance(record, dict), line
        assert {"event", "level", "timestamp"} <= record.keys(), line


def test_no_line_contains_a_password_token_hash_or_authorization_header(scenario: Scenario) -> None:
    leaks = [
        f"{label} in line {number}: {line[:300]}"
        for label, secret in scenario.secrets.items()
        for number, line in enumerate(scenario.lines, 1)
        if secret in line
    ]
    assert not leaks, "\n".join(leaks)


def test_every_request_has_exactly_one_access_line_with_its_request_id(scenario: Scenario) -> None:
    by_id = {response.headers["x-request-id"]: response for response in scenario.responses}
    assert len(by_id) == len(scenario.responses), "every response carries its own X-Request-ID"
    access = [record for record in scenario.records() if record["event"] == "request"]
    assert all(record.get("request_id") for record in access)
    known = by_id.keys() | {READINESS_PROBE_ID} | set(scenario.probe_request_ids)
    strangers = [record for record in access if record["request_id"] not in known]
    assert not strangers, strangers
    logged = [record for record in access if record["request_id"] != READINESS_PROBE_ID]
    assert sorted(record["request_id"] for record in logged) == sorted(by_id)
    for record in logged:
        response = by_id[record["request_id"]]
        assert record["status"] == response.status_code, record
        assert record["method"] == response.request.method
        assert record["path"] == response.request.url.path


def test_every_line_written_during_a_request_carries_its_request_id(scenario: Scenario) -> None:
    app_lines = [r for r in scenario.records() if str(r.get("logger", "")).startswith("todo_api")]
    assert app_lines
    assert all(r.get("request_id") for r in app_lines), [r for r in app_lines if not r.get("request_id")]


def test_the_scenario_met_no_500(scenario: Scenario) -> None:
    assert all(response.status_code < 500 for response in scenario.responses)
    assert not [r for r in scenario.records() if r["event"] == "unhandled_exception" or r["level"] == "error"]


# A 500, in process ----------------------------------------------------------------------------

CRASH_PASSWORD = "Hidden-Crash-Password-3141"
CRASH_REFRESH = "cr4sh-refresh-token-AbCdEfGhIjKlMnOpQrStUvWxYz012345"
CRASH_JWT = mint(access_claims("crash-user"), "crash-signing-key-" + "k" * 32)
CRASH_HASH = "$2b$12$" + "C" * 22 + "R" * 31
CRASH_DB_PASSWORD = "db-pw-Zebra-Quokka-2718"

crashing = APIRouter(prefix="/test-only")


@crashing.get("/crash-with-secrets")
async def crash_with_secrets() -> None:
    token_in_a_local = CRASH_JWT  # locals are never rendered
    try:
        raise ValueError(f"login failed: password={CRASH_PASSWORD} hash {CRASH_HASH}")
    except ValueError as cause:
        raise RuntimeError(
            f"postgresql://app:{CRASH_DB_PASSWORD}@db/todo refused; refresh_token={CRASH_REFRESH}; "
            f"Authorization: Bearer {token_in_a_local}"
        ) from cause


@pytest.fixture(scope="module")
async def crash_app(database_url: str) -> AsyncIterator[FastAPI]:
    app = create_app(make_settings(log_level="DEBUG"), database_url=database_url)
    app.include_router(crashing)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
def captured(crash_app: FastAPI) -> Iterator[list[str]]:
    del crash_app  # it configures logging; capture with its formatter
    with formatted_log_lines() as lines:
        yield lines


async def test_a_500_logs_its_traceback_without_secrets_and_the_body_shows_none_of_it(
    crash_app: FastAPI, captured: list[str]
) -> None:
    transport = httpx.ASGITransport(app=crash_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/test-only/crash-with-secrets", headers={"Authorization": f"Bearer {CRASH_JWT}"})

    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "internal_error"
    assert body["request_id"] == response.headers["x-request-id"]
    for internal in ("Traceback", "RuntimeError", "ValueError", "crash_with_secrets", "test_logs", ".py", "line "):
        assert internal not in response.text, internal

    records = [json.loads(line) for line in captured]
    crash = next(r for r in records if r["event"] == "unhandled_exception")
    assert crash["request_id"] == body["request_id"]
    assert crash["level"] == "error"
    exceptions = crash["exception"]
    assert [e["exc_type"] for e in exceptions] == ["RuntimeError", "ValueError"], "the cause is logged too"
    frames = [frame for e in exceptions for frame in e["frames"]]
    assert any(frame["name"] == "crash_with_secrets" for frame in frames), "the traceback reaches the route"
    assert all("locals" not in frame for frame in frames)
    access = [r for r in records if r["event"] == "request"]
    assert [(r["status"], r["request_id"]) for r in access] == [(500, body["request_id"])]

    everything = "\n".join(captured)
    for secret in (CRASH_PASSWORD, CRASH_REFRESH, CRASH_JWT, CRASH_HASH, CRASH_DB_PASSWORD):
        assert secret not in everything, secret
        assert secret not in response.text, secret
