"""One connection and one transaction per use case; commit is explicit, rollback the default."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import literal, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from todo_api.adapters.sql.auth_repositories import SqlRateLimiter, SqlRefreshTokenRepository, SqlUserRepository
from todo_api.adapters.sql.errors import translate
from todo_api.adapters.sql.task_repositories import SqlIdempotencyKeys, SqlTaskRepository
from todo_api.domain.errors import ServiceUnavailable


class SqlUnitOfWork:
    """The `UnitOfWork` port: repositories share one connection and one transaction.

    `read_only` runs in autocommit: a use case that only reads skips the BEGIN and ROLLBACK
    round trips (each statement still sees a consistent snapshot of its own). Not behind a
    transaction-mode pooler, though: there a statement's prepare and execute must share a
    transaction, or they may land on different server connections.
    """

    def __init__(
        self, engine: AsyncEngine, *, read_only: bool = False, pooled: bool = False, retry_after_s: int = 2
    ) -> None:
        self._engine = engine
        self._read_only = read_only
        self._autocommit = read_only and not pooled
        self._retry_after_s = retry_after_s
        self._connection: AsyncConnection | None = None

    @property
    def connection(self) -> AsyncConnection:
        if self._connection is None:
            raise RuntimeError("use the unit of work inside `async with`")
        return self._connection

    @property
    def tasks(self) -> SqlTaskRepository:
        return SqlTaskRepository(self.connection)

    @property
    def idempotency_keys(self) -> SqlIdempotencyKeys:
        return SqlIdempotencyKeys(self.connection)

    @property
    def users(self) -> SqlUserRepository:
        return SqlUserRepository(self.connection)

    @property
    def refresh_tokens(self) -> SqlRefreshTokenRepository:
        return SqlRefreshTokenRepository(self.connection)

    @property
    def rate_limits(self) -> SqlRateLimiter:
        return SqlRateLimiter(self.connection)

    async def __aenter__(self) -> SqlUnitOfWork:
        try:
            self._connection = await self._engine.connect()
            if self._autocommit:
                await self._connection.execution_options(isolation_level="AUTOCOMMIT")
            else:
                await self._connection.begin()
        except Exception as error:
            await self._close()
            raise (translate(error, retry_after_s=self._retry_after_s) or error) from error
        return self

    async def commit(self) -> None:
        if self._read_only:
            raise RuntimeError("a read-only unit of work has nothing to commit")
        try:
            await self.connection.commit()
        except Exception as error:
            translated = translate(error, retry_after_s=self._retry_after_s)
            if type(translated) is ServiceUnavailable:
                # The COMMIT was sent; whether the server applied it before the connection went is
                # unknowable from here. Say so, rather than imply nothing was saved.
                raise ServiceUnavailable(
                    "The database went away while saving: the change may or may not have been stored. "
                    "Retry with the same Idempotency-Key to find out.",
                    retry_after_s=self._retry_after_s,
                    code="commit_outcome_unknown",
                ) from error
            raise (translated or error) from error

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._close()
        if exc is not None and (domain_error := translate(exc, retry_after_s=self._retry_after_s)) is not None:
            raise domain_error from exc

    async def _close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            try:
                await connection.close()  # rolls back whatever was not committed
            except Exception:  # noqa: BLE001 - the connection is gone either way; the pool replaces it
                await connection.invalidate()


class SqlDatabaseProbe:
    def __init__(self, engine: AsyncEngine, *, retry_after_s: int = 2) -> None:
        self._engine = engine
        self._retry_after_s = retry_after_s

    async def ping(self) -> None:
        try:
            async with self._engine.connect() as connection:
                await connection.execute(select(literal(1)))
        except Exception as error:
            raise (translate(error, retry_after_s=self._retry_after_s) or error) from error
