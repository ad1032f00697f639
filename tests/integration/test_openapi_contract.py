"""/openapi.json is what the SPA generates its client from: readable operation ids, every response and
every error typed, and a real TypeScript client (openapi-typescript + openapi-fetch) that type-checks."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.tasks_support import create_task, sign_up

OPENAPI_CLIENT_DIR = Path(__file__).parent / "openapi_client"
GENERATED_DIR = OPENAPI_CLIENT_DIR / "generated"
PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"
BULK_PROBLEM_REF = "#/components/schemas/BulkProblem"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
GENERATE_TIMEOUT_S = 120
TSC_TIMEOUT_S = 240
MAX_BODY_BYTES = 64 * 1024  # Settings.max_body_bytes' default, which the `app` fixture keeps

TASK_OPERATIONS = {
    "listTasks",
    "createTask",
    "getTask",
    "replaceTask",
    "updateTask",
    "deleteTask",
    "toggleTaskCompletion",
    "moveTask",
    "bulkChangeTasks",
    "restoreTask",
    "skipOccurrence",
    "completeAllTasks",
    "clearCompletedTasks",
    "getSummary",
    "listTags",
}
REMINDER_OPERATIONS = {"listReminders", "snoozeReminder"}
LIST_OPERATIONS = {"listLists", "createList", "getList", "updateList", "moveList", "deleteList", "restoreList"}
CHANGE_OPERATIONS = {"listChanges"}
AUTH_OPERATIONS = {"signUp", "logIn", "issueToken", "refreshSession", "logOut", "getCurrentUser", "changePassword"}
ACCOUNT_OPERATIONS = {"updateCurrentUser", "deleteCurrentUser", "exportCurrentUser", "listSessions", "endSession"}
HEALTH_OPERATIONS = {"getLiveness", "getReadiness"}
WEBHOOK_OPERATIONS = {"listWebhooks", "createWebhook", "deleteWebhook", "listWebhookDeliveries"}
EVENT_OPERATIONS = {"streamEvents", "createStreamTicket"}
CHAT_OPERATIONS = {"chat", "listConversations", "listConversationMessages", "deleteConversation"}
STREAMING_OPERATIONS = {"streamEvents"}  # 200 is text/event-stream (docs/events.md), not JSON
OPERATION_IDS = (
    TASK_OPERATIONS
    | REMINDER_OPERATIONS
    | LIST_OPERATIONS
    | CHANGE_OPERATIONS
    | AUTH_OPERATIONS
    | ACCOUNT_OPERATIONS
    | HEALTH_OPERATIONS
    | WEBHOOK_OPERATIONS
    | EVENT_OPERATIONS
    | CHAT_OPERATIONS
)
BEARER_OPERATIONS = (
    TASK_OPERATIONS
    | REMINDER_OPERATIONS
    | LIST_OPERATIONS
    | CHANGE_OPERATIONS
    | WEBHOOK_OPERATIONS
    | EVENT_OPERATIONS
    | CHAT_OPERATIONS
    | ACCOUNT_OPERATIONS
    | {"getCurrentUser", "changePassword"}
)

# What each task and list route can answer besides 401/403 (see routers/tasks.py, routers/lists.py and
# use_cases/): 404 for an unknown task, list or parent, 409 for a list name taken or a list that cannot
# go, 412 for a stale If-Match, 422 for an invalid path, query, header or body (or a move or bulk change
# the rules refuse).
ROUTE_ERRORS: dict[str, set[int]] = {
    "listTasks": {400, 422},  # 400: a cursor this API did not issue
    "createTask": {422},
    "getTask": {404, 422},
    "replaceTask": {404, 412, 422},
    "updateTask": {404, 412, 422},
    "toggleTaskCompletion": {404, 412, 422},
    "deleteTask": {404, 412, 422},
    "moveTask": {404, 412, 422},  # 422: cycle, too_deep, not_a_sibling, list_mismatch, invalid_move
    "bulkChangeTasks": {422},  # 422: bulk_not_applied (a BulkProblem), too_many_tasks, a malformed body
    "skipOccurrence": {404, 412, 422},  # 422: not_recurring, task_completed, series_ended
    "listReminders": {400, 422},  # 400: a cursor this API did not issue; 422: invalid_window
    "snoozeReminder": {404, 422},  # 404: reminder_not_found
    "listLists": {400, 422},
    "createList": {409, 422},  # 409: list_name_taken; 422: too_many_lists
    "getList": {404, 422},
    "updateList": {404, 409, 412, 422},
    "moveList": {404, 412, 422},  # 404: the list or its neighbour; 422: invalid_move
    "deleteList": {404, 409, 412, 422},  # 409: list_not_empty, inbox_not_deletable
    "restoreTask": {404, 409, 422},  # 409: deleted_with_parent, deleted_with_list
    "restoreList": {404, 409, 422},  # 409: list_name_taken; 422: too_many_lists
    "listChanges": {410, 422},  # 410: sync_token_expired
    "completeAllTasks": {422},
    "clearCompletedTasks": {422},  # 422: without status=completed
    "getSummary": {422},  # 422: unknown_time_zone
    "listTags": {422},
    "listWebhooks": {422},
    "createWebhook": {422},  # unsafe_webhook_url, invalid_webhook_url, too_many_webhooks
    "deleteWebhook": {404, 422},
    "listWebhookDeliveries": {400, 404, 422},  # 400: a cursor this API did not issue
    # 410: a resume point past retention; 429: past the per-person cap; 503: shutting down
    "streamEvents": {410, 422, 429, 503},
    "createStreamTicket": {422},
    # 404: conversation_not_found; 503: chat_not_configured, chat_model_unavailable
    "chat": {404, 422, 503},
    "listConversations": {400, 422},
    "listConversationMessages": {400, 404, 422},
    "deleteConversation": {404, 422},
}
# 503 + Retry-After when a write cannot settle: use_cases/tasks.py, CreateTask (a request with the same
# Idempotency-Key is still in progress) and _write (the task keeps changing under us); MoveTask and the
# list writes after their retries of a transient conflict; use_cases/bulk.py as CreateTask does.
RETRY_LATER = {
    "createTask",
    "replaceTask",
    "updateTask",
    "toggleTaskCompletion",
    "moveTask",
    "bulkChangeTasks",
    "createList",
    "updateList",
    "moveList",
    "deleteList",
    "restoreTask",
    "restoreList",
    "skipOccurrence",
    "snoozeReminder",
    "completeAllTasks",
    "clearCompletedTasks",
    "updateCurrentUser",
    "deleteCurrentUser",
    "endSession",
}
# Error responses whose problem type adds members to Problem (RFC 9457 §3.2), and only these: each is
# checked to carry every Problem member unchanged, plus its own.
EXTENDED_PROBLEMS: dict[tuple[str, str], str] = {("bulkChangeTasks", "422"): BULK_PROBLEM_REF}


class Operation:
    def __init__(self, method: str, path: str, spec: dict[str, Any]) -> None:
        self.method, self.path, self.spec = method, path, spec

    @property
    def id(self) -> str:
        return str(self.spec.get("operationId"))

    @property
    def responses(self) -> dict[str, Any]:
        responses: dict[str, Any] = self.spec.get("responses", {})
        return responses

    @property
    def json_body(self) -> bool:
        return "application/json" in self.spec.get("requestBody", {}).get("content", {})

    def url(self) -> str:
        """A concrete URL for the operation: `me` for the user, task 1, list 1, webhook 1, session `ab12`."""
        url = self.path.replace("{user_id}", "me").replace("{task_id}", "1").replace("{list_id}", "1")
        url = url.replace("{webhook_id}", "1").replace("{conversation_id}", "1").replace("{session_id}", "ab12")
        url = url.replace("{reminder_id}", "1")
        assert "{" not in url, f"{self!r}: a path parameter url() does not fill in"
        return url

    def __repr__(self) -> str:
        return f"{self.id} ({self.method.upper()} {self.path})"


def operations(document: dict[str, Any]) -> Iterator[Operation]:
    for path, item in document.get("paths", {}).items():
        for method, spec in item.items():
            if method in HTTP_METHODS:
                yield Operation(method, path, spec)


def by_id(document: dict[str, Any]) -> dict[str, Operation]:
    return {operation.id: operation for operation in operations(document)}


def is_error(status: str) -> bool:
    return status[:1] in "45" or status == "default"


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str):
        return schema
    target: Any = document
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    assert isinstance(target, dict)
    return target


@pytest.fixture
async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


# --- the document, checked in Python ---------------------------------------------------------------


async def test_operation_ids_are_the_names_the_spa_calls(openapi: dict[str, Any]) -> None:
    ids = [operation.id for operation in operations(openapi)]

    assert len(ids) == len(set(ids)), f"duplicate operation ids: {sorted(ids)}"
    assert set(ids) == OPERATION_IDS


async def test_every_error_response_is_a_problem_and_only_a_problem(openapi: dict[str, Any]) -> None:
    """Exactly `Problem`, but for the few EXTENDED_PROBLEMS, which are exactly their own subtype."""
    wrong = []
    for operation in operations(openapi):
        for status, response in operation.responses.items():
            if not is_error(status):
                continue
            expected = EXTENDED_PROBLEMS.get((operation.id, status), PROBLEM_REF)
            content = response.get("content", {})
            schema = content.get(PROBLEM_MEDIA_TYPE, {}).get("schema")
            if set(content) != {PROBLEM_MEDIA_TYPE} or schema != {"$ref": expected}:
                wrong.append(f"{operation!r} {status}: {json.dumps(content)}, expected {expected}")

    assert not wrong, "error responses that are not exactly application/problem+json Problem:\n" + "\n".join(wrong)


async def test_a_bulk_problem_is_a_problem_with_the_results_of_each_task(openapi: dict[str, Any]) -> None:
    """A client that handles Problem handles BulkProblem: the same members, typed and required alike,
    plus `results`, one BulkResultOut per task; nothing else."""
    schemas = openapi["components"]["schemas"]
    problem, bulk_problem = schemas["Problem"], resolve(openapi, {"$ref": BULK_PROBLEM_REF})
    properties = bulk_problem["properties"]

    assert set(properties) == set(problem["properties"]) | {"results"}, f"BulkProblem's members: {sorted(properties)}"
    for name, schema in problem["properties"].items():
        assert properties[name] == schema, f"BulkProblem.{name} differs from Problem.{name}"
    assert set(bulk_problem["required"]) == set(problem["required"]), "BulkProblem requires what Problem requires"
    (results,) = (variant for variant in properties["results"]["anyOf"] if variant.get("type") == "array")
    result = resolve(openapi, results["items"])
    assert set(result["required"]) == set(result["properties"]) == {"task_id", "op", "code", "message"}
    bulk_out = schemas["BulkOut"]
    assert bulk_out["properties"]["results"]["items"] == results["items"], "a 200 and a 422 type results alike"


async def test_a_bulk_not_applied_answer_is_the_bulk_problem_the_document_declares(
    openapi: dict[str, Any], client: httpx.AsyncClient
) -> None:
    """What the SPA reads in a 422 `bulk_not_applied` is what its generated types promise."""
    user = await sign_up(client)
    mine = (await create_task(client, user, title="Mine"))["id"]
    body = {"operations": [{"op": "complete", "task_ids": [mine, mine + 1000]}]}

    response = await client.post("/api/me/tasks/bulk", json=body, headers=user.headers)

    assert (response.status_code, response.headers["content-type"]) == (422, PROBLEM_MEDIA_TYPE), response.text
    answer = response.json()
    bulk_problem = resolve(openapi, {"$ref": BULK_PROBLEM_REF})
    assert set(bulk_problem["required"]) <= set(answer) <= set(bulk_problem["properties"]), answer
    assert answer["code"] == "bulk_not_applied"
    result_schema = resolve(openapi, {"$ref": "#/components/schemas/BulkResultOut"})
    assert all(set(result) == set(result_schema["required"]) for result in answer["results"]), answer
    assert [(result["task_id"], result["op"], result["code"]) for result in answer["results"]] == [
        (mine, "complete", "ok"),
        (mine + 1000, "complete", "task_not_found"),
    ]


async def test_every_operation_declares_a_500_problem(openapi: dict[str, Any]) -> None:
    missing = [repr(operation) for operation in operations(openapi) if "500" not in operation.responses]
    assert not missing, f"operations without a 500 Problem: {missing}"


async def test_the_problem_schema_types_what_a_client_reads(openapi: dict[str, Any]) -> None:
    problem = openapi["components"]["schemas"]["Problem"]
    properties = problem["properties"]

    assert set(problem["required"]) == {"type", "title", "status", "detail", "instance", "code", "request_id"}
    assert properties["code"]["type"] == "string"
    assert properties["request_id"]["type"] == "string"
    assert properties["status"]["type"] == "integer"
    items = properties["errors"]["anyOf"][0]["items"]
    assert set(resolve(openapi, items)["required"]) == {"loc", "message", "code"}


async def test_every_success_response_is_typed(openapi: dict[str, Any]) -> None:
    wrong = []
    for operation in operations(openapi):
        for status, response in operation.responses.items():
            if not status.startswith("2"):
                continue
            content = response.get("content", {})
            if status == "204":
                if content:
                    wrong.append(f"{operation!r} 204 declares a body: {list(content)}")
                continue
            if operation.id in STREAMING_OPERATIONS:
                stream = content.get("text/event-stream", {})
                if set(content) != {"text/event-stream"} or stream.get("schema") != {"type": "string"}:
                    wrong.append(f"{operation!r} {status} is not a text/event-stream: {json.dumps(content)}")
                elif not stream.get("example", "").startswith("retry: "):
                    wrong.append(f"{operation!r} {status} has no example stream")
                continue
            schema = content.get("application/json", {}).get("schema")
            if not schema:
                wrong.append(f"{operation!r} {status} has no application/json schema: {json.dumps(content)}")
            elif "$ref" not in schema and not schema.get("type"):
                wrong.append(f"{operation!r} {status} has an untyped schema: {json.dumps(schema)}")
        if not any(status.startswith("2") for status in operation.responses):
            wrong.append(f"{operation!r} declares no 2xx response")

    assert not wrong, "\n".join(wrong)


async def test_an_oauth2_password_scheme_guards_the_bearer_operations(openapi: dict[str, Any]) -> None:
    schemes = openapi["components"]["securitySchemes"]
    oauth2 = {name for name, scheme in schemes.items() if scheme["type"] == "oauth2"}
    assert len(oauth2) == 1, schemes
    (name,) = oauth2
    assert schemes[name]["flows"]["password"]["tokenUrl"] == "/api/auth/token"

    secured = {}
    for operation in operations(openapi):
        if requirements := operation.spec.get("security"):
            secured[operation.id] = requirements
    assert set(secured) == BEARER_OPERATIONS
    for operation_id, requirements in secured.items():
        assert requirements == [{name: []}], f"{operation_id}: {requirements}"


async def test_every_bearer_operation_declares_401(openapi: dict[str, Any]) -> None:
    missing = [
        repr(operation)
        for operation in operations(openapi)
        if (operation.spec.get("security") or operation.id in BEARER_OPERATIONS) and "401" not in operation.responses
    ]
    assert not missing, f"operations that need a bearer token but do not declare 401: {missing}"


async def test_bearer_operations_really_answer_401_without_a_token(
    openapi: dict[str, Any], client: httpx.AsyncClient
) -> None:
    """The document's `security` is the truth: each such operation refuses an anonymous call with 401."""
    for operation_id in sorted(BEARER_OPERATIONS):
        operation = by_id(openapi)[operation_id]
        response = await client.request(operation.method, operation.url())
        assert response.status_code == 401, f"{operation!r}: {response.status_code} {response.text}"
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE


@pytest.mark.parametrize("operation_id", sorted(ROUTE_ERRORS))
async def test_task_and_list_routes_declare_the_errors_they_can_return(
    openapi: dict[str, Any], operation_id: str
) -> None:
    operation = by_id(openapi)[operation_id]
    declared = {int(status) for status in operation.responses if status.isdigit()}

    assert ROUTE_ERRORS[operation_id] | {401, 403, 500} <= declared, f"{operation!r} declares {sorted(declared)}"


async def test_every_task_and_list_route_has_its_errors_listed(openapi: dict[str, Any]) -> None:
    """A new route under /tasks or /lists cannot go unchecked by the test above."""
    routes = {operation.id for operation in operations(openapi) if operation.path.startswith("/api/{user_id}/")}
    assert (
        routes
        == set(ROUTE_ERRORS)
        == TASK_OPERATIONS
        | REMINDER_OPERATIONS
        | LIST_OPERATIONS
        | CHANGE_OPERATIONS
        | WEBHOOK_OPERATIONS
        | EVENT_OPERATIONS
        | CHAT_OPERATIONS
    )


# --- problems found in the document: these fail until src/ declares what it sends --------------------


async def test_writes_declare_503_when_they_ask_to_retry(openapi: dict[str, Any]) -> None:
    """CreateTask and a bulk change answer 503 while a request with the same Idempotency-Key is in
    progress; PUT, PATCH, the completion toggle, a move and the list writes answer 503 when the
    database keeps aborting them as transient conflicts (use_cases/retries.py)."""
    missing = [repr(by_id(openapi)[op]) for op in sorted(RETRY_LATER) if "503" not in by_id(openapi)[op].responses]
    assert not missing, f"operations that can answer 503 but do not declare it: {missing}"


async def test_json_body_operations_declare_the_errors_any_body_can_cause(
    openapi: dict[str, Any], client: httpx.AsyncClient
) -> None:
    """Malformed JSON is 400 `malformed_json` (problems.py) and an oversized body is 413 (middleware.py),
    on every operation that takes a JSON body, before authentication: the SPA sees both, so both are typed."""
    undeclared = []
    body_operations = [operation for operation in operations(openapi) if operation.json_body]
    assert body_operations
    for operation in body_operations:
        malformed = await client.request(
            operation.method, operation.url(), content=b'{"title": ', headers={"Content-Type": "application/json"}
        )
        oversized = await client.request(
            operation.method,
            operation.url(),
            content=b'{"title": "' + b"x" * MAX_BODY_BYTES + b'"}',
            headers={"Content-Type": "application/json"},
        )
        for response in (malformed, oversized):
            assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE, f"{operation!r}: {response.text}"
            assert response.status_code in (400, 413), f"{operation!r}: {response.status_code} {response.text}"
            if str(response.status_code) not in operation.responses:
                undeclared.append(f"{operation!r} answers {response.status_code} {response.json()['code']}")

    assert not undeclared, "statuses the API sends but the document does not declare:\n" + "\n".join(undeclared)


async def test_response_fields_the_server_always_sends_are_required(openapi: dict[str, Any]) -> None:
    """Every response model is serialized whole (no exclude_unset), so each of its fields is always present.
    A field with a default that is not `required` is typed `field?: T` by client generators."""
    seen: set[str] = set()
    optional: list[str] = []

    def visit(schema: dict[str, Any]) -> None:
        ref = schema.get("$ref")
        if isinstance(ref, str):
            if ref in seen:
                return
            seen.add(ref)
            target = resolve(openapi, schema)
            name = ref.rsplit("/", 1)[-1]
            required = set(target.get("required", ()))
            optional.extend(f"{name}.{field}" for field in target.get("properties", {}) if field not in required)
            visit(target)
            return
        for value in schema.get("properties", {}).values():
            visit(value)
        for key in ("anyOf", "oneOf", "allOf"):
            for value in schema.get(key, ()):
                visit(value)
        if isinstance(schema.get("items"), dict):
            visit(schema["items"])

    for operation in operations(openapi):
        for status, response in operation.responses.items():
            if status.startswith("2"):
                for media in response.get("content", {}).values():
                    visit(media.get("schema", {}))

    assert not optional, f"response fields always sent but not required: {sorted(set(optional))}"


# --- the document, checked by the TypeScript toolchain the SPA uses ------------------------------


def _node_tools() -> str:
    node, npx = shutil.which("node"), shutil.which("npx")
    if node is None or npx is None:
        pytest.skip(
            "Node.js is missing: the TypeScript client check did not run; the OpenAPI document was NOT "
            "checked against openapi-typescript and tsc. Install nodejs and npm, then run `npm ci` in "
            "tests/integration/openapi_client (CI's .ci/run does both)"
        )
    modules = OPENAPI_CLIENT_DIR / "node_modules"
    for tool in ("openapi-typescript", "tsc"):
        if not (modules / ".bin" / tool).exists():
            pytest.fail(
                f"{modules / '.bin' / tool} is missing: run `npm ci` in tests/integration/openapi_client "
                "(CI's .ci/run and `make integration` do) so the TypeScript client check can run"
            )
    return npx


def _run(command: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0", "npm_config_update_notifier": "false"}
    try:
        return subprocess.run(
            command,
            cwd=OPENAPI_CLIENT_DIR,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        output = error.output.decode() if isinstance(error.output, bytes) else (error.output or "")
        pytest.fail(f"`{' '.join(command)}` did not finish within {timeout_s} s:\n{output}")


def _without_npm_noise(output: str) -> str:
    return "\n".join(line for line in output.splitlines() if not re.match(r"npm (warn|notice)", line))


async def test_a_typescript_client_generated_from_the_document_type_checks(client: httpx.AsyncClient) -> None:
    """openapi-typescript turns /openapi.json into `paths`; tsc checks client.ts, which calls the task, list,
    move and bulk operations through openapi-fetch, reads a Problem's `code` and `request_id` and a
    BulkProblem's `results`, and expects wrong calls (an unknown priority, a numeric title or colour, a bulk
    `move` without its list) to be refused, so the types are neither missing nor `any`."""
    npx = _node_tools()
    response = await client.get("/openapi.json")
    assert response.status_code == 200, response.text
    GENERATED_DIR.mkdir(exist_ok=True)
    (GENERATED_DIR / "api.d.ts").unlink(missing_ok=True)
    (GENERATED_DIR / "openapi.json").write_text(json.dumps(response.json(), indent=2) + "\n", encoding="utf-8")

    # --default-non-nullable false: a request field with a default (a task's `priority`) stays optional;
    # openapi-typescript 7 otherwise makes it required in components it cannot tell are request bodies.
    generate = [
        npx, "--no", "--", "openapi-typescript", "generated/openapi.json",
        "--default-non-nullable", "false", "-o", "generated/api.d.ts",
    ]  # fmt: skip
    generated = await asyncio.to_thread(_run, generate, GENERATE_TIMEOUT_S)
    assert generated.returncode == 0, (
        f"openapi-typescript failed (exit code {generated.returncode}):\n{_without_npm_noise(generated.stdout)}"
    )
    assert (GENERATED_DIR / "api.d.ts").is_file()

    checked = await asyncio.to_thread(_run, [npx, "--no", "--", "tsc", "--project", "."], TSC_TIMEOUT_S)
    assert checked.returncode == 0, (
        f"tsc found errors in tests/integration/openapi_client (exit code {checked.returncode}):\n"
        f"{_without_npm_noise(checked.stdout)}"
    )
