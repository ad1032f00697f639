"""Users, e-mail normalisation and the password policy."""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime

from todo_api.domain.errors import InvalidInput

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 128
MAX_EMAIL_CHARS = 254
MAX_NAME_CHARS = 100
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s.\x00-\x1f\x7f]+")
_ID_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str | None
    name: str | None
    password_hash: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: our own session, or a subject vouched for by an external issuer."""

    user_id: str
    session_id: str | None = None
    email: str | None = None
    name: str | None = None
    external: bool = False
    expires_at: datetime | None = None
    """When the token that proved it expires (None: not known); a live stream ends then."""


def new_user_id() -> str:
    """32 alphanumeric characters, the shape of Better Auth's ids, so both kinds of user look alike."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(32))


def normalise_email(raw: str) -> str:
    """Trimmed and lower-cased: addresses are unique case-insensitively, so `A@x.io` is `a@x.io`."""
    email = raw.strip().lower()
    if len(email) > MAX_EMAIL_CHARS or not _EMAIL.fullmatch(email):
        raise InvalidInput("This is not a valid e-mail address.", code="invalid_email", field="email")
    return email


def normalise_name(raw: str | None) -> str | None:
    if raw is None:
        return None
    name = " ".join(raw.split())
    if len(name) > MAX_NAME_CHARS:
        raise InvalidInput(f"A name has at most {MAX_NAME_CHARS} characters.", code="invalid_name", field="name")
    return name or None


class PasswordPolicy:
    """8 to 128 characters of any script, and not one of the most common passwords."""

    def __init__(self, common_passwords: frozenset[str]) -> None:
        self._common = common_passwords

    def check(self, password: str, *, field: str = "password") -> None:
        if len(password) < MIN_PASSWORD_CHARS:
            message = f"A password has at least {MIN_PASSWORD_CHARS} characters."
            raise InvalidInput(message, code="password_too_short", field=field)
        if len(password) > MAX_PASSWORD_CHARS:
            message = f"A password has at most {MAX_PASSWORD_CHARS} characters."
            raise InvalidInput(message, code="password_too_long", field=field)
        if password.strip().lower() in self._common:
            raise InvalidInput("This password is too common; choose another.", code="weak_password", field=field)
