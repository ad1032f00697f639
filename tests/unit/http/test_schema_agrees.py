"""What /openapi.json declares is what the server enforces, both ways: bounds it states are checked, values
it allows are accepted. And token responses are never cached, as RFC 6749 5.1 asks and the document says."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.unit.http.backend import FakeBackend
from tests.unit.http.conftest import ADA, ADA_EMAIL, ADA_PASSWORD, ADA_TOKEN, bearer
from tests.unit.http.problem_support import assert_problem

CONDITIONAL = [
    ("GET", "/api/me/tasks/{id}", "If-None-Match", "getTask"),
    ("PUT", "/api/me/tasks/{id}", "If-Match", "replaceTask"),
    ("PATCH", "/api/me/tasks/{id}", "If-Match", "updateTask"),
    ("PATCH", "/api/me/tasks/{id}/complete", "If-Match", "toggleTaskCompletion"),
    ("DELETE", "/api/me/tasks/{id}", "If-Match", "deleteTask"),
]


def body_for(path: str) -> dict[str, Any]:
    return {} if path.endswith("/complete") else {"title": "Buy oat milk"}


def parameter(document: dict[str, Any], operation_id: str, name: str) -> dict[str, Any]:
    for item in document["paths"].values():
        for operation in item.values():
            if operation.get("operationId") == operation_id:
                found: dict[str, Any] = next(p for p in operation["parameters"] if p["name"].lower() == name.lower())
                return found
    raise KeyError(operation_id)


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    openapi: dict[str, Any] = (await client.get("/openapi.json")).json()
    return openapi


# --- If-Match / If-None-Match ----------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "header", "operation_id"), CONDITIONAL)
def test_the_conditional_headers_declare_entity_tags_of_at_most_512_characters(
    document: dict[str, Any], method: str, path: str, header: str, operation_id: str
) -> None:
    declared = parameter(document, operation_id, header)["schema"]

    assert declared["type"] == "string", "a header is never null"
    assert declared["maxLength"] == 512
    assert declared["pattern"].startswith("^")


@pytest.mark.parametrize(
    "value",
    [
        '"1"' + "," + ' "2"' * 128,  # 515 characters of valid tags
        '"' + "9" * 511 + '"',  # 513
        ' "1"',  # white space is not part of a field value: servers strip it, so it never counts
        '"1" ',
        '"1"\t',
        "1",  # not quoted
        '"1", ',
        "W/1",
        '"caf\u00e9"',  # not ASCII: its bytes and its characters would be two lengths
    ],
)
@pytest.mark.parametrize(("method", "path", "header", "operation_id"), CONDITIONAL)
async def test_a_conditional_header_the_schema_refuses_is_422_on_every_route(
    client: httpx.AsyncClient, backend: FakeBackend, method: str, path: str, header: str, operation_id: str, value: str
) -> None:
    task = await backend.add_task(ADA)
    headers = [(b"authorization", f"Bearer {ADA_TOKEN}".encode()), (header.encode(), value.encode("latin-1"))]

    response = await client.request(method, path.format(id=task.id), json=body_for(path), headers=headers)

    body = assert_problem(response, 422, "validation_failed")
    assert [error["loc"] for error in body["errors"]] == [["header", header.lower()]]


@pytest.mark.parametrize("value", ["*", '"1"', 'W/"1"', '"7", "1"', '"x,1", "1"', '"' + "9" * 510 + '"'])
@pytest.mark.parametrize(("method", "path", "header", "operation_id"), CONDITIONAL)
async def test_a_conditional_header_the_schema_allows_is_not_a_validation_error(
    client: httpx.AsyncClient, backend: FakeBackend, method: str, path: str, header: str, operation_id: str, value: str
) -> None:
    task = await backend.add_task(ADA)

    response = await client.request(
        method, path.format(id=task.id), json=body_for(path), headers={**bearer(ADA_TOKEN), header: value}
    )

    assert response.status_code in (200, 204, 304, 412), response.text


async def test_a_tag_whose_content_holds_a_comma_is_one_tag(client: httpx.AsyncClient, backend: FakeBackend) -> None:
    task = await backend.add_task(ADA)

    response = await client.delete(f"/api/me/tasks/{task.id}", headers={**bearer(ADA_TOKEN), "If-Match": '"0,1"'})

    assert_problem(response, 412, "precondition_failed")


# --- dates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["-3.576321813625929e-36", "1790000000", "2026-12-01", "2026-12-01T17:00Z", "2026-12-01T17:00:00"]
)
async def test_a_due_date_filter_that_is_not_rfc_3339_with_a_zone_is_422(client: httpx.AsyncClient, value: str) -> None:
    response = await client.get("/api/me/tasks", params={"due_after": value}, headers=bearer(ADA_TOKEN))

    assert_problem(response, 422, "validation_failed")


@pytest.mark.parametrize("value", ["2026-12-01T17:00:00Z", "2026-12-01t17:00:00.123456z", "2026-12-01T17:00:00+02:00"])
async def test_an_rfc_3339_due_date_is_accepted(client: httpx.AsyncClient, value: str) -> None:
    response = await client.post("/api/me/tasks", json={"title": "T", "due_at": value}, headers=bearer(ADA_TOKEN))

    assert response.status_code == 201, response.text


# --- text: white space as domain rules see it ----------------------------------------------------


@pytest.mark.parametrize("space", ["\x85", "\u3000", "\u2028", "\xa0"])
async def test_a_title_of_white_space_is_refused_by_the_schema_not_the_domain(
    client: httpx.AsyncClient, space: str
) -> None:
    response = await client.post("/api/me/tasks", json={"title": space * 3}, headers=bearer(ADA_TOKEN))

    body = assert_problem(response, 422, "validation_failed")
    blank = {"loc": ["body", "title"], "code": "invalid_title", "message": "A title may not be blank."}
    assert body["errors"] == [blank]


@pytest.mark.parametrize("space", ["\x85", "\u3000", "\t"])
async def test_white_space_around_a_title_or_an_email_is_trimmed_not_refused(
    client: httpx.AsyncClient, space: str
) -> None:
    created = await client.post("/api/me/tasks", json={"title": f"{space}Milk{space}"}, headers=bearer(ADA_TOKEN))
    signed_up = await client.post(
        "/api/auth/signup", json={"email": f"{space}new@example.com{space}", "password": "a-long-passphrase"}
    )

    assert created.status_code == 201, created.text
    assert created.json()["title"] == "Milk"
    assert signed_up.status_code == 201, signed_up.text
    assert signed_up.json()["user"]["email"] == "new@example.com"


@pytest.mark.parametrize("email", ["ada@example.com\x85x", "a\x85da@example.com", "ada@exa\x1cmple.com", "ada@example"])
async def test_an_email_the_domain_refuses_is_refused_by_the_schema(client: httpx.AsyncClient, email: str) -> None:
    response = await client.post("/api/auth/signup", json={"email": email, "password": "a-long-passphrase"})

    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", "email"]


def test_sign_up_declares_the_domain_rules(document: dict[str, Any]) -> None:
    schema = document["components"]["schemas"]["SignUpRequest"]["properties"]

    assert (schema["email"]["maxLength"], schema["email"]["pattern"][:1]) == (254, "^")
    assert (schema["password"]["minLength"], schema["password"]["maxLength"]) == (8, 128)


# --- the OAuth2 form -----------------------------------------------------------------------------


def test_the_token_form_declares_non_empty_credentials_and_no_nulls(document: dict[str, Any]) -> None:
    form = document["components"]["schemas"]["TokenForm"]

    assert set(form["required"]) == {"username", "password"}
    assert form["properties"]["username"]["minLength"] == 1
    assert form["properties"]["password"]["minLength"] == 1
    assert form["properties"]["grant_type"]["const"] == "password"
    assert all("anyOf" not in field for field in form["properties"].values()), form


@pytest.mark.parametrize(
    "form",
    [{"username": "", "password": "x"}, {"username": ADA_EMAIL, "password": ""}, {"grant_type": "client_credentials"}],
)
async def test_a_token_form_the_schema_refuses_is_422(client: httpx.AsyncClient, form: dict[str, str]) -> None:
    assert_problem(await client.post("/api/auth/token", data=form), 422, "validation_failed")


# --- token responses are never cached --------------------------------------------------------------


async def token_responses(client: httpx.AsyncClient) -> dict[str, httpx.Response]:
    signed_up = await client.post(
        "/api/auth/signup", json={"email": "new@example.com", "password": "a-long-passphrase"}
    )
    logged_in = await client.post("/api/auth/login", json={"email": ADA_EMAIL, "password": ADA_PASSWORD})
    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": logged_in.json()["refresh_token"]})
    token = await client.post("/api/auth/token", data={"username": ADA_EMAIL, "password": ADA_PASSWORD})
    return {"signUp": signed_up, "logIn": logged_in, "refreshSession": refreshed, "issueToken": token}


async def test_every_token_response_says_no_store(client: httpx.AsyncClient) -> None:
    for operation, response in (await token_responses(client)).items():
        assert response.status_code in (200, 201), f"{operation}: {response.text}"
        assert response.headers["cache-control"] == "no-store", operation
        assert response.headers["pragma"] == "no-cache", operation


@pytest.mark.parametrize(
    ("operation_id", "status"), [("signUp", "201"), ("logIn", "200"), ("refreshSession", "200"), ("issueToken", "200")]
)
def test_every_token_response_declares_no_store(document: dict[str, Any], operation_id: str, status: str) -> None:
    operation = next(
        op for item in document["paths"].values() for op in item.values() if op.get("operationId") == operation_id
    )
    headers = operation["responses"][status]["headers"]

    assert headers["Cache-Control"]["schema"] == {"const": "no-store"}
    assert headers["Pragma"]["schema"] == {"const": "no-cache"}
    assert "application/json" in operation["responses"][status]["content"]


async def test_other_responses_are_not_marked_no_store(client: httpx.AsyncClient) -> None:
    assert "cache-control" not in (await client.get("/api/auth/me", headers=bearer(ADA_TOKEN))).headers


def test_no_parameter_is_declared_nullable(document: dict[str, Any]) -> None:
    """A header, query or path value is absent or text: a declared `null` gets sent as the text "null"."""
    nullable = [
        f"{operation['operationId']} {parameter['name']}"
        for item in document["paths"].values()
        for operation in item.values()
        for parameter in operation.get("parameters", ())
        if "null" in str(parameter["schema"])
    ]

    assert not nullable
