"""The account's own routes: the profile, its sessions (devices), an export, deleting it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import Field

from todo_api.adapters.http.schemas import (
    MAX_LOGIN_PASSWORD_CHARS,
    NO_NUL,
    ListOut,
    Output,
    StrictInput,
    TaskOut,
    UserOut,
)
from todo_api.adapters.http.webhook_schemas import WebhookOut
from todo_api.domain.tasks import Task
from todo_api.domain.users import MAX_NAME_CHARS
from todo_api.use_cases.account import AccountExport, SessionView


class ProfileUpdate(StrictInput):
    name: str | None = Field(
        max_length=MAX_NAME_CHARS, pattern=NO_NUL, description="null or blank: no name.", examples=["Ada Lovelace"]
    )


class DeleteAccountRequest(StrictInput):
    password: str = Field(max_length=MAX_LOGIN_PASSWORD_CHARS, description="Your current password, entered again.")


class SessionItemOut(Output):
    id: str = Field(examples=["9f1c2b7e4d3a4c5b8e6f7a8b9c0d1e2f"])
    user_agent: str | None = Field(
        description="The `User-Agent` that logged in.", examples=["Mozilla/5.0 (Macintosh) Firefox/140.0"]
    )
    created_at: datetime
    last_used_at: datetime = Field(description="When it last refreshed its access token.")
    expires_at: datetime = Field(description="When it ends unless it refreshes again.")
    current: bool = Field(description="The session of the token this request was sent with.")

    @classmethod
    def of(cls, view: SessionView) -> SessionItemOut:
        session = view.session
        return cls.model_validate(
            {
                "id": session.id,
                "user_agent": session.user_agent,
                "created_at": session.created_at,
                "last_used_at": session.last_used_at,
                "expires_at": session.expires_at,
                "current": view.current,
            }
        )


class SessionListOut(Output):
    data: list[SessionItemOut] = Field(description="Your live sessions, the latest used first.")

    @classmethod
    def of(cls, views: Sequence[SessionView]) -> SessionListOut:
        return cls.model_validate({"data": [SessionItemOut.of(view) for view in views]})


class DeletedTaskOut(TaskOut):
    deleted_at: datetime


class AccountExportOut(Output):
    """Every row of yours, as the API returns each (secrets and password hashes excepted)."""

    exported_at: datetime
    user: UserOut
    lists: list[ListOut]
    tasks: list[TaskOut]
    deleted_tasks: list[DeletedTaskOut] = Field(description="The trash: what `restore` can still bring back.")
    webhooks: list[WebhookOut]
    sessions: list[SessionItemOut]

    @classmethod
    def of(cls, export: AccountExport, *, at: datetime, current_session: str | None) -> AccountExportOut:
        def deleted(task: Task) -> DeletedTaskOut:
            return DeletedTaskOut.model_validate({**TaskOut.of(task).model_dump(), "deleted_at": task.deleted_at})

        return cls.model_validate(
            {
                "exported_at": at,
                "user": UserOut.of(export.user),
                "lists": [ListOut.of(task_list) for task_list in export.lists],
                "tasks": [TaskOut.of(task) for task in export.tasks],
                "deleted_tasks": [deleted(task) for task in export.deleted_tasks],
                "webhooks": [WebhookOut.of(webhook) for webhook in export.webhooks],
                "sessions": [
                    SessionItemOut.of(SessionView(session, session.id == current_session))
                    for session in export.sessions
                ],
            }
        )
