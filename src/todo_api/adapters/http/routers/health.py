"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from todo_api.adapters.http.deps import Anonymous
from todo_api.adapters.http.problems import problem_responses
from todo_api.adapters.http.schemas import Output

router = APIRouter(tags=["health"])


class Health(Output):
    status: Literal["ok", "ready"]


@router.get("/healthz", operation_id="getLiveness", summary="The process is alive", responses=problem_responses())
async def liveness() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    operation_id="getReadiness",
    summary="The database answers",
    description="503 with `Retry-After` while the database does not answer.",
    responses=problem_responses(503),
)
async def readiness(ctx: Anonymous) -> Health:
    await ctx.use_cases.check_readiness.execute()
    return Health(status="ready")
