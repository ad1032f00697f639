"""Core statements compiled once, then run by asyncpg itself.

Every statement is still SQLAlchemy Core over the Table objects, with bound parameters. Compiling
it once (at import, or once per shape of a filtered listing) and handing asyncpg the SQL and the
arguments skips what SQLAlchemy redoes on every execution: building the statement object, its
cache key, the greenlet hop into the sync engine and back, wrapping each row. On the hot routes
that was about a fifth of a request's CPU (docs/performance.md). asyncpg keeps each SQL text
prepared per connection, except behind a pooler, where its statement cache is off.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias, cast

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]

Driver: TypeAlias = "asyncpg.Connection[asyncpg.Record]"  # the connection statements run on


class Compiled:
    """A statement's SQL (`$1`, `$2`... placeholders) and how named values become its arguments.

    Values are passed by the `bindparam` names the statement was built with; literals that Core
    bound by itself (the `1` of `version + 1`) keep their compiled values. Types that convert on
    the way in (JSONB) keep their bind processors, so asyncpg receives what SQLAlchemy would send.
    """

    __slots__ = ("_defaults", "_names", "_processors", "sql")

    def __init__(self, statement: ClauseElement) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=_DIALECT))
        self.sql: str = compiled.string
        self._names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self._defaults: dict[str, Any] = {
            name: compiled.params[name] for name in self._names if not compiled.binds[name].required
        }
        processors = {name: compiled.binds[name].type.dialect_impl(_DIALECT) for name in self._names}
        self._processors: dict[str, Callable[[Any], Any]] = {
            name: processor for name, impl in processors.items() if (processor := impl.bind_processor(_DIALECT))
        }

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        """The positional arguments, in placeholder order; a missing required value is a KeyError."""
        arguments = []
        for name in self._names:
            value = values[name] if name in values or name not in self._defaults else self._defaults[name]
            processor = self._processors.get(name)
            arguments.append(processor(value) if processor is not None and value is not None else value)
        return arguments

    async def fetch(self, connection: Driver, **values: Any) -> list[asyncpg.Record]:
        return await connection.fetch(self.sql, *self.arguments(values))

    async def fetchrow(self, connection: Driver, **values: Any) -> asyncpg.Record | None:
        return await connection.fetchrow(self.sql, *self.arguments(values))

    async def fetchval(self, connection: Driver, **values: Any) -> Any:
        return await connection.fetchval(self.sql, *self.arguments(values))

    async def execute(self, connection: Driver, **values: Any) -> None:
        await connection.execute(self.sql, *self.arguments(values))
