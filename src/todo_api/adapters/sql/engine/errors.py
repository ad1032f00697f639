"""asyncpg's failures as domain errors, at the call that failed, so nothing above the engine sees
the driver; and which failures cost the connection."""

from __future__ import annotations

import asyncio

import asyncpg

from todo_api.domain.errors import Conflict, DomainError, InvalidInput, NotFound, ServiceUnavailable, TransientConflict

_UNAVAILABLE_CLASSES = ("08", "53", "57P")  # connection, insufficient resources, shutdown


def translate(error: BaseException, *, retry_after_s: int = 2, committing: bool = False) -> DomainError | None:
    """The domain error for a database failure, or None when it is a bug that should stay a 500.

    `retry_after_s` is what an unavailable database tells clients (DB_RETRY_AFTER_S). A unique
    violation is a plain `Conflict`: a repository whose conflict is an expected outcome (a taken
    e-mail) writes `ON CONFLICT DO NOTHING` and raises its own, more precise error, which also
    keeps the transaction usable. `committing`: the failed call was a COMMIT, or a write that
    commits as it runs; when the connection went, whether the server applied it is unknowable.
    """
    if isinstance(error, DomainError):
        return None
    unavailable = _lost_while_committing(retry_after_s) if committing else _unavailable(retry_after_s)
    if isinstance(error, OSError | asyncio.TimeoutError | ConnectionError):
        return unavailable
    if isinstance(error, asyncpg.InterfaceError) and isinstance(error, ValueError):
        # asyncpg refused an argument before sending it (its DataError): a value out of range.
        return InvalidInput("A value is out of the range the database accepts.", code="invalid_value")
    if isinstance(error, asyncpg.InterfaceError | asyncpg.InternalClientError):
        # The connection is closed, or its protocol was left mid-exchange (a server that sent an
        # error to a connection that then died before it could be noticed as closed).
        return unavailable
    if not isinstance(error, asyncpg.PostgresError):
        return None
    state = str(error.sqlstate or "")
    if state == "23505":
        return Conflict("The request conflicts with existing data.", code="conflict")
    if state == "23503":
        # A row this write refers to was deleted by a transaction that committed first (a list
        # deleted while a task was being added to it): the reference is gone, nothing is written.
        return NotFound("Something this request refers to no longer exists.", code="not_found")
    if state in {"40001", "40P01"}:
        return TransientConflict("Too many concurrent writes; try again.", retry_after_s=1)
    if state == "57014":
        return ServiceUnavailable("The database took too long to answer.", retry_after_s=retry_after_s)
    if state.startswith("22"):
        return InvalidInput("A value is out of the range the database accepts.", code="invalid_value")
    if state.startswith(_UNAVAILABLE_CLASSES):
        return unavailable
    return None


def _unavailable(retry_after_s: int) -> ServiceUnavailable:
    return ServiceUnavailable("The database is unavailable; try again shortly.", retry_after_s=retry_after_s)


def _lost_while_committing(retry_after_s: int) -> ServiceUnavailable:
    # Say so, rather than imply nothing was saved.
    return ServiceUnavailable(
        "The database went away while saving: the change may or may not have been stored. "
        "Retry with the same Idempotency-Key to find out.",
        retry_after_s=retry_after_s,
        code="commit_outcome_unknown",
    )


def leaves_connection_usable(error: BaseException | None) -> bool:
    """A domain decision, or an error the server reported while the session stays up; not a lost,
    timed-out or cancelled operation, which may leave the protocol mid-message."""
    while error is not None:
        if isinstance(error, asyncpg.PostgresError):
            return not str(error.sqlstate or "").startswith(("08", "57P"))
        if not isinstance(error, DomainError):
            return False
        error = error.__cause__
    return True
