"""/api/{user_id}/summary and /api/{user_id}/tags: what an SPA's home screen shows, one query each."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from todo_api.adapters.http.deps import TaskOwner
from todo_api.adapters.http.overview_schemas import SummaryOut, TagsOut
from todo_api.adapters.http.problems import problem_responses
from todo_api.domain.time_zones import MAX_TIME_ZONE_CHARS

router = APIRouter(prefix="/api/{user_id}", tags=["tasks"])

TimeZone = Annotated[
    str,
    Query(
        min_length=1,
        max_length=MAX_TIME_ZONE_CHARS,
        description="Your IANA time zone, for what `due_today` means (422 `unknown_time_zone` otherwise).",
        examples=["Europe/Paris"],
    ),
]


@router.get(
    "/summary",
    operation_id="getSummary",
    summary="Counts of your tasks: open, completed, overdue, due today; per priority and per list",
    responses=problem_responses(401, 403, 422),
)
async def get_summary(caller: TaskOwner, tz: TimeZone = "UTC") -> SummaryOut:
    return SummaryOut.of(await caller.use_cases.get_summary.execute(caller.user_id, tz))


@router.get(
    "/tags",
    operation_id="listTags",
    summary="Every tag on your tasks with its open and total counts",
    responses=problem_responses(401, 403, 422),
)
async def list_tags(caller: TaskOwner) -> TagsOut:
    return TagsOut.of(await caller.use_cases.list_tags.execute(caller.user_id))
