"""The response headers a client reads, declared on every response that carries them, so a
generated client types them and a reader of the document knows they exist.

Routers set the headers; this table says which operations do. tests/unit/http/test_response_headers.py
checks the table against what the server actually sends.
"""

from __future__ import annotations

from typing import Any, Final

HEADERS: Final[dict[str, dict[str, Any]]] = {
    "X-Request-ID": {
        "description": "This request's id (yours, if you sent a sane one): quote it when reporting a problem.",
        "schema": {"type": "string"},
    },
    "ETag": {
        "description": 'The version, quoted (`"3"`; a list\'s is `"version.open_count.total_count"`): send it '
        "back as `If-Match` or `If-None-Match`.",
        "schema": {"type": "string"},
    },
    "Location": {"description": "The resource's path.", "schema": {"type": "string"}},
    "Link": {
        "description": 'The next page, `</api/me/tasks?limit=20&cursor=...>; rel="next"`; absent on the last page.',
        "schema": {"type": "string"},
    },
    "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}},
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "WWW-Authenticate": {
        "description": 'The bearer challenge (RFC 6750), e.g. `Bearer error="invalid_token"`.',
        "schema": {"type": "string"},
    },
}

ETAG_OPERATIONS: Final = frozenset(
    {
        "getTask", "createTask", "replaceTask", "updateTask", "toggleTaskCompletion", "moveTask", "restoreTask",
        "skipOccurrence",
        "getList", "createList", "updateList", "moveList", "restoreList",
    }
)  # fmt: skip
LOCATION_OPERATIONS: Final = frozenset({"createTask", "restoreTask", "createList", "restoreList", "createWebhook"})
LINK_OPERATIONS: Final = frozenset(
    {
        "listTasks",
        "listLists",
        "listConversations",
        "listConversationMessages",
        "listWebhookDeliveries",
        "listReminders",
    }
)
REPLAYED_OPERATIONS: Final = frozenset({"createTask", "bulkChangeTasks"})


def headers_of(operation_id: str, status: str) -> list[str]:
    """The headers a response of `operation_id` with `status` can carry."""
    names = ["X-Request-ID"]
    success = status.startswith("2")
    if operation_id in ETAG_OPERATIONS and (success or status in {"304", "412"}):
        names.append("ETag")
    if success and operation_id in LOCATION_OPERATIONS:
        names.append("Location")
    if success and operation_id in LINK_OPERATIONS:
        names.append("Link")
    if success and operation_id in REPLAYED_OPERATIONS:
        names.append("Idempotent-Replayed")
    if status in {"429", "503"}:
        names.append("Retry-After")
    if status == "401":
        names.append("WWW-Authenticate")
    return names


def declare_response_headers(openapi: dict[str, Any]) -> dict[str, Any]:
    openapi.setdefault("components", {})["headers"] = {name: dict(spec) for name, spec in HEADERS.items()}
    for path_item in openapi.get("paths", {}).values():
        for operation in path_item.values():
            operation_id = operation.get("operationId", "")
            for status, response in operation.get("responses", {}).items():
                declared = response.setdefault("headers", {})
                for name in headers_of(operation_id, status):
                    declared.setdefault(name, {"$ref": f"#/components/headers/{name}"})
    return openapi
