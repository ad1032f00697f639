"""Sessions: a family of rotating, opaque refresh tokens per login, stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class RefreshToken:
    token_hash: str
    family_id: str
    user_id: str
    created_at: datetime
    expires_at: datetime
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class IssuedSession:
    """What a client receives at login, signup and refresh. The refresh token is shown only here."""

    user_id: str
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_at: datetime


def new_family_id() -> str:
    return uuid.uuid4().hex


def new_refresh_token() -> tuple[str, str]:
    """(the token for the client, its hash for the database); 256 random bits need no slow hash."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
