"""How database failures become domain errors, and which failures cost the connection.

Statements and the pool raise asyncpg's exceptions (or the socket's) as they are; each must
read as what it is, or an outage leaks out as a 500.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from todo_api.adapters.sql.errors import translate
from todo_api.adapters.sql.unit_of_work import _leaves_connection_usable
from todo_api.domain.errors import Conflict, InvalidInput, NotFound, ServiceUnavailable, TransientConflict


def unique_violation(constraint: str) -> asyncpg.UniqueViolationError:
    error = asyncpg.UniqueViolationError("duplicate key value")
    error.constraint_name = constraint
    return error


def test_a_taken_email_is_the_conflict_clients_are_told_about() -> None:
    translated = translate(unique_violation("uq_users_email"))
    assert isinstance(translated, Conflict)
    assert translated.code == "email_taken"


def test_another_unique_violation_is_a_plain_conflict() -> None:
    translated = translate(unique_violation("pk_idempotency_keys"))
    assert isinstance(translated, Conflict)
    assert translated.code == "conflict"


@pytest.mark.parametrize("error", [asyncpg.SerializationError("x"), asyncpg.DeadlockDetectedError("x")])
def test_serialization_failures_and_deadlocks_are_retried(error: Exception) -> None:
    assert isinstance(translate(error), TransientConflict)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_database_that_is_away_or_slow_is_a_503(error: Exception) -> None:
    translated = translate(error, retry_after_s=7)
    assert isinstance(translated, ServiceUnavailable)
    assert translated.retry_after_s == 7


@pytest.mark.parametrize(
    "error",
    [asyncpg.NumericValueOutOfRangeError("smallint out of range"), asyncpg.exceptions._base.DataError("bad argument")],
    ids=["server", "driver"],
)
def test_a_value_the_database_refuses_is_a_4xx(error: Exception) -> None:
    translated = translate(error)
    assert isinstance(translated, InvalidInput)
    assert translated.code == "invalid_value"


@pytest.mark.parametrize("error", [asyncpg.UndefinedTableError("no such table"), ValueError("a bug"), KeyError("x")])
def test_a_bug_stays_a_500(error: Exception) -> None:
    assert translate(error) is None


def test_domain_errors_pass_through_untranslated() -> None:
    assert translate(NotFound("no such task")) is None


@pytest.mark.parametrize(
    "error",
    [None, NotFound("no such task"), unique_violation("uq_users_email"), asyncpg.QueryCanceledError("timeout")],
    ids=["success", "domain", "constraint", "statement-timeout"],
)
def test_the_connection_goes_back_to_the_pool_after_a_clean_outcome(error: BaseException | None) -> None:
    assert _leaves_connection_usable(error)


def _unavailable_after_lost_commit() -> BaseException:
    try:
        try:
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
        except asyncpg.ConnectionDoesNotExistError as lost:
            raise ServiceUnavailable("may or may not be stored", code="commit_outcome_unknown") from lost
    except ServiceUnavailable as error:
        return error


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.AdminShutdownError("terminating connection"),
        asyncpg.ConnectionDoesNotExistError("closed"),
        asyncpg.InternalClientError("another operation is in progress"),
        TimeoutError(),
        asyncio.CancelledError(),
        _unavailable_after_lost_commit(),
    ],
    ids=["shutdown", "lost", "mid-protocol", "timeout", "cancelled", "domain-error-caused-by-a-lost-connection"],
)
def test_the_connection_is_discarded_when_the_failure_may_have_broken_it(error: BaseException) -> None:
    assert not _leaves_connection_usable(error)
