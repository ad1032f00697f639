"""Request and response models: strict (no coercion, unknown fields refused), with examples."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from todo_api.domain.users import User


class StrictInput(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


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


class UserOut(BaseModel):
    id: str = Field(examples=["Yq3k1bXh0c9sT2mJ4nL8vR6wZ5aP7dFe"])
    email: str | None = Field(examples=["ada@example.com"])
    name: str | None = Field(examples=["Ada Lovelace"])
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(id=user.id, email=user.email, name=user.name, created_at=user.created_at)


class TokenOut(BaseModel):
    """The OAuth2 token response (RFC 6749 §5.1)."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Seconds until the access token expires.", examples=[900])


class SessionOut(TokenOut):
    user: UserOut
    refresh_token: str = Field(
        description="Opaque; also set as an httpOnly cookie scoped to /api/auth. Each use rotates it."
    )
