"""Every kind of DomainError leaves as its status in the one envelope, with the headers its status needs;
a kind without a status is caught here, not by a client receiving a silent 400."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI

import todo_api
from tests.unit.http.backend import FakeBackend
from tests.unit.http.conftest import ADA, ADA_TOKEN, BOB, bearer, client_of
from tests.unit.http.problem_support import assert_problem
from todo_api.adapters.http.cursors import InvalidCursor
from todo_api.adapters.http.problems import STATUS_BY_ERROR, UnmappedDomainError, status_of
from todo_api.domain.errors import (
    AuthenticationFailed,
    Conflict,
    DomainError,
    Forbidden,
    Gone,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    RateLimited,
    ServiceUnavailable,
    TransientConflict,
)

# The contract, written out: a new kind fails test_every_domain_error_kind_has_the_status_listed_here
# until it is added here and to problems.STATUS_BY_ERROR (or subclasses a kind that has a status).
STATUS: dict[type[DomainError], int] = {
    InvalidCursor: 400,
    AuthenticationFailed: 401,
    Forbidden: 403,
    NotFound: 404,
    Gone: 410,
    Conflict: 409,
    PreconditionFailed: 412,
    InvalidInput: 422,
    RateLimited: 429,
    ServiceUnavailable: 503,
    TransientConflict: 503,
}

EXAMPLES: dict[type[DomainError], DomainError] = {
    InvalidCursor: InvalidCursor("The cursor is not one this API issued."),
    AuthenticationFailed: AuthenticationFailed("The bearer token is invalid.", code="invalid_token"),
    Forbidden: Forbidden("You can only reach your own tasks.", code="not_your_tasks"),
    NotFound: NotFound("Task 42 was not found.", code="task_not_found"),
    Conflict: Conflict("An account with this e-mail address already exists.", code="email_taken"),
    PreconditionFailed: PreconditionFailed("Task 42 has changed.", current_version=3),
    InvalidInput: InvalidInput("A title may not be blank.", code="invalid_title"),
    RateLimited: RateLimited("Too many attempts.", retry_after_s=7),
    ServiceUnavailable: ServiceUnavailable("The database is not answering.", retry_after_s=5),
    TransientConflict: TransientConflict("The database aborted the transaction.", retry_after_s=1),
}


def domain_error_kinds() -> set[type[DomainError]]:
    """Every subclass of DomainError defined anywhere in todo_api (every module imported first)."""
    for module in pkgutil.walk_packages(todo_api.__path__, prefix="todo_api."):
        if module.name != "todo_api.__main__":
            importlib.import_module(module.name)
    found: set[type[DomainError]] = set()
    pending = [DomainError]
    while pending:
        for kind in pending.pop().__subclasses__():
            pending.append(kind)
            if kind.__module__.startswith("todo_api."):
                found.add(kind)
    return found


def test_every_domain_error_kind_has_the_status_listed_here() -> None:
    kinds = domain_error_kinds()

    assert InvalidCursor in kinds, "the search must reach kinds defined in adapters too"
    unlisted = {f"{kind.__module__}.{kind.__qualname__}" for kind in kinds - STATUS.keys()}
    assert not unlisted, f"DomainError kinds without a status in this test (and maybe in STATUS_BY_ERROR): {unlisted}"
    assert {kind: status_of(kind) for kind in kinds} == {kind: STATUS[kind] for kind in kinds}


def test_a_kind_without_a_status_is_an_error_not_a_guess() -> None:
    class Unmapped(DomainError):
        pass

    assert DomainError not in STATUS_BY_ERROR
    with pytest.raises(UnmappedDomainError, match="Unmapped"):
        status_of(Unmapped)


# --- over HTTP: each kind raised by a route -------------------------------------------------------


class Unmapped(DomainError):
    code = "unmapped"


probe = APIRouter(prefix="/test-only")


@probe.get("/raise/{kind}")
async def raise_kind(kind: str) -> None:
    if kind == "Unmapped":
        raise Unmapped("A kind nobody gave a status.")
    raise next(error for error in EXAMPLES.values() if type(error).__name__ == kind)


@pytest.fixture
async def probing(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    app.include_router(probe)
    async with client_of(app) as http:
        yield http


def expected_headers(error: DomainError, status: int) -> dict[str, str]:
    if isinstance(error, RateLimited | ServiceUnavailable):
        return {"retry-after": str(error.retry_after_s)}
    if isinstance(error, PreconditionFailed):
        return {"etag": f'"{error.current_version}"'}
    if status == 401:
        return {"www-authenticate": 'Bearer error="invalid_token"'}
    return {}


@pytest.mark.parametrize("kind", list(EXAMPLES), ids=[kind.__name__ for kind in EXAMPLES])
async def test_each_kind_is_its_status_in_the_envelope_with_its_headers(
    probing: httpx.AsyncClient, kind: type[DomainError]
) -> None:
    error = EXAMPLES[kind]
    response = await probing.get(f"/test-only/raise/{kind.__name__}")

    body = assert_problem(response, STATUS[kind], error.code)
    assert body["detail"] == error.message
    for name, value in expected_headers(error, STATUS[kind]).items():
        assert response.headers.get(name) == value, f"{name} on {kind.__name__}"
    other = {"retry-after", "etag", "www-authenticate"} - expected_headers(error, STATUS[kind]).keys()
    assert not other & response.headers.keys(), response.headers


async def test_a_kind_without_a_status_is_a_500_in_the_envelope(probing: httpx.AsyncClient) -> None:
    response = await probing.get("/test-only/raise/Unmapped")

    body = assert_problem(response, 500, "internal_error")
    assert "STATUS_BY_ERROR" not in response.text
    assert body["detail"].startswith("An unexpected error occurred")


# --- over HTTP: the same kinds from the real routes ------------------------------------------------


async def test_a_stale_if_match_is_412_with_the_current_etag(client: httpx.AsyncClient, backend: FakeBackend) -> None:
    task = await backend.add_task(ADA)
    await client.patch(f"/api/me/tasks/{task.id}", json={"title": "Changed"}, headers=bearer(ADA_TOKEN))

    response = await client.delete(f"/api/me/tasks/{task.id}", headers={**bearer(ADA_TOKEN), "If-Match": '"1"'})

    assert_problem(response, 412, "precondition_failed")
    assert response.headers["etag"] == '"2"'


async def test_a_missing_token_is_401_with_a_bearer_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/me/tasks")

    assert_problem(response, 401, "missing_token")
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_an_unknown_token_is_401_invalid_token(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/auth/me", headers=bearer("forged")), 401, "invalid_token")


async def test_another_users_path_is_403_not_your_tasks(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"/api/{BOB}/tasks", headers=bearer(ADA_TOKEN)), 403, "not_your_tasks")


async def test_a_task_that_is_not_yours_is_404_like_one_that_does_not_exist(
    client: httpx.AsyncClient, backend: FakeBackend
) -> None:
    bobs = await backend.add_task(BOB)

    assert_problem(await client.get(f"/api/me/tasks/{bobs.id}", headers=bearer(ADA_TOKEN)), 404, "task_not_found")
    assert_problem(await client.get("/api/me/tasks/999", headers=bearer(ADA_TOKEN)), 404, "task_not_found")


async def test_a_cursor_this_api_did_not_issue_is_400_invalid_cursor(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/me/tasks", params={"cursor": "forged"}, headers=bearer(ADA_TOKEN))

    assert_problem(response, 400, "invalid_cursor")


async def test_an_e_mail_with_an_account_is_409_email_taken(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/signup", json={"email": "ADA@example.com", "password": "a-long-passphrase"})

    assert_problem(response, 409, "email_taken")


async def test_a_common_password_is_422_weak_password(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/signup", json={"email": "new@example.com", "password": "qwertyuiop"})

    assert_problem(response, 422, "weak_password")


async def test_too_many_signups_from_one_address_is_429_with_retry_after(
    client: httpx.AsyncClient, backend: FakeBackend
) -> None:
    for n in range(backend.limits.signup_per_address):
        signed_up = await client.post(
            "/api/auth/signup", json={"email": f"u{n}@example.com", "password": "a-long-passphrase"}
        )
        assert signed_up.status_code == 201, signed_up.text

    response = await client.post("/api/auth/signup", json={"email": "one@example.com", "password": "a-long-passphrase"})

    assert_problem(response, 429, "rate_limited")
    assert int(response.headers["retry-after"]) == backend.limits.signup_window_s


async def test_readiness_without_a_database_is_503_with_retry_after(
    client: httpx.AsyncClient, backend: FakeBackend
) -> None:
    backend.probe.up = False

    response = await client.get("/readyz")

    assert_problem(response, 503, "service_unavailable")
    assert response.headers["retry-after"] == str(backend.probe.retry_after_s)
