"""/api/{user_id}/tasks: the SPA's task contract. `me` stands for the token's subject.

Every route takes one dependency, `TaskOwner`: the caller, checked against the path's `{user_id}`
(401 or 403 before any task is looked at), with the use cases to act with.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Header, Path, Query, Request, Response, status

from todo_api.adapters.http.deps import TaskOwner
from todo_api.adapters.http.problems import problem_responses
from todo_api.adapters.http.schemas import (
    ENTITY_TAGS,
    MAX_ENTITY_TAGS_CHARS,
    CompletionUpdate,
    IsoDateTime,
    PriorityLabel,
    Tag,
    TaskCreate,
    TaskOut,
    TaskPageOut,
    TaskReplace,
    TaskUpdate,
)
from todo_api.domain.errors import InvalidInput
from todo_api.domain.tasks import (
    MAX_SEARCH_CHARS,
    MAX_TAGS,
    UNSET,
    Priority,
    Sort,
    Task,
    TaskChanges,
    TaskDraft,
    TaskFilter,
    TaskQuery,
)

SortParam = Literal[
    "created_at", "-created_at", "updated_at", "-updated_at", "due_at", "-due_at", "priority", "-priority",
    "title", "-title", "created", "-created", "due_date", "-due_date", "position", "-position",
]  # fmt: skip
ParentParam = Annotated[
    str | None,
    Query(
        pattern=r"^(?:none|[1-9][0-9]{0,17})$",
        description="`none`: top-level tasks only; a task's id: its subtasks.",
        examples=["none"],
    ),
]
MAX_TASK_ID = 2**63 - 1


TaskId = Annotated[int, Path(ge=1, le=MAX_TASK_ID)]
IfMatch = Annotated[
    str | None,
    Header(
        max_length=MAX_ENTITY_TAGS_CHARS,
        pattern=ENTITY_TAGS,
        description='The task\'s ETag, e.g. `"3"` (or `*`); 412 if stale.',
    ),
]
IfNoneMatch = Annotated[
    str | None,
    Header(
        max_length=MAX_ENTITY_TAGS_CHARS,
        pattern=ENTITY_TAGS,
        description="The ETag you hold; 304 while the task is still at that version.",
    ),
]
Search = Annotated[str | None, Query(max_length=MAX_SEARCH_CHARS, description="Searches title and description.")]
Cursor = Annotated[str | None, Query(max_length=512)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Retrying with the same key and body within 24 hours returns the first response.",
    ),
]


_OPAQUE_TAG = re.compile(r'"([^"]*)"')


def etag(task: Task) -> str:
    return f'"{task.version}"'


def _versions(header: str | None) -> frozenset[int] | None:
    """`If-Match` as the versions it accepts; `*` (or no header) accepts any. Tags that are not
    ours match nothing, so they end in 412 like any stale tag. (The header's syntax is checked by
    its pattern: a list of quoted tags, whose content may itself hold a comma.)"""
    if header is None or header == "*":
        return None
    return frozenset(int(tag) for tag in _OPAQUE_TAG.findall(header) if tag.isdigit() and len(tag) < 10)


def _next_link(request: Request, cursor: str) -> str:
    """The same query with the next cursor, as a relative reference (RFC 8288 resolves it against
    the request's URL): right behind any proxy, whatever host or scheme the app itself sees."""
    query = [(name, value) for name, value in request.query_params.multi_items() if name != "cursor"]
    return f'<{request.scope["path"]}?{urlencode([*query, ("cursor", cursor)])}>; rel="next"'


def _draft(body: TaskCreate | TaskReplace) -> TaskDraft:
    return TaskDraft(
        title=body.title,
        description=body.description,
        priority=Priority.of(body.priority),
        tags=tuple(body.tags),
        due_at=body.due_at,
        completed=body.completed,
        list_id=body.list_id if isinstance(body, TaskCreate) else None,
        parent_id=body.parent_id if isinstance(body, TaskCreate) else None,
    )


_NOT_NULLABLE = ("title", "priority", "tags", "completed")


def _changes(body: TaskUpdate) -> TaskChanges:
    sent = body.model_fields_set
    if nulls := [name for name in _NOT_NULLABLE if name in sent and getattr(body, name) is None]:
        raise InvalidInput(f"{', '.join(nulls)} cannot be null.", code="null_not_allowed")
    return TaskChanges(
        title=body.title if body.title is not None else UNSET,
        description=body.description if "description" in sent else UNSET,
        priority=Priority.of(body.priority) if body.priority is not None else UNSET,
        tags=tuple(body.tags) if body.tags is not None else UNSET,
        due_at=body.due_at if "due_at" in sent else UNSET,
        completed=body.completed if body.completed is not None else UNSET,
    )


router = APIRouter(prefix="/api/{user_id}/tasks", tags=["tasks"])


@router.get(
    "",
    operation_id="listTasks",
    summary="A page of your tasks, filtered, searched and sorted",
    description='Keyset pagination: follow `meta.next_cursor` (or the `Link: rel="next"` header) '
    "until it is null. A cursor is only valid with the sort it was issued for.",
    responses=problem_responses(400, 401, 403, 422),
)
async def list_tasks(
    caller: TaskOwner,
    request: Request,
    response: Response,
    status_: Annotated[Literal["all", "pending", "completed"], Query(alias="status")] = "all",
    priority: Annotated[list[PriorityLabel], Query(max_length=4)] = [],  # noqa: B006 - FastAPI copies it
    tag: Annotated[list[Tag], Query(max_length=MAX_TAGS, description="All must match.")] = [],  # noqa: B006
    q: Search = None,
    due_before: IsoDateTime | None = None,
    due_after: IsoDateTime | None = None,
    overdue: bool = False,
    sort: SortParam = "-created_at",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Cursor = None,
    include_total: bool = False,
    list_id: Annotated[int | None, Query(ge=1, le=MAX_TASK_ID, description="Only the tasks of this list.")] = None,
    parent_id: ParentParam = None,
) -> TaskPageOut:
    order = Sort.parse(sort)
    parent = None if parent_id in (None, "none") else int(parent_id)
    query = TaskQuery(
        filter=TaskFilter(
            status=status_,
            priorities=frozenset(Priority.of(p) for p in priority),
            tags=tuple(tag),
            search=q,
            due_before=due_before,
            due_after=due_after,
            overdue=overdue,
            list_id=list_id,
            parent_id=parent,
            top_level=parent_id == "none",
        ),
        sort=order,
        limit=limit,
        after=caller.services.cursors.decode(cursor, order) if cursor else None,
    )
    page = await caller.use_cases.list_tasks.execute(caller.user_id, query, include_total=include_total)
    next_cursor = caller.services.cursors.encode(order, page.next_position) if page.next_position else None
    if next_cursor:
        response.headers["Link"] = _next_link(request, next_cursor)
    return TaskPageOut.of(page.tasks, next_cursor=next_cursor, limit=limit, total=page.total)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    operation_id="createTask",
    summary="Create a task",
    responses=problem_responses(401, 403, 422),
)
async def create_task(
    body: TaskCreate,
    caller: TaskOwner,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> TaskOut:
    created = await caller.use_cases.create_task.execute(caller.user_id, _draft(body), idempotency_key)
    response.headers["Location"] = f"/api/{caller.user_id}/tasks/{created.task.id}"
    response.headers["ETag"] = etag(created.task)
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return TaskOut.of(created.task)


@router.get(
    "/{task_id}",
    operation_id="getTask",
    response_model=TaskOut,
    summary="One task",
    description="Send `If-None-Match` with the ETag you hold to get 304 when nothing changed.",
    responses={304: {"description": "Not Modified"}, **problem_responses(401, 403, 404, 422)},
)
async def get_task(
    task_id: TaskId,
    caller: TaskOwner,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> TaskOut | Response:
    task = await caller.use_cases.get_task.execute(caller.user_id, task_id)
    if if_none_match is not None and (if_none_match == "*" or task.version in (_versions(if_none_match) or ())):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag(task)})
    response.headers["ETag"] = etag(task)
    return TaskOut.of(task)


@router.put(
    "/{task_id}",
    operation_id="replaceTask",
    summary="Replace a task",
    responses=problem_responses(401, 403, 404, 412, 422),
)
async def replace_task(
    task_id: TaskId,
    body: TaskReplace,
    caller: TaskOwner,
    response: Response,
    if_match: IfMatch = None,
) -> TaskOut:
    changes = TaskChanges.replacing_with(_draft(body))
    task = await caller.use_cases.update_task.execute(caller.user_id, task_id, changes, if_match=_versions(if_match))
    response.headers["ETag"] = etag(task)
    return TaskOut.of(task)


@router.patch(
    "/{task_id}",
    operation_id="updateTask",
    summary="Change some fields of a task",
    responses=problem_responses(401, 403, 404, 412, 422),
)
async def update_task(
    task_id: TaskId,
    body: TaskUpdate,
    caller: TaskOwner,
    response: Response,
    if_match: IfMatch = None,
) -> TaskOut:
    task = await caller.use_cases.update_task.execute(
        caller.user_id, task_id, _changes(body), if_match=_versions(if_match)
    )
    response.headers["ETag"] = etag(task)
    return TaskOut.of(task)


@router.patch(
    "/{task_id}/complete",
    operation_id="toggleTaskCompletion",
    summary='Toggle completion, or set it with {"completed": bool}',
    responses=problem_responses(401, 403, 404, 412, 422),
)
async def toggle_completion(
    task_id: TaskId,
    caller: TaskOwner,
    response: Response,
    body: CompletionUpdate | None = None,
    if_match: IfMatch = None,
) -> TaskOut:
    completed = body.completed if body else None
    task = await caller.use_cases.set_task_completion.execute(
        caller.user_id, task_id, completed, if_match=_versions(if_match)
    )
    response.headers["ETag"] = etag(task)
    return TaskOut.of(task)


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="deleteTask",
    summary="Delete a task",
    responses=problem_responses(401, 403, 404, 412, 422),
)
async def delete_task(task_id: TaskId, caller: TaskOwner, if_match: IfMatch = None) -> None:
    await caller.use_cases.delete_task.execute(caller.user_id, task_id, if_match=_versions(if_match))
