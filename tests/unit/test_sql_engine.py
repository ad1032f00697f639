"""The SQL engine without a database: which statements it refuses to build, how driver failures
become domain errors, and which failures cost the connection.

The driver raises asyncpg's exceptions (or the socket's) as they are; each must read as what it
is, or an outage leaks out as a 500.
"""

from __future__ import annotations

import asyncio
from typing import cast

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
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from todo_api.adapters.sql.engine import Connection, ConnectionPool, CopyIn, Statement
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


def test_a_json_value_too_and_an_array_of_either() -> None:
    """Not SQLAlchemy's JSON bind processing (a `json.dumps`): the connections' codecs encode them."""
    one = Statement(insert(_events).values(id=bindparam("id"), body=bindparam("body")).returning(_events.c.body))
    many = Statement(select(func.unnest(bindparam("many", type_=ARRAY(JSON)))))
    assert one.arguments({"id": 1, "body": {"a": [1, "x"]}}) == [1, {"a": [1, "x"]}]
    assert many.arguments({"many": [{"b": 2}, "c"]}) == [[{"b": 2}, "c"]]


def test_a_copy_takes_only_its_own_tables_columns() -> None:
    with pytest.raises(ValueError, match=r"columns \['title'\] are not events's"):
        CopyIn(_events, [_events.c.id, tasks.c.title])
    assert CopyIn(_events, [_events.c.id, _events.c.body])


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


# --- Where a unit's transaction begins: at the first statement that needs one ---------------------


class _Transaction:
    def __init__(self, sent: list[str], readonly: bool) -> None:
        self._sent, self._readonly = sent, readonly

    async def start(self) -> None:
        self._sent.append("BEGIN READ ONLY" if self._readonly else "BEGIN")

    async def commit(self) -> None:
        self._sent.append("COMMIT")

    async def rollback(self) -> None:
        self._sent.append("ROLLBACK")


class _Driver:
    """What asyncpg would be sent, in order; every statement answers with nothing."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def transaction(self, *, readonly: bool) -> _Transaction:
        return _Transaction(self.sent, readonly)

    async def fetchrow(self, sql: str, *arguments: object) -> None:
        self.sent.append(sql)

    async def execute(self, sql: str, *arguments: object) -> None:
        self.sent.append(sql)


class _Pool:
    retry_after_s = 2

    def __init__(self, *, pooler: bool = False) -> None:
        self.pooler = pooler
        self.driver = _Driver()

    async def acquire(self) -> _Driver:
        return self.driver

    def release(self, driver: _Driver, *, discard: bool = False) -> None:
        pass


READ = Statement(text("SELECT 'read'"), plain_read=True)
WRITE = Statement(text("UPDATE 'write'"))
LAST = Statement(text("INSERT 'last'"), last_write=True)


def _unit(pool: _Pool, *, read_only: bool = False) -> Connection:
    return Connection(cast(ConnectionPool, pool), read_only=read_only)


async def test_plain_reads_then_the_last_write_are_sent_alone_with_no_begin_or_commit() -> None:
    pool = _Pool()
    async with _unit(pool) as unit:
        await READ.fetchrow(unit)
        await LAST.fetchrow(unit)
        await unit.commit()
    assert pool.driver.sent == ["SELECT 'read'", "INSERT 'last'"]


async def test_a_write_before_the_last_sends_the_begin_first_and_the_last_write_runs_inside() -> None:
    pool = _Pool()
    async with _unit(pool) as unit:
        await READ.fetchrow(unit)
        await WRITE.execute(unit)
        await READ.fetchrow(unit)
        await LAST.fetchrow(unit)
        await unit.commit()
    assert pool.driver.sent == ["SELECT 'read'", "BEGIN", "UPDATE 'write'", "SELECT 'read'", "INSERT 'last'", "COMMIT"]


async def test_a_unit_that_only_read_ends_with_nothing_to_roll_back() -> None:
    pool = _Pool()

    async def read_then_refuse() -> None:
        async with _unit(pool) as unit:
            await READ.fetchrow(unit)
            raise NotFound("no such list")

    with pytest.raises(NotFound):
        await read_then_refuse()
    assert pool.driver.sent == ["SELECT 'read'"]


async def test_after_a_last_write_that_ran_alone_only_plain_reads_may_follow() -> None:
    """It has committed: a write after it could not be undone with it, nor can a rollback."""
    pool = _Pool()
    async with _unit(pool) as unit:
        await LAST.fetchrow(unit)
        await READ.fetchrow(unit)
        with pytest.raises(RuntimeError, match="only plain reads may follow"):
            await WRITE.execute(unit)
        with pytest.raises(RuntimeError, match="only plain reads may follow"):
            await LAST.fetchrow(unit)
        with pytest.raises(RuntimeError, match="cannot be rolled back"):
            await unit.rollback()
    assert pool.driver.sent == ["INSERT 'last'", "SELECT 'read'"]


async def test_behind_a_transaction_mode_pooler_every_unit_begins_on_entering() -> None:
    """There a statement alone could be prepared on one server connection and run on another."""
    pool = _Pool(pooler=True)
    async with _unit(pool) as unit:
        await READ.fetchrow(unit)
        await LAST.fetchrow(unit)
        await unit.commit()
    async with _unit(pool, read_only=True) as unit:
        await READ.fetchrow(unit)
    assert pool.driver.sent == [
        *("BEGIN", "SELECT 'read'", "INSERT 'last'", "COMMIT"),
        *("BEGIN READ ONLY", "SELECT 'read'", "ROLLBACK"),
    ]


async def test_a_read_only_unit_never_begins_whatever_its_statements_say() -> None:
    pool = _Pool()
    async with _unit(pool, read_only=True) as unit:
        await WRITE.execute(unit)  # the server refuses nothing here; a read-only unit's port has no writes
        await LAST.fetchrow(unit)
    assert pool.driver.sent == ["UPDATE 'write'", "INSERT 'last'"]


@pytest.mark.parametrize(("statement", "code"), [(LAST, "commit_outcome_unknown"), (WRITE, "service_unavailable")])
async def test_a_connection_lost_during_a_write_that_commits_as_it_runs_leaves_its_outcome_unknown(
    statement: Statement, code: str
) -> None:
    pool = _Pool()

    async def lost(sql: str, *arguments: object) -> None:
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")

    pool.driver.fetchrow = lost  # type: ignore[method-assign]
    with pytest.raises(ServiceUnavailable) as raised:
        async with _unit(pool) as unit:
            await statement.fetchrow(unit)
    assert raised.value.code == code
