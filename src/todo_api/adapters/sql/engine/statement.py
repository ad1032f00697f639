"""Core statements compiled once, run by asyncpg itself, their failures translated at the call.

Every statement is SQLAlchemy Core over the Table objects, with bound parameters. Compiling it
once (at import, or once per shape of a filtered listing) and handing asyncpg the SQL and the
arguments skips what SQLAlchemy redoes on every execution: building the statement, its cache key,
the greenlet hop into the sync engine and back, wrapping each row. On the hot routes that was
about a fifth of a request's CPU (docs/performance.md). asyncpg keeps each SQL text prepared per
connection, except behind a pooler, where its statement cache is off.

The supported subset of Core is what compiles to one fixed SQL text with `$n` placeholders:
`select`, `insert` (PostgreSQL's, with `on_conflict_*`), `update` and `delete`, with `returning`,
over columns of the types asyncpg converts by itself (integers, text, booleans, timestamps,
intervals, arrays of those, and JSON and JSONB, which the pool's connections decode into Python
values).
Refused when the statement is built, so a mistake fails at import rather than on a request:

- an expanding parameter (`column.in_([...])` or `in_(bindparam(..., expanding=True))`), which
  compiles to a POSTCOMPILE placeholder that only SQLAlchemy's executor fills in. Write
  `column == any_(bindparam("ids", type_=ARRAY(BigInteger)))` and pass a list instead: one SQL
  text for any number of values, which is also what keeps it prepared;
- a `TypeDecorator`, whose processing only SQLAlchemy's executor runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement
from sqlalchemy.types import ARRAY, JSON, TypeDecorator, TypeEngine

from todo_api.adapters.sql.engine.errors import translate
from todo_api.domain.errors import DomainError

if TYPE_CHECKING:
    from todo_api.adapters.sql.engine.connection import Connection

_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]


class Row(Protocol):
    """A result row as repositories read it: by column name."""

    def __getitem__(self, key: str, /) -> Any: ...


class Statement:
    """A statement's SQL (`$1`, `$2`... placeholders) and how named values become its arguments.

    Values are passed by the `bindparam` names the statement was built with; literals that Core
    bound by itself (the `1` of `version + 1`) keep their compiled values. A failure of the call
    leaves as a domain error (errors.py), except a bug, which stays what it is.

    What it needs of a unit's transaction (connection.py): by default, to run inside it.
    `plain_read`: a SELECT that takes no lock and calls nothing that does, so it may run before
    the BEGIN. `last_write`: the unit writes nothing after it, so when nothing before it needed
    the transaction it may run, and commit, on its own.
    """

    __slots__ = ("_defaults", "_names", "_processors", "last_write", "plain_read", "sql")

    def __init__(self, statement: ClauseElement, *, plain_read: bool = False, last_write: bool = False) -> None:
        self.plain_read = plain_read
        self.last_write = last_write
        compiled = cast(SQLCompiler, statement.compile(dialect=_DIALECT))
        _refuse_what_cannot_run(statement, compiled)
        self.sql: str = compiled.string
        self._names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self._defaults: dict[str, Any] = {
            name: compiled.params[name] for name in self._names if not compiled.binds[name].required
        }
        types = {name: compiled.binds[name].type for name in self._names}
        # JSON and JSONB (and arrays of them) go to the connection's codecs as Python values; other
        # types keep SQLAlchemy's bind processing (a boolean's check), so asyncpg receives what
        # SQLAlchemy would send.
        self._processors: dict[str, Callable[[Any], Any]] = {
            name: processor
            for name, kind in types.items()
            if not _is_json(kind) and (processor := kind.dialect_impl(_DIALECT).bind_processor(_DIALECT))
        }

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        """The positional arguments, in placeholder order; a missing required value is a KeyError."""
        arguments = []
        for name in self._names:
            value = values[name] if name in values or name not in self._defaults else self._defaults[name]
            processor = self._processors.get(name)
            arguments.append(processor(value) if processor is not None and value is not None else value)
        return arguments

    # The four calls are written out rather than routed through one helper: a shared coroutine
    # would add a frame to every statement a request runs.

    async def fetch(self, connection: Connection, **values: Any) -> Sequence[Row]:
        try:
            if connection.deferred and not self.plain_read:
                await connection.begin_for(last_write=self.last_write)
            return await connection.driver.fetch(self.sql, *self.arguments(values))
        except Exception as error:
            if (domain_error := self._translated(error, connection)) is None:
                raise
            raise domain_error from error

    async def fetchrow(self, connection: Connection, **values: Any) -> Row | None:
        try:
            if connection.deferred and not self.plain_read:
                await connection.begin_for(last_write=self.last_write)
            return await connection.driver.fetchrow(self.sql, *self.arguments(values))
        except Exception as error:
            if (domain_error := self._translated(error, connection)) is None:
                raise
            raise domain_error from error

    async def fetchval(self, connection: Connection, **values: Any) -> Any:
        try:
            if connection.deferred and not self.plain_read:
                await connection.begin_for(last_write=self.last_write)
            return await connection.driver.fetchval(self.sql, *self.arguments(values))
        except Exception as error:
            if (domain_error := self._translated(error, connection)) is None:
                raise
            raise domain_error from error

    async def execute(self, connection: Connection, **values: Any) -> None:
        try:
            if connection.deferred and not self.plain_read:
                await connection.begin_for(last_write=self.last_write)
            await connection.driver.execute(self.sql, *self.arguments(values))
        except Exception as error:
            if (domain_error := self._translated(error, connection)) is None:
                raise
            raise domain_error from error

    def _translated(self, error: Exception, connection: Connection) -> DomainError | None:
        committing = self.last_write and connection.wrote_alone
        return translate(error, retry_after_s=connection.retry_after_s, committing=committing)


def _refuse_what_cannot_run(statement: ClauseElement, compiled: SQLCompiler) -> None:
    expanding = [name for name, bind in compiled.binds.items() if bind.expanding or bind.literal_execute]
    if expanding or "POSTCOMPILE" in compiled.string:
        raise ValueError(
            f"an expanding parameter ({', '.join(expanding) or 'in_()'}) compiles to a placeholder only "
            "SQLAlchemy's executor fills in; write `column == any_(bindparam(name, type_=ARRAY(...)))` "
            "and pass a list"
        )
    parameters = ((f"parameter {name!r}", bind.type) for name, bind in compiled.binds.items())
    columns = ((f"column {column.key!r}", column.type) for column in _result_columns(statement))
    for what, kind in (*parameters, *columns):
        if reason := _unsupported(kind):
            raise ValueError(f"{what}: {reason}")


def _is_json(kind: TypeEngine[Any]) -> bool:
    """JSON or JSONB, or an array of either (JSONB is a JSON)."""
    return isinstance(kind.item_type if isinstance(kind, ARRAY) else kind, JSON)


def _result_columns(statement: ClauseElement) -> Iterable[Any]:
    return cast(Iterable[Any], getattr(statement, "exported_columns", ()))


def _unsupported(kind: TypeEngine[Any]) -> str | None:
    if isinstance(kind.dialect_impl(_DIALECT), TypeDecorator):
        return f"{type(kind).__name__} needs SQLAlchemy's executor to process its values; map them in the repository"
    if isinstance(kind, ARRAY):
        return _unsupported(kind.item_type)
    return None
