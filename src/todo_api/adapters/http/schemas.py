"""Request and response models: strict (no coercion, unknown fields refused), with examples."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from todo_api.domain.tasks import Task
from todo_api.domain.users import User


class StrictInput(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Output(BaseModel):
    """Fields with defaults are still always sent, so the schema marks them required."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class SignUpRequest(StrictInput):
    email: str = Field(max_length=320, examples=["ada@example.com"])
    password: str = Field(min_length=8, max_length=128, examples=["correct horse battery staple"])
    name: str | None = Field(default=None, max_length=100, examples=["Ada Lovelace"])


class LogInRequest(StrictInput):
    email: str = Field(max_length=320, examples=["ada@example.com"])
    password: str = Field(max_length=1024, examples=["correct horse battery staple"])


class RefreshRequest(StrictInput):
    refresh_token: str | None = Field(
        default=None,
        max_length=256,
        description="Omit it to use the httpOnly `refresh_token` cookie instead.",
    )


class ChangePasswordRequest(StrictInput):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(min_length=8, max_length=128)


class UserOut(Output):
    id: str = Field(examples=["Yq3k1bXh0c9sT2mJ4nL8vR6wZ5aP7dFe"])
    email: str | None = Field(examples=["ada@example.com"])
    name: str | None = Field(examples=["Ada Lovelace"])
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(id=user.id, email=user.email, name=user.name, created_at=user.created_at)


class TokenOut(Output):
    """The OAuth2 token response (RFC 6749 §5.1)."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Seconds until the access token expires.", examples=[900])


class SessionOut(TokenOut):
    user: UserOut
    refresh_token: str = Field(
        description="Opaque; also set as an httpOnly cookie scoped to /api/auth. Each use rotates it."
    )


# Tasks ---------------------------------------------------------------------------------------

PriorityLabel = Literal["none", "low", "medium", "high"]


def _iso_8601_text(value: object) -> object:
    """Lax datetime parsing would take 1790000000 as a Unix time; the contract is ISO 8601 text."""
    if not isinstance(value, str) or value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("expected an ISO 8601 date-time with a time zone, e.g. 2026-12-01T17:00:00Z")
    return value


# JSON has no datetime type: ISO 8601 strings with a zone; naive ones and numbers are refused.
IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_iso_8601_text), Field(strict=False)]
DueAt = Annotated[IsoDateTime, Field(examples=["2026-12-01T17:00:00Z"])]
Title = Annotated[str, Field(min_length=1, max_length=400, examples=["Buy oat milk"])]
Description = Annotated[str, Field(max_length=2000, examples=["The barista one, not the light one."])]
Tags = Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=40, examples=[["home"]])]


class TaskCreate(StrictInput):
    title: Title
    description: Description | None = None
    priority: PriorityLabel = "none"
    tags: Tags = Field(default_factory=list)
    due_at: DueAt | None = None
    completed: bool = False


class TaskReplace(TaskCreate):
    """PUT: the whole task; an omitted optional field is reset to its default."""


class TaskUpdate(StrictInput):
    """PATCH: only the fields sent change; `null` clears `description` and `due_at`."""

    title: Title | None = None
    description: Description | None = None
    priority: PriorityLabel | None = None
    tags: Tags | None = None
    due_at: DueAt | None = None
    completed: bool | None = None


class CompletionUpdate(StrictInput):
    completed: bool | None = Field(default=None, description="Omit to toggle.")


class TaskOut(Output):
    id: int = Field(examples=[42])
    title: str
    description: str | None
    completed: bool
    completed_at: datetime | None
    priority: PriorityLabel
    tags: list[str]
    due_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="Increments on every change; the ETag is this number, quoted.")

    @classmethod
    def of(cls, task: Task) -> TaskOut:
        return cls(
            id=task.id,
            title=task.title,
            description=task.description,
            completed=task.completed,
            completed_at=task.completed_at,
            priority=task.priority.label,
            tags=list(task.tags),
            due_at=task.due_at,
            created_at=task.created_at,
            updated_at=task.updated_at,
            version=task.version,
        )


class PageMeta(Output):
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    limit: int
    total: int | None = Field(default=None, description="Only with `include_total=true`.")


class TaskPageOut(Output):
    data: list[TaskOut]
    meta: PageMeta
