"""/api/auth/me and /api/auth/sessions: the profile, the devices logged in, an export, deleting the account."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from todo_api.adapters.http.account_schemas import (
    AccountExportOut,
    DeleteAccountRequest,
    ProfileUpdate,
    SessionListOut,
)
from todo_api.adapters.http.deps import Authenticated
from todo_api.adapters.http.problems import problem_responses
from todo_api.adapters.http.schemas import UserOut

router = APIRouter(prefix="/api/auth", tags=["auth"])

SessionId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")]


@router.patch(
    "/me",
    operation_id="updateCurrentUser",
    summary="Change your name",
    responses=problem_responses(401, 422),
)
async def update_me(body: ProfileUpdate, caller: Authenticated) -> UserOut:
    return UserOut.of(await caller.use_cases.update_profile.execute(caller.principal, body.name))


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    operation_id="deleteCurrentUser",
    summary="Delete your account and all its data, after entering your password again",
    description="Your tasks, lists, trash, webhooks, change feed and sessions go with it, in one transaction; "
    "every session ends. 403 `current_password_incorrect` for a wrong password (throttled like a login), "
    "409 `password_not_set` for an account of an external sign-in provider.",
    responses=problem_responses(401, 403, 409, 422, 429),
)
async def delete_me(body: DeleteAccountRequest, caller: Authenticated) -> None:
    await caller.use_cases.delete_account.execute(caller.principal, body.password)


@router.get(
    "/me/export",
    operation_id="exportCurrentUser",
    summary="All your data as JSON",
    responses=problem_responses(401),
)
async def export_me(caller: Authenticated, response: Response) -> AccountExportOut:
    export = await caller.use_cases.export_account.execute(caller.principal)
    response.headers["Content-Disposition"] = 'attachment; filename="todo-export.json"'
    response.headers["Cache-Control"] = "no-store"
    return AccountExportOut.of(export, at=datetime.now(UTC), current_session=caller.principal.session_id)


@router.get(
    "/sessions",
    operation_id="listSessions",
    summary="The devices logged in to your account",
    responses=problem_responses(401),
)
async def list_sessions(caller: Authenticated) -> SessionListOut:
    return SessionListOut.of(await caller.use_cases.list_sessions.execute(caller.principal))


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    operation_id="endSession",
    summary="Log a device out",
    description="Its refresh token stops at once; its access tokens are refused on every server within "
    "SESSION_REVOCATION_REFRESH_S (at once on the one that answered). Your current session too, if you name it.",
    responses=problem_responses(401, 404, 422),
)
async def end_session(session_id: SessionId, caller: Authenticated) -> None:
    await caller.use_cases.end_session.execute(caller.principal, session_id)
