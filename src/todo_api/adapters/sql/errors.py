"""Database failures translated into domain errors, so the core never sees SQLAlchemy or asyncpg."""

from __future__ import annotations

import asyncio

from sqlalchemy import exc as sa_exc

from todo_api.domain.errors import Conflict, DomainError, InvalidInput, ServiceUnavailable, TransientConflict

# Unique constraints whose violation is a client-visible conflict: name -> (code, message).
CONFLICTS: dict[str, tuple[str, str]] = {
    "uq_users_email": ("email_taken", "An account with this e-mail address already exists."),
}

_UNAVAILABLE_CLASSES = ("08", "53", "57P")  # connection, insufficient resources, shutdown


def _sqlstate(error: BaseException) -> str:
    orig = getattr(error, "orig", None)
    return str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")


def _constraint(error: BaseException) -> str:
    cause = getattr(getattr(error, "orig", None), "__cause__", None)
    return str(getattr(cause, "constraint_name", "") or "")


def translate(error: BaseException, *, retry_after_s: int = 2) -> DomainError | None:
    """The domain error for a database failure, or None when it is a bug that should stay a 500.

    `retry_after_s` is what an unavailable database tells clients (DB_RETRY_AFTER_S).
    """
    if isinstance(error, DomainError):
        return None
    if isinstance(error, sa_exc.TimeoutError):
        return ServiceUnavailable("The database is busy; try again shortly.", retry_after_s=retry_after_s)
    if isinstance(error, OSError | asyncio.TimeoutError | ConnectionError):
        return ServiceUnavailable("The database is unavailable; try again shortly.", retry_after_s=retry_after_s)
    if not isinstance(error, sa_exc.DBAPIError):
        return None
    state = _sqlstate(error)
    if state == "23505":
        code, message = CONFLICTS.get(_constraint(error), ("conflict", "The request conflicts with existing data."))
        return Conflict(message, code=code)
    if state in {"40001", "40P01"}:
        return TransientConflict("Too many concurrent writes; try again.", retry_after_s=1)
    if state == "57014":
        return ServiceUnavailable("The database took too long to answer.", retry_after_s=retry_after_s)
    if state.startswith("22"):
        return InvalidInput("A value is out of the range the database accepts.", code="invalid_value")
    if (
        error.connection_invalidated
        or isinstance(error, sa_exc.InterfaceError)
        or state.startswith(_UNAVAILABLE_CLASSES)
    ):
        return ServiceUnavailable("The database is unavailable; try again shortly.", retry_after_s=retry_after_s)
    return None
