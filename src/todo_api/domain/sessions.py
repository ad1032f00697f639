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
class Session:
    """A login on one device: its id is the refresh-token family's, and every access token it
    issues carries it (`sid`), so ending the session ends those tokens too."""

    id: str
    user_id: str
    user_agent: str | None
    created_at: datetime
    last_used_at: datetime
    """When it last refreshed its access token (using an access token writes nothing)."""
    expires_at: datetime


MAX_USER_AGENT_CHARS = 256


def device_of(user_agent: str | None) -> str | None:
    """The `User-Agent` as stored: trimmed to a length a list of sessions can show."""
    agent = " ".join((user_agent or "").split())[:MAX_USER_AGENT_CHARS]
    return agent or None


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
