"""Every error leaves as application/problem+json with a stable code and the request id; none leaks internals."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ConfigDict, Field

from tests.integration.conftest import make_settings
from tests.log_support import formatted_log_lines
from todo_api.main import create_app

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "code", "request_id"}
SECRET_IN_CRASH = "db-password-hunter2"


class Echo(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    title: str = Field(min_length=1, max_length=10)
    count: int


probe = APIRouter(prefix="/test-only")


@probe.post("/echo")
async def echo(body: Echo) -> Echo:
    return body


@probe.get("/crash")
async def crash() -> None:
    raise RuntimeError(f"connection to postgres://app:{SECRET_IN_CRASH}@db failed")


@pytest.fixture(scope="module")
async def probe_app(database_url: str) -> AsyncIterator[FastAPI]:
    app = create_app(make_settings(max_body_bytes=2048), database_url=database_url)
    app.include_router(probe)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    with formatted_log_lines() as lines:
        yield lines


@pytest.fixture
async def http(probe_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=probe_app), base_url="http://test") as client:
        yield client


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body.keys() >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"https://todo-api.dev/problems/{code}"
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["instance"] == response.request.url.path
    return body


async def test_malformed_json_is_a_400(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/test-only/echo", content=b'{"title": "a",', headers={"content-type": "application/json"}
    )
    assert_problem(response, 400, "malformed_json")


async def test_unknown_route_is_a_404(http: httpx.AsyncClient) -> None:
    assert_problem(await http.get("/no/such/route"), 404, "not_found")


async def test_wrong_method_is_a_405_with_allow(http: httpx.AsyncClient) -> None:
    response = await http.delete("/healthz")
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET"


async def test_oversized_body_is_a_413(http: httpx.AsyncClient) -> None:
    body = json.dumps({"title": "x" * 4096, "count": 1}).encode()
    assert_problem(
        await http.post("/test-only/echo", content=body, headers={"content-type": "application/json"}),
        413,
        "content_too_large",
    )


async def test_oversized_chunked_body_without_content_length_is_a_413(http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"title": "'
        for _ in range(10):
            yield b"x" * 1024
        yield b'", "count": 1}'

    response = await http.post("/test-only/echo", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "content_too_large")


async def test_validation_errors_are_a_422_listing_fields_without_echoing_input(http: httpx.AsyncClient) -> None:
    secret_value = "do-not-echo-me-please"
    response = await http.post("/test-only/echo", json={"title": secret_value, "count": "7", "extra": 1})
    body = assert_problem(response, 422, "validation_failed")
    errors = body["errors"]
    assert isinstance(errors, list)
    by_loc = {tuple(error["loc"]): error for error in errors}
    assert by_loc.keys() == {("body", "title"), ("body", "count"), ("body", "extra")}
    assert all(set(error) == {"loc", "message", "code"} for error in errors)
    expected = {"loc": ["body", "count"], "code": "wrong_type", "message": "Expected a whole number."}
    assert by_loc[("body", "count")] == expected
    assert secret_value not in response.text


async def test_an_unexpected_exception_is_a_500_with_no_internals_and_a_logged_traceback(
    http: httpx.AsyncClient, log_lines: list[str]
) -> None:
    response = await http.get("/test-only/crash")
    body = assert_problem(response, 500, "internal_error")
    assert "RuntimeError" not in response.text
    assert SECRET_IN_CRASH not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    records = [json.loads(line) for line in log_lines]
    crash_record = next(r for r in records if r["event"] == "unhandled_exception")
    assert crash_record["request_id"] == body["request_id"]
    assert "RuntimeError" in json.dumps(crash_record["exception"])
    assert SECRET_IN_CRASH not in "\n".join(log_lines), "secrets in exception messages are redacted"
    assert all("locals" not in frame for frame in crash_record["exception"][0]["frames"])


async def test_the_request_id_is_echoed_and_on_every_log_line_of_the_request(
    http: httpx.AsyncClient, log_lines: list[str]
) -> None:
    response = await http.get("/healthz", headers={"X-Request-ID": "spa-req-0001"})
    assert response.headers["x-request-id"] == "spa-req-0001"
    access = [json.loads(line) for line in log_lines]
    assert [r["request_id"] for r in access if r["event"] == "request"] == ["spa-req-0001"]
    line = next(r for r in access if r["event"] == "request")
    assert {"method": "GET", "path": "/healthz", "status": 200}.items() <= line.items()
    assert isinstance(line["duration_ms"], float)


@pytest.mark.parametrize("bad_id", ["short", "has spaces in it", "x" * 200, "<script>alert(1)</script>"])
async def test_an_insane_request_id_is_replaced_by_a_generated_one(http: httpx.AsyncClient, bad_id: str) -> None:
    response = await http.get("/healthz", headers={"X-Request-ID": bad_id})
    assert response.headers["x-request-id"] != bad_id
    assert len(response.headers["x-request-id"]) == 32


async def test_the_openapi_document_declares_the_envelope_for_errors(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    ready = spec["paths"]["/readyz"]["get"]["responses"]
    assert ready["503"]["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert "application/json" not in ready["503"]["content"]


async def test_deeply_nested_json_is_a_4xx_in_the_envelope(http: httpx.AsyncClient) -> None:
    body = b'{"title": ' + b"[" * 5000 + b"]" * 5000 + b', "count": 1}'
    response = await http.post("/test-only/echo", content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == "application/problem+json"


@pytest.fixture(scope="module")
async def production_app(database_url: str) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        environment="production", database_url=database_url, password_pepper="p" * 40, cors_origins=["https://app.test"]
    )
    app = create_app(settings, database_url=database_url)
    async with app.router.lifespan_context(app):
        yield app


async def test_production_sends_hsts_and_hides_the_docs(production_app: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=production_app), base_url="https://test") as http:
        health = await http.get("/healthz")
        assert health.headers["strict-transport-security"].startswith("max-age=")
        assert health.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert (await http.get("/docs")).status_code == 404
        assert (await http.get("/openapi.json")).status_code == 404


async def test_development_sends_no_hsts(http: httpx.AsyncClient) -> None:
    assert "strict-transport-security" not in (await http.get("/healthz")).headers


async def test_production_serves_the_docs_when_enabled(database_url: str) -> None:
    settings = make_settings(
        environment="production",
        database_url=database_url,
        password_pepper="p" * 40,
        cors_origins=["https://app.test"],
        docs_enabled=True,
    )
    app = create_app(settings, database_url=database_url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://test") as http:
        assert (await http.get("/openapi.json")).status_code == 200
        assert (await http.get("/docs")).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/api/me/tasks/bulk", "POST"),  # not the methods of /tasks/{task_id}, which also matches
        ("OPTIONS", "/api/me/tasks/7", "DELETE, GET, PATCH, PUT"),
        ("PUT", "/api/me/lists", "GET, POST"),
    ],
)
async def test_allow_names_the_methods_of_the_resource_the_path_is(
    http: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await http.request(method, path)
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allow
