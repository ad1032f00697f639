"""Every 422 names the field, our stable code and a sentence a form can show: never pydantic's
error types, its wording or a regular expression, and never the value that was sent."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.unit.http.conftest import ADA_PASSWORD, ADA_TOKEN, bearer
from tests.unit.http.problem_support import assert_problem
from todo_api.adapters.http.field_errors import FIELD_ERROR_CODES

SIGNUP = "/api/auth/signup"


def only_error(response: httpx.Response, top_code: str = "validation_failed") -> dict[str, Any]:
    body = assert_problem(response, 422, top_code)
    assert len(body["errors"]) == 1, body
    error: dict[str, Any] = body["errors"][0]
    assert set(error) == {"loc", "code", "message"}
    return error


def assert_written_for_people(error: dict[str, Any]) -> None:
    message = error["message"]
    assert error["code"] in FIELD_ERROR_CODES
    assert message[:1].isupper() or message[:1] == "`", message
    for library_wording in ("String should", "Input should", "Field required", "Extra inputs", "[^", "\\x", "^"):
        assert library_wording not in message, message


async def test_a_malformed_email_at_signup_is_invalid_email_in_plain_words(client: httpx.AsyncClient) -> None:
    response = await client.post(SIGNUP, json={"email": "not-an-address", "password": "correct horse battery"})

    error = only_error(response)
    assert error == {
        "loc": ["body", "email"],
        "code": "invalid_email",
        "message": "This is not a valid e-mail address.",
    }
    assert "not-an-address" not in response.text


async def test_a_short_password_is_password_too_short(client: httpx.AsyncClient) -> None:
    response = await client.post(SIGNUP, json={"email": "ada@example.com", "password": "short"})

    assert only_error(response) == {
        "loc": ["body", "password"],
        "code": "password_too_short",
        "message": "A password has at least 8 characters.",
    }


async def test_a_common_password_is_weak_password_on_the_password_field(client: httpx.AsyncClient) -> None:
    response = await client.post(SIGNUP, json={"email": "new@example.com", "password": "qwertyuiop"})

    assert only_error(response, "weak_password") == {
        "loc": ["body", "password"],
        "code": "weak_password",
        "message": "This password is too common; choose another.",
    }


@pytest.mark.parametrize(
    ("title", "code", "message"),
    [
        ("x" * 201, "title_too_long", "A title has at most 200 characters."),
        ("   ", "invalid_title", "A title may not be blank."),
        ("", "invalid_title", "A title may not be blank."),
        ("a\x07b", "invalid_title", "A title may not contain control characters."),
    ],
)
async def test_a_bad_title_says_what_is_wrong_with_it(
    client: httpx.AsyncClient, title: str, code: str, message: str
) -> None:
    response = await client.post("/api/me/tasks", json={"title": title}, headers=bearer(ADA_TOKEN))

    assert only_error(response) == {"loc": ["body", "title"], "code": code, "message": message}


async def test_a_bad_tag_is_invalid_tag_at_its_index(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/me/tasks", json={"title": "T", "tags": ["ok", " "]}, headers=bearer(ADA_TOKEN))

    error = only_error(response)
    assert (error["loc"], error["code"]) == (["body", "tags", 1], "invalid_tag")
    assert_written_for_people(error)


async def test_21_tags_are_too_many_tags(client: httpx.AsyncClient) -> None:
    tags = [f"t{i}" for i in range(21)]
    response = await client.post("/api/me/tasks", json={"title": "T", "tags": tags}, headers=bearer(ADA_TOKEN))

    assert only_error(response) == {
        "loc": ["body", "tags"],
        "code": "too_many_tags",
        "message": "A task has at most 20 tags.",
    }


async def test_an_unknown_sort_is_invalid_sort_on_the_query(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/me/tasks?sort=colour", headers=bearer(ADA_TOKEN))

    error = only_error(response)
    assert (error["loc"], error["code"]) == (["query", "sort"], "invalid_sort")
    assert_written_for_people(error)


async def test_an_unknown_field_is_unknown_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/me/tasks", json={"title": "T", "user_id": "x"}, headers=bearer(ADA_TOKEN))

    assert only_error(response) == {
        "loc": ["body", "user_id"],
        "code": "unknown_field",
        "message": "This field is not accepted here.",
    }


async def test_a_missing_field_is_missing_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/me/tasks", json={}, headers=bearer(ADA_TOKEN))

    assert only_error(response) == {
        "loc": ["body", "title"],
        "code": "missing_field",
        "message": "This field is required.",
    }


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"title": "T", "completed": 0}, "completed", "Expected true or false."),
        ({"title": 5}, "title", "Expected text."),
        ({"title": "T", "tags": "home"}, "tags", "Expected a list."),
    ],
)
async def test_a_wrong_type_is_wrong_type_naming_what_was_expected(
    client: httpx.AsyncClient, body: dict[str, Any], field: str, message: str
) -> None:
    response = await client.post("/api/me/tasks", json=body, headers=bearer(ADA_TOKEN))

    assert only_error(response) == {"loc": ["body", field], "code": "wrong_type", "message": message}


async def test_a_due_date_without_a_zone_is_invalid_datetime(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/me/tasks", json={"title": "T", "due_at": "2026-12-01T17:00:00"}, headers=bearer(ADA_TOKEN)
    )

    error = only_error(response)
    assert (error["loc"], error["code"]) == (["body", "due_at"], "invalid_datetime")
    assert_written_for_people(error)


async def test_a_limit_out_of_range_is_invalid_limit(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/me/tasks?limit=101", headers=bearer(ADA_TOKEN))

    assert only_error(response) == {
        "loc": ["query", "limit"],
        "code": "invalid_limit",
        "message": "`limit` is between 1 and 100.",
    }


async def test_a_bulk_operation_field_is_located_without_pydantic_branch_names(client: httpx.AsyncClient) -> None:
    body = {"operations": [{"op": "move", "task_ids": [1]}]}
    response = await client.post("/api/me/tasks/bulk", json=body, headers=bearer(ADA_TOKEN))

    assert only_error(response) == {
        "loc": ["body", "operations", 0, "list_id"],
        "code": "missing_field",
        "message": "This field is required.",
    }


async def test_a_domain_refusal_names_its_field_as_a_schema_refusal_does(client: httpx.AsyncClient) -> None:
    body = {"current_password": ADA_PASSWORD, "new_password": "qwertyuiop"}
    response = await client.post("/api/auth/password", json=body, headers=bearer(ADA_TOKEN))

    assert only_error(response, "weak_password") == {
        "loc": ["body", "new_password"],
        "code": "weak_password",
        "message": "This password is too common; choose another.",
    }


async def test_a_domain_refusal_of_the_request_as_a_whole_has_an_empty_loc(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/me/tasks?deleted=true&status=completed", headers=bearer(ADA_TOKEN))

    body = assert_problem(response, 422, "invalid_filter")
    assert body["errors"] == [{"loc": [], "code": "invalid_filter", "message": body["detail"]}]


async def test_several_refusals_are_listed_together(client: httpx.AsyncClient) -> None:
    response = await client.post(SIGNUP, json={"email": "nope", "password": "short", "extra": 1})

    body = assert_problem(response, 422, "validation_failed")
    assert sorted(error["code"] for error in body["errors"]) == ["invalid_email", "password_too_short", "unknown_field"]
    for error in body["errors"]:
        assert_written_for_people(error)


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "loc", "code"),
    [
        ("PATCH", "/api/me/tasks/1", {"json": {"title": "T"}, "headers": {"If-Match": "3"}}, ["header", "if-match"],
         "invalid_header"),
        ("POST", "/api/me/tasks/bulk", {"json": {"operations": [{"op": "archive", "task_ids": [1]}]}},
         ["body", "operations", 0], "invalid_choice"),
        ("POST", "/api/me/tasks", {"json": ["title"]}, ["body"], "wrong_type"),
        ("POST", "/api/me/tasks", {}, ["body"], "missing_field"),
        ("GET", "/api/me/tasks?status=done", {}, ["query", "status"], "invalid_choice"),
        ("GET", "/api/me/tasks?tag=%20", {}, ["query", "tag", 0], "invalid_tag"),
        ("GET", "/api/me/tasks?parent_id=top", {}, ["query", "parent_id"], "invalid_parent"),
        ("POST", "/api/me/lists", {"json": {"name": " "}}, ["body", "name"], "invalid_list_name"),
        ("POST", "/api/me/lists", {"json": {"name": "L", "color": "plaid"}}, ["body", "color"], "invalid_color"),
        ("POST", "/api/me/tasks/1/move", {"json": {"before_id": 2, "after_id": 3}}, ["body"], "invalid_move"),
        ("POST", "/api/me/tasks", {"json": {"title": "T", "parent_id": None}}, ["body", "parent_id"],
         "null_not_allowed"),
        ("POST", "/api/me/tasks/1/move", {"json": {"list_id": None}}, ["body", "list_id"], "null_not_allowed"),
    ],
)  # fmt: skip
async def test_each_place_a_value_can_be_refused_gets_a_located_code_of_ours(
    client: httpx.AsyncClient, method: str, path: str, kwargs: dict[str, Any], loc: list[Any], code: str
) -> None:
    kwargs["headers"] = bearer(ADA_TOKEN) | kwargs.get("headers", {})
    response = await client.request(method, path, **kwargs)

    error = only_error(response)
    assert (error["loc"], error["code"]) == (loc, code)
    assert_written_for_people(error)
