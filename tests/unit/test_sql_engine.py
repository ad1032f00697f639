"""The SQL engine without a database: which statements it refuses to build, how driver failures
become domain errors, and which failures cost the connection.

The driver raises asyncpg's exceptions (or the socket's) as they are; each must read as what it
is, or an outage leaks out as a 500.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Dialect,
    MetaData,
    Table,
    Text,
    TypeDecorator,
    any_,
    bindparam,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from todo_api.adapters.sql.engine import Statement
from todo_api.adapters.sql.engine.errors import leaves_connection_usable as _leaves_connection_usable
from todo_api.adapters.sql.engine.errors import translate
from todo_api.adapters.sql.tables import idempotency_keys, tasks
from todo_api.domain.errors import Conflict, InvalidInput, NotFound, ServiceUnavailable, TransientConflict


def unique_violation(constraint: str) -> asyncpg.UniqueViolationError:
    error = asyncpg.UniqueViolationError("duplicate key value")
    error.constraint_name = constraint
    return error


# --- Statements: refused when built, not when a request runs them ----------------------------------

_scratch = MetaData()
_events = Table(
    "events", _scratch, Column("id", BigInteger, primary_key=True), Column("body", JSON), Column("data", JSONB)
)


def test_an_in_list_is_refused_when_the_statement_is_built() -> None:
    with pytest.raises(ValueError, match=r"expanding parameter.*any_"):
        Statement(select(tasks).where(tasks.c.id.in_([1, 2, 3])))


def test_an_expanding_bindparam_is_refused_too() -> None:
    with pytest.raises(ValueError, match="expanding parameter \\(ids\\)"):
        Statement(select(tasks).where(tasks.c.id.in_(bindparam("ids", expanding=True))))


def test_the_any_form_is_what_to_write_instead() -> None:
    statement = Statement(select(tasks.c.id).where(tasks.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger)))))
    assert "= ANY ($1::BIGINT[])" in statement.sql
    assert statement.arguments({"ids": [1, 2, 3]}) == [[1, 2, 3]]


def test_a_json_column_not_declared_jsonb_is_refused_in_a_result() -> None:
    with pytest.raises(ValueError, match=r"column 'body'.*JSONB"):
        Statement(select(_events.c.id, _events.c.body))


def test_a_json_column_not_declared_jsonb_is_refused_as_a_parameter() -> None:
    with pytest.raises(ValueError, match=r"parameter 'body'.*JSONB"):
        Statement(insert(_events).values(id=bindparam("id"), body=bindparam("body")))


def test_a_type_decorator_is_refused_its_processing_would_never_run() -> None:
    class Upper(TypeDecorator[str]):
        impl = Text
        cache_ok = True

        def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
            return value.upper() if value else value

    with pytest.raises(ValueError, match="parameter 'title': Upper needs SQLAlchemy's executor"):
        Statement(select(tasks.c.id).where(tasks.c.title == bindparam("title", type_=Upper())))


def test_a_jsonb_value_goes_to_the_driver_as_the_python_value_the_codec_encodes() -> None:
    statement = Statement(insert(_events).values(id=bindparam("id"), data=bindparam("data")).returning(_events.c.data))
    assert statement.arguments({"id": 1, "data": {"a": [1, "x"]}}) == [1, {"a": [1, "x"]}]


def test_every_statement_of_the_app_builds() -> None:
    """Importing the repositories builds their statements: none may be refused."""
    from todo_api.adapters.sql import auth_repositories, idempotency_keys, task_repository, unit_of_work

    assert {auth_repositories, idempotency_keys, task_repository, unit_of_work}


def test_core_literals_keep_their_values_and_named_values_fill_the_rest() -> None:
    statement = Statement(select(idempotency_keys.c.key).where(idempotency_keys.c.user_id == bindparam("owner")))
    assert statement.arguments({"owner": "u1"}) == ["u1"]
    with pytest.raises(KeyError):
        statement.arguments({})


def test_text_is_not_the_way_in() -> None:
    """A textual statement has no typed columns to check: the engine takes Core only for results."""
    assert Statement(text("SELECT 1")).sql == "SELECT 1"


# --- Driver failures ---------------------------------------------------------------------------------


def test_a_unique_violation_is_a_plain_conflict() -> None:
    """Repositories that expect a conflict (a taken e-mail) catch it with ON CONFLICT and say more."""
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
