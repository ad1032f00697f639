"""/api/{user_id}/lists: a person's lists, in their order, each with its open and total counts.

Like the task routes, every route takes one dependency, `TaskOwner` (401 or 403 before any list
is looked at); a list's ETag is its version, and `If-Match` makes a change conditional.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from todo_api.adapters.http.deps import TaskOwner
from todo_api.adapters.http.paging import Cursor, next_link
from todo_api.adapters.http.preconditions import IfMatch, IfNoneMatch, etag, still_fresh, versions
from todo_api.adapters.http.problems import problem_responses
from todo_api.adapters.http.schemas import MAX_ID, ListCreate, ListMove, ListOut, ListPageOut, ListUpdate
from todo_api.domain.errors import InvalidInput
from todo_api.domain.lists import TaskList
from todo_api.domain.tasks import UNSET

ListId = Annotated[int, Path(ge=1, le=MAX_ID)]


def list_etag(task_list: TaskList) -> str:
    """`"version.open.total"`: the counts change without the version (see preconditions.py)."""
    return etag(task_list.version, task_list.open_count, task_list.total_count)


router = APIRouter(prefix="/api/{user_id}/lists", tags=["lists"])


@router.get(
    "",
    operation_id="listLists",
    summary="A page of your lists, in your order, with their task counts",
    description='Keyset pagination, as for tasks: follow `meta.next_cursor` (or `Link: rel="next"`).',
    responses=problem_responses(400, 401, 403, 422),
)
async def list_lists(
    caller: TaskOwner,
    request: Request,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Cursor = None,
) -> ListPageOut:
    after = caller.services.cursors.decode_lists(cursor) if cursor else None
    page = await caller.use_cases.list_lists.execute(caller.user_id, limit, after)
    next_cursor = caller.services.cursors.encode_lists(page.next_position) if page.next_position else None
    if next_cursor:
        response.headers["Link"] = next_link(request, next_cursor)
    return ListPageOut.of(page.lists, next_cursor=next_cursor, limit=limit, sync_position=page.sync_position)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    operation_id="createList",
    summary="Create a list, after your others",
    description="409 `list_name_taken` when you have a list of that name (in any case); 422 `too_many_lists` "
    "past 1,000.",
    responses=problem_responses(401, 403, 409, 422),
)
async def create_list(body: ListCreate, caller: TaskOwner, response: Response) -> ListOut:
    created = await caller.use_cases.create_list.execute(caller.user_id, body.name, body.color)
    response.headers["Location"] = f"/api/{caller.user_id}/lists/{created.id}"
    response.headers["ETag"] = list_etag(created)
    return ListOut.of(created)


@router.get(
    "/{list_id}",
    operation_id="getList",
    response_model=ListOut,
    summary="One list, with its task counts",
    description="Send `If-None-Match` with the ETag you hold to get 304 when nothing changed.",
    responses={304: {"description": "Not Modified"}, **problem_responses(401, 403, 404, 422)},
)
async def get_list(
    list_id: ListId, caller: TaskOwner, response: Response, if_none_match: IfNoneMatch = None
) -> ListOut | Response:
    found = await caller.use_cases.get_list.execute(caller.user_id, list_id)
    current = list_etag(found)
    if still_fresh(if_none_match, current):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": current})
    response.headers["ETag"] = current
    return ListOut.of(found)


@router.patch(
    "/{list_id}",
    operation_id="updateList",
    summary="Rename or recolour a list (the Inbox too)",
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
async def update_list(
    list_id: ListId, body: ListUpdate, caller: TaskOwner, response: Response, if_match: IfMatch = None
) -> ListOut:
    sent = body.model_fields_set
    if "name" in sent and body.name is None:
        raise InvalidInput("name cannot be null.", code="null_not_allowed")
    updated = await caller.use_cases.update_list.execute(
        caller.user_id,
        list_id,
        name=body.name if body.name is not None else UNSET,
        color=body.color if "color" in sent else UNSET,
        if_match=versions(if_match),
    )
    response.headers["ETag"] = list_etag(updated)
    return ListOut.of(updated)


@router.post(
    "/{list_id}/move",
    operation_id="moveList",
    summary="Reorder your lists: put one before or after another, or last",
    description="The server computes the list's new `position`; only its row changes.",
    responses=problem_responses(401, 403, 404, 412, 422),
)
async def move_list(
    list_id: ListId, body: ListMove, caller: TaskOwner, response: Response, if_match: IfMatch = None
) -> ListOut:
    moved = await caller.use_cases.move_list.execute(
        caller.user_id, list_id, before_id=body.before_id, after_id=body.after_id, if_match=versions(if_match)
    )
    response.headers["ETag"] = list_etag(moved)
    return ListOut.of(moved)


@router.delete(
    "/{list_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    operation_id="deleteList",
    summary="Delete a list",
    description="409 `list_not_empty` while it holds tasks, unless `cascade=true`, which deletes them with it "
    "in one transaction. The Inbox is never deleted (409 `inbox_not_deletable`).",
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
async def delete_list(
    list_id: ListId,
    caller: TaskOwner,
    cascade: Annotated[bool, Query(description="Delete its tasks too.")] = False,
    if_match: IfMatch = None,
) -> None:
    await caller.use_cases.delete_list.execute(caller.user_id, list_id, cascade=cascade, if_match=versions(if_match))


@router.post(
    "/{list_id}/restore",
    operation_id="restoreList",
    summary="Bring back a deleted list with the tasks deleted with it",
    description="Restorable for the retention window after its deletion, as a new version. 409 "
    "`list_name_taken` if you have a list of its name by now (rename that one first); 422 `too_many_lists`.",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def restore_list(list_id: ListId, caller: TaskOwner, response: Response) -> ListOut:
    task_list = await caller.use_cases.restore_list.execute(caller.user_id, list_id)
    response.headers["ETag"] = list_etag(task_list)
    response.headers["Location"] = f"/api/{caller.user_id}/lists/{task_list.id}"
    return ListOut.of(task_list)
