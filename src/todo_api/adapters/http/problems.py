"""The one error envelope, RFC 9457 `application/problem+json`, for every error the app produces.

Domain errors, HTTP errors raised by Starlette/FastAPI, validation errors and crashes all leave here.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from todo_api.adapters.http.cursors import InvalidCursor
from todo_api.adapters.http.field_errors import DOMAIN_CODES, FIELD_ERROR_CODES, field_errors
from todo_api.adapters.http.schemas import BulkResultOut
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
)

PROBLEM_MEDIA_TYPE = "application/problem+json"
_TYPE_BASE = "https://todo-api.dev/problems/"

# Every kind of DomainError, here or through the kind it subclasses. A kind missing from this table
# is a bug, not a 400: rendering it fails loudly (a logged 500) and tests/unit/http fails first.
STATUS_BY_ERROR: dict[type[DomainError], int] = {
    InvalidCursor: 400,
    InvalidInput: 422,
    NotFound: 404,
    Conflict: 409,
    AuthenticationFailed: 401,
    Forbidden: 403,
    Gone: 410,
    PreconditionFailed: 412,
    RateLimited: 429,
    ServiceUnavailable: 503,
}

# Every `code` a problem can carry, by status: the enum OpenAPI publishes and the table in
# docs/api.md (tests/unit/http/test_error_codes.py holds the three, and the codes in src/, equal).
PROBLEM_CODES: dict[int, tuple[str, ...]] = {
    400: ("bad_request", "malformed_json", "invalid_cursor"),
    401: (
        "authentication_failed",
        "missing_token",
        "invalid_token",
        "session_revoked",
        "invalid_credentials",
        "invalid_refresh_token",
        "refresh_token_reused",
        "missing_refresh_token",
        "session_ended",
        "ticket_used",
        "ticket_expired",
        "invalid_ticket",
    ),
    403: ("forbidden", "not_your_tasks", "current_password_incorrect"),
    404: (
        "not_found",
        "task_not_found",
        "list_not_found",
        "parent_not_found",
        "webhook_not_found",
        "reminder_not_found",
        "conversation_not_found",
        "session_not_found",
        "user_not_found",
    ),
    405: ("method_not_allowed",),
    409: (
        "conflict",
        "email_taken",
        "password_not_set",
        "list_name_taken",
        "list_not_empty",
        "inbox_not_deletable",
        "deleted_with_parent",
        "deleted_with_list",
    ),
    410: ("gone", "sync_token_expired"),
    412: ("precondition_failed",),
    413: ("content_too_large",),
    422: ("validation_failed", "bulk_not_applied", *DOMAIN_CODES),
    429: ("rate_limited",),
    500: ("internal_error",),
    503: (
        "service_unavailable",
        "write_conflict",
        "commit_outcome_unknown",
        "events_unavailable",
        "chat_not_configured",
        "chat_model_unavailable",
    ),
}
ALL_PROBLEM_CODES = tuple(dict.fromkeys(code for codes in PROBLEM_CODES.values() for code in codes))

_CODE_BY_STATUS = {
    400: "bad_request",
    401: "authentication_failed",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "content_too_large",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


class FieldError(BaseModel):
    """What is wrong with one field: `loc` is where (`["body", "title"]`, `["query", "sort"]`; empty
    for the request as a whole), `code` is stable, `message` is written to be shown to a person."""

    loc: list[str | int] = Field(examples=[["body", "title"]])
    code: str = Field(examples=["title_too_long"], json_schema_extra={"enum": list(FIELD_ERROR_CODES)})
    message: str = Field(examples=["A title has at most 200 characters."])


class Problem(BaseModel):
    """RFC 9457 problem details, with a stable `code` and the `request_id` to quote to support."""

    model_config = ConfigDict(title="Problem")

    type: str = Field(examples=[_TYPE_BASE + "not_found"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["Task 42 was not found."])
    instance: str = Field(examples=["/api/me/tasks/42"])
    code: str = Field(examples=["not_found"], json_schema_extra={"enum": list(ALL_PROBLEM_CODES)})
    request_id: str = Field(examples=["9f1c2d3e4b5a69788796a5b4c3d2e1f0"])
    errors: list[FieldError] | None = None


class BulkProblem(Problem):
    """A 422 of a bulk change: a field error (`errors`), or `bulk_not_applied` with a result per task."""

    model_config = ConfigDict(title="BulkProblem")

    results: list[BulkResultOut] | None = Field(
        default=None, description="With `bulk_not_applied`: `ok` for a task that could be changed, else why not."
    )


def problem_response(
    *,
    status: int,
    detail: str,
    instance: str,
    request_id: str,
    code: str | None = None,
    errors: Sequence[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
) -> Response:
    """The envelope; `extensions` adds members of the problem type's own (RFC 9457 §3.2)."""
    code = code or _CODE_BY_STATUS.get(status) or ("internal_error" if status >= 500 else "bad_request")
    body: dict[str, Any] = {
        "type": _TYPE_BASE + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": code,
        "request_id": request_id,
    }
    if errors is not None:
        body["errors"] = list(errors)
    body.update(extensions or {})
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def request_id_of(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def _domain_error_headers(exc: DomainError, status: int) -> dict[str, str]:
    if isinstance(exc, RateLimited | ServiceUnavailable):
        return {"Retry-After": str(exc.retry_after_s)}
    if isinstance(exc, PreconditionFailed) and exc.current_version is not None:
        return {"ETag": f'"{exc.current_version}"'}
    if status == 401:
        return {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    return {}


class UnmappedDomainError(LookupError):
    """A DomainError kind has no HTTP status: add it to STATUS_BY_ERROR."""


def status_of(kind: type[DomainError]) -> int:
    """The status of `kind`, or of the nearest kind it subclasses that has one."""
    for ancestor in kind.__mro__:
        if ancestor in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[ancestor]
    raise UnmappedDomainError(f"{kind.__module__}.{kind.__qualname__} has no HTTP status in STATUS_BY_ERROR")


def _domain_field_errors(request: Request, exc: DomainError) -> list[dict[str, Any]] | None:
    """A refused value is a field error like the schema's, so a form reads every 422 the same way."""
    if not isinstance(exc, InvalidInput):
        return None
    loc: list[str | int] = []
    if exc.field is not None:
        names = exc.field.split(".")
        loc = ["query" if names[0] in request.query_params else "body", *names]
    return [{"loc": loc, "code": exc.code, "message": exc.message}]


async def _on_domain_error(request: Request, exc: DomainError) -> Response:
    status = status_of(type(exc))
    return problem_response(
        status=status,
        code=exc.code,
        detail=exc.message,
        instance=request.url.path,
        request_id=request_id_of(request),
        headers=_domain_error_headers(exc, status),
        errors=_domain_field_errors(request, exc) if status == 422 else None,
    )


async def _on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        detail = "No resource lives at this path."
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        # The router names the methods of the first route that matched; Allow lists them all.
        headers["Allow"] = ", ".join(_allowed_methods(request.app.routes, request.url.path))
    return problem_response(
        status=exc.status_code,
        detail=detail,
        instance=request.url.path,
        request_id=request_id_of(request),
        headers=headers or None,
    )


def _allowed_methods(routes: Sequence[Any], path: str) -> list[str]:
    """The methods of the most literal path template matching `path`: `/tasks/bulk` is its own
    resource, though `/tasks/{task_id}` matches it too (FastAPI checks the id's type later)."""
    by_template: dict[str, set[str]] = {}
    _collect_methods(routes, path, by_template)
    if not by_template:
        return []
    return sorted(by_template[min(by_template, key=lambda template: template.count("{"))])


def _collect_methods(routes: Sequence[Any], path: str, by_template: dict[str, set[str]]) -> None:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's included routers
        if included is not None:
            _collect_methods(included.routes, path, by_template)
        elif (regex := getattr(route, "path_regex", None)) is not None and regex.match(path):
            by_template.setdefault(route.path, set()).update(getattr(route, "methods", None) or ())


async def _on_validation_error(request: Request, exc: RequestValidationError) -> Response:
    raw = exc.errors()
    if any(err.get("type") == "json_invalid" for err in raw):
        return problem_response(
            status=400,
            code="malformed_json",
            detail="The request body is not valid JSON.",
            instance=request.url.path,
            request_id=request_id_of(request),
        )
    return problem_response(
        status=422,
        detail="The request is not valid; see `errors`.",
        instance=request.url.path,
        request_id=request_id_of(request),
        errors=field_errors(raw, path=request.url.path),
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.exception_handler(DomainError)(_on_domain_error)
    app.exception_handler(StarletteHTTPException)(_on_http_error)
    app.exception_handler(RequestValidationError)(_on_validation_error)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries declaring the envelope for each status a route can return."""
    return {status: {"model": Problem, "description": HTTPStatus(status).phrase} for status in sorted({*statuses, 500})}


# One example per status, so a reader (and a mock server) sees what that status really says.
_EXAMPLES: dict[int, tuple[str, str]] = {
    400: ("malformed_json", "The request body is not valid JSON."),
    401: ("invalid_token", "The access token is invalid or has expired."),
    403: ("not_your_tasks", "You can only reach your own tasks."),
    404: ("not_found", "No resource lives at this path."),
    405: ("method_not_allowed", "Method Not Allowed"),
    409: ("conflict", "The request conflicts with existing data."),
    410: ("sync_token_expired", "This sync token is older than the change log keeps; list again."),
    412: ("precondition_failed", "It has changed since the version you sent (it is at version 4)."),
    413: ("content_too_large", "The request body exceeds 65536 bytes."),
    422: ("validation_failed", "The request is not valid; see `errors`."),
    429: ("rate_limited", "Too many attempts; try again later."),
    500: ("internal_error", "An unexpected error occurred; quote the request id when reporting it."),
    503: ("service_unavailable", "The database is unavailable; try again shortly."),
}
_NOT_FOUND_BY_PARAMETER = {
    "{task_id}": ("task_not_found", "Task 42 was not found."),
    "{list_id}": ("list_not_found", "List 7 was not found."),
    "{webhook_id}": ("webhook_not_found", "Webhook 3 was not found."),
    "{conversation_id}": ("conversation_not_found", "Conversation 5 was not found."),
}
_EXAMPLE_IDS = {"{user_id}": "me", "{task_id}": "42", "{list_id}": "7", "{webhook_id}": "3", "{conversation_id}": "5"}


def problem_example(status: int, path: str) -> dict[str, Any]:
    """A problem as the server would send it for `status` on `path` (a template)."""
    code, detail = _EXAMPLES.get(status, (_CODE_BY_STATUS.get(status, "bad_request"), HTTPStatus(status).phrase))
    if status == 404:
        code, detail = next(
            (found for parameter, found in _NOT_FOUND_BY_PARAMETER.items() if parameter in path), (code, detail)
        )
    instance = path
    for parameter, value in _EXAMPLE_IDS.items():
        instance = instance.replace(parameter, value)
    example: dict[str, Any] = {
        "type": _TYPE_BASE + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": code,
        "request_id": "9f1c2d3e4b5a69788796a5b4c3d2e1f0",
    }
    if status == 422:
        example["errors"] = [
            {"loc": ["body", "title"], "code": "title_too_long", "message": "A title has at most 200 characters."}
        ]
    return example


def complete_error_responses(openapi: dict[str, Any]) -> dict[str, Any]:
    """Declare the errors shared mechanisms add to every route, and send them as problem+json.

    Routes declare their own errors; these come from elsewhere: a body can be malformed (400) or
    too large (413), the database can be unavailable (503), anything can crash (500).
    """
    problem = {"content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    for path, path_item in openapi.get("paths", {}).items():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            shared: dict[int, bool] = {500: True, 503: operation.get("operationId") != "getLiveness"}
            if body := operation.get("requestBody"):
                shared[413] = True
                shared[400] = "application/json" in body.get("content", {})
            for status, applies in shared.items():
                if applies and str(status) not in responses:
                    responses[str(status)] = {"description": HTTPStatus(status).phrase, **problem}
            for status, response in responses.items():
                content = response.get("content", {})
                if status[:1] in "45" and "application/json" in content:
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
                if status[:1] in "45" and PROBLEM_MEDIA_TYPE in content:
                    content[PROBLEM_MEDIA_TYPE].setdefault("example", problem_example(int(status), path))
    return openapi
