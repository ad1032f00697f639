"""/api/{user_id}/changes: delta sync. List once (its first page carries `meta.sync_token`), then
ask what changed since the token, page after page, while `has_more` is true."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Response

from todo_api.adapters.http.deps import TaskOwner
from todo_api.adapters.http.feed_schemas import ChangesOut
from todo_api.adapters.http.problems import problem_responses
from todo_api.domain.changes import MAX_CHANGES_PAGE

router = APIRouter(prefix="/api/{user_id}", tags=["changes"])

SinceParam = Annotated[
    str | None,
    Query(
        pattern=r"^[0-9]{1,18}$",
        description="The `sync_token` you hold (`0`: from the start of what is kept). Left out: no "
        "events, only a token for now.",
        examples=["1042"],
    ),
]


@router.get(
    "/changes",
    operation_id="listChanges",
    summary="What changed since a sync token",
    description="Events in the order they committed, each a CloudEvent whose `data` is the object as the API "
    "returns it (a tombstone for a deletion). A token older than the retention window, or one this feed never "
    "issued, is 410 `sync_token_expired`: list your tasks and lists again and follow the new first page's token.",
    response_model=ChangesOut,
    responses=problem_responses(401, 403, 410, 422),
)
async def list_changes(
    caller: TaskOwner,
    since: SinceParam = None,
    limit: Annotated[int, Query(ge=1, le=MAX_CHANGES_PAGE)] = 100,
) -> Response:
    page = await caller.use_cases.read_changes.execute(caller.user_id, None if since is None else int(since), limit)
    # The events are stored as the JSON they are served as: no model round trip per event.
    body = {
        "data": [event.payload for event in page.events],
        "meta": {"sync_token": str(page.position), "has_more": page.has_more, "limit": limit},
    }
    return Response(orjson.dumps(body), media_type="application/json")
