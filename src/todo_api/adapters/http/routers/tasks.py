"""/api/{user_id}/tasks: the SPA's task contract. `me` stands for the token's subject.

Every route takes one dependency, `TaskOwner`: the caller, checked against the path's `{user_id}`
(401 or 403 before any task is looked at), with the use cases to act with.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response, status

from todo_api.adapters.http.deps import TaskOwner
from todo_api.adapters.http.overview_schemas import ChangedCountOut
from todo_api.adapters.http.paging import Cursor, next_link
from todo_api.adapters.http.preconditions import IfMatch, IfNoneMatch, etag, still_fresh, versions
from todo_api.adapters.http.problems import BulkProblem, problem_response, problem_responses, request_id_of
from todo_api.adapters.http.schemas import (
    BulkMove,
    BulkOut,
    BulkRequest,
    BulkStatusChange,
    BulkUpdate,
    CompletionUpdate,
    IsoDateTime,
    PriorityLabel,
    Tag,
    TaskCreate,
    TaskMove,
    TaskOut,
    TaskPageOut,
    TaskReplace,
    TaskUpdate,
    reminders_of,
)
from todo_api.domain.bulk import MAX_BULK_TASKS, BulkOperation
from todo_api.domain.errors import InvalidInput
from todo_api.domain.overview import MAX_COMPLETE_ALL_TASKS
from todo_api.domain.tasks import (
    MAX_SEARCH_CHARS,
    MAX_TAGS,
    UNSET,
    Priority,
    Sort,
    TaskChanges,
    TaskDraft,
    TaskFilter,
    TaskQuery,
)
from todo_api.use_cases.tasks import Move

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
Search = Annotated[str | None, Query(max_length=MAX_SEARCH_CHARS, description="Searches title and description.")]
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
        recurrence=body.recurrence.to_domain() if body.recurrence else None,
        reminders=reminders_of(body.reminders),
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
        recurrence=(body.recurrence.to_domain() if body.recurrence else None) if "recurrence" in sent else UNSET,
        reminders=reminders_of(body.reminders) if body.reminders is not None else UNSET,
    )


router = APIRouter(prefix="/api/{user_id}/tasks", tags=["tasks"])


@router.get(
    "",
    operation_id="listTasks",
    summary="A page of your tasks, filtered, searched and sorted",
    description='Keyset pagination: follow `meta.next_cursor` (or the `Link: rel="next"` header) '
    "until it is null. A cursor is only valid with the sort it was issued for. `sort=position` (the "
    "person's order) orders one group of siblings: `list_id` with `parent_id=none`, or `parent_id=<a task>` "
    "(422 `position_needs_group` otherwise).",
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
    recurring: Annotated[
        bool | None, Query(description="`true`: only recurring tasks; `false`: only one-off tasks.")
    ] = None,
    deleted: Annotated[
        bool,
        Query(
            description="Your deleted tasks that `POST .../restore` can bring back, latest deletion first, each "
            "with `deleted_at` (subtasks deleted with their parent come back with it and are not listed). Takes "
            "`limit` and `cursor` only."
        ),
    ] = False,
) -> TaskPageOut:
    if deleted:
        return await _deleted_tasks(caller, request, response, limit, cursor)
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
            recurring=recurring,
        ),
        sort=order,
        limit=limit,
        after=caller.services.cursors.decode(cursor, order) if cursor else None,
    )
    page = await caller.use_cases.list_tasks.execute(caller.user_id, query, include_total=include_total)
    next_cursor = caller.services.cursors.encode(order, page.next_position) if page.next_position else None
    if next_cursor:
        response.headers["Link"] = next_link(request, next_cursor)
    return TaskPageOut.of(
        page.tasks, next_cursor=next_cursor, limit=limit, total=page.total, sync_position=page.sync_position
    )


_DELETED_PARAMS = frozenset({"deleted", "limit", "cursor"})


async def _deleted_tasks(
    caller: TaskOwner, request: Request, response: Response, limit: int, cursor: str | None
) -> TaskPageOut:
    if extra := sorted(request.query_params.keys() - _DELETED_PARAMS):
        raise InvalidInput(
            f"`deleted=true` takes `limit` and `cursor` only, not {', '.join(extra)}.", code="invalid_filter"
        )
    after = caller.services.cursors.decode_deleted(cursor) if cursor else None
    page = await caller.use_cases.list_deleted_tasks.execute(caller.user_id, limit, after)
    next_cursor = caller.services.cursors.encode_deleted(page.next_position) if page.next_position else None
    if next_cursor:
        response.headers["Link"] = next_link(request, next_cursor)
    return TaskPageOut.of(page.tasks, next_cursor=next_cursor, limit=limit, total=None)


ScopeList = Annotated[int | None, Query(ge=1, le=MAX_TASK_ID, description="Only the tasks of this list.")]
ScopePriority = Annotated[list[PriorityLabel], Query(max_length=4)]
ScopeTag = Annotated[list[Tag], Query(max_length=MAX_TAGS, description="All must match.")]


def _scope(
    list_id: int | None, parent_id: str | None, priority: Sequence[str], tag: Sequence[str], overdue: bool = False
) -> TaskFilter:
    return TaskFilter(
        priorities=frozenset(Priority.of(p) for p in priority),
        tags=tuple(tag),
        overdue=overdue,
        list_id=list_id,
        parent_id=None if parent_id in (None, "none") else int(parent_id),
        top_level=parent_id == "none",
    )


@router.delete(
    "",
    operation_id="clearCompletedTasks",
    summary="Clear completed: delete every completed task (the filters narrow it), restorably",
    description="`status=completed` is required, so no request can empty your tasks by accident. Each "
    "completed task goes to the trash with its subtasks, as `DELETE .../tasks/{id}` does: "
    "`GET .../tasks?deleted=true` lists them and `POST .../tasks/{id}/restore` brings one back. One statement; "
    "the answer counts every task deleted, and the change feed has a `task.deleted` event for each.",
    responses=problem_responses(401, 403, 422),
)
async def clear_completed(
    caller: TaskOwner,
    status_: Annotated[Literal["completed"], Query(alias="status")],
    list_id: ScopeList = None,
    parent_id: ParentParam = None,
    priority: ScopePriority = [],  # noqa: B006 - FastAPI copies it
    tag: ScopeTag = [],  # noqa: B006
) -> ChangedCountOut:
    scope = _scope(list_id, parent_id, priority, tag)
    return ChangedCountOut.of(await caller.use_cases.clear_completed.execute(caller.user_id, scope))


@router.post(
    "/complete-all",
    operation_id="completeAllTasks",
    summary="Complete every open task (the filters narrow it), with their subtasks",
    description="One statement; each task completed is a new version and a `task.completed` event. "
    "Completing a task completes its open subtasks too, as completing one task does. At most "
    f"{MAX_COMPLETE_ALL_TASKS} tasks (subtasks included) at once: more is 422 `too_many_tasks` and "
    "nothing is completed.",
    responses=problem_responses(401, 403, 422),
)
async def complete_all(
    caller: TaskOwner,
    list_id: ScopeList = None,
    parent_id: ParentParam = None,
    priority: ScopePriority = [],  # noqa: B006 - FastAPI copies it
    tag: ScopeTag = [],  # noqa: B006
    overdue: Annotated[bool, Query(description="Only the tasks due before now.")] = False,
) -> ChangedCountOut:
    scope = _scope(list_id, parent_id, priority, tag, overdue)
    return ChangedCountOut.of(await caller.use_cases.complete_all.execute(caller.user_id, scope))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    operation_id="createTask",
    summary="Create a task",
    description="404 `list_not_found` or `parent_not_found` for a list or parent that is not yours.",
    responses=problem_responses(401, 403, 404, 422),
)
async def create_task(
    body: TaskCreate,
    caller: TaskOwner,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> TaskOut:
    created = await caller.use_cases.create_task.execute(caller.user_id, _draft(body), idempotency_key)
    response.headers["Location"] = f"/api/{caller.user_id}/tasks/{created.task.id}"
    response.headers["ETag"] = etag(created.task.version)
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
    if still_fresh(if_none_match, etag(task.version)):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag(task.version)})
    response.headers["ETag"] = etag(task.version)
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
    task = await caller.use_cases.update_task.execute(caller.user_id, task_id, changes, if_match=versions(if_match))
    response.headers["ETag"] = etag(task.version)
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
        caller.user_id, task_id, _changes(body), if_match=versions(if_match)
    )
    response.headers["ETag"] = etag(task.version)
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
        caller.user_id, task_id, completed, if_match=versions(if_match)
    )
    response.headers["ETag"] = etag(task.version)
    return TaskOut.of(task)


@router.post(
    "/{task_id}/skip",
    operation_id="skipOccurrence",
    summary="Move a recurring task to its next occurrence without completing it",
    description="422 `not_recurring` for a one-off task, `task_completed` for a completed one, "
    "`series_ended` when COUNT or UNTIL leave no next occurrence.",
    responses=problem_responses(401, 403, 404, 412, 422),
)
async def skip_occurrence(task_id: TaskId, caller: TaskOwner, response: Response, if_match: IfMatch = None) -> TaskOut:
    task = await caller.use_cases.skip_occurrence.execute(caller.user_id, task_id, if_match=versions(if_match))
    response.headers["ETag"] = etag(task.version)
    return TaskOut.of(task)


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    operation_id="deleteTask",
    summary="Delete a task",
    responses=problem_responses(401, 403, 404, 412, 422),
)
async def delete_task(task_id: TaskId, caller: TaskOwner, if_match: IfMatch = None) -> None:
    await caller.use_cases.delete_task.execute(caller.user_id, task_id, if_match=versions(if_match))


@router.post(
    "/{task_id}/restore",
    operation_id="restoreTask",
    summary="Bring back a deleted task, with the subtasks deleted with it",
    description="Restorable for the retention window after its deletion (`GET .../tasks?deleted=true` lists "
    "them). It comes back as a new version with its tags and place; where its list is gone it goes to the end "
    "of your Inbox, where its parent is gone to its list's top level. 409 `deleted_with_parent` / "
    "`deleted_with_list` names what to restore instead.",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def restore_task(task_id: TaskId, caller: TaskOwner, response: Response) -> TaskOut:
    task = await caller.use_cases.restore_task.execute(caller.user_id, task_id)
    response.headers["ETag"] = etag(task.version)
    response.headers["Location"] = f"/api/{caller.user_id}/tasks/{task.id}"
    return TaskOut.of(task)


@router.post(
    "/{task_id}/move",
    operation_id="moveTask",
    summary="Move a task: reorder it, make it a subtask, or send it to another list",
    description="Drag and drop: send the neighbour it was dropped next to (`before_id` or `after_id`); "
    "the server computes its new `position`, and only this task's row changes. Its subtasks go with it.",
    responses=problem_responses(401, 403, 404, 412, 422),
)
async def move_task(
    task_id: TaskId,
    body: TaskMove,
    caller: TaskOwner,
    response: Response,
    if_match: IfMatch = None,
) -> TaskOut:
    move = Move(
        list_id=body.list_id,
        parent_id=body.parent_id if "parent_id" in body.model_fields_set else UNSET,
        before_id=body.before_id,
        after_id=body.after_id,
    )
    task = await caller.use_cases.move_task.execute(caller.user_id, task_id, move, if_match=versions(if_match))
    response.headers["ETag"] = etag(task.version)
    return TaskOut.of(task)


@router.post(
    "/bulk",
    operation_id="bulkChangeTasks",
    response_model=BulkOut,
    summary="Complete, reopen, delete, move or update many tasks at once",
    description=f"At most {MAX_BULK_TASKS} tasks in all, in one transaction. The answer has one result per "
    "task, in order. With `atomic` (the default) a single failure writes nothing: the answer is a 422 "
    "`bulk_not_applied` whose `results` say which tasks failed and why. With `atomic: false` what can be applied "
    "is (200), and a 422 only says that no task could be.",
    responses={
        **problem_responses(401, 403, 404),  # 404: a list deleted while the change was being made
        422: {"model": BulkProblem, "description": HTTPStatus(422).phrase},
    },
)
async def bulk_change_tasks(
    body: BulkRequest,
    caller: TaskOwner,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> BulkOut | Response:
    operations = [_bulk_operation(operation) for operation in body.operations]
    changed = await caller.use_cases.bulk_change_tasks.execute(
        caller.user_id, operations, atomic=body.atomic, idempotency_key=idempotency_key
    )
    if changed.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    answer = BulkOut.fields_of(changed.outcome)
    if not changed.outcome.applied:
        failed = sum(not result.ok for result in changed.outcome.results)
        return problem_response(
            status=422,
            code="bulk_not_applied",
            detail=f"{failed} of {len(answer['results'])} tasks cannot be changed, so none was; see `results`.",
            instance=request.url.path,
            request_id=request_id_of(request),
            extensions={"results": answer["results"]},
        )
    return BulkOut.model_validate(answer)


def _bulk_operation(operation: BulkStatusChange | BulkMove | BulkUpdate) -> BulkOperation:
    task_ids = tuple(operation.task_ids)
    if isinstance(operation, BulkStatusChange):
        return BulkOperation(operation.op, task_ids)
    if isinstance(operation, BulkMove):
        return BulkOperation("move", task_ids, list_id=operation.list_id)
    sent = operation.model_fields_set
    return BulkOperation(
        "update",
        task_ids,
        list_id=operation.list_id,
        priority=Priority.of(operation.priority) if operation.priority is not None else UNSET,
        add_tags=tuple(operation.add_tags),
        remove_tags=tuple(operation.remove_tags),
        due_at=operation.due_at if "due_at" in sent else UNSET,
    )
