"""One connection and one transaction per use case; commit is explicit, rollback the default."""

from __future__ import annotations

from types import TracebackType

import asyncpg
from asyncpg.transaction import Transaction
from sqlalchemy import literal, select

from todo_api.adapters.sql.auth_repositories import SqlRateLimiter, SqlRefreshTokenRepository, SqlUserRepository
from todo_api.adapters.sql.compiled import Compiled, Driver
from todo_api.adapters.sql.database import ConnectionPool, PoolTimeout
from todo_api.adapters.sql.errors import translate
from todo_api.adapters.sql.task_repositories import SqlIdempotencyKeys, SqlTaskRepository
from todo_api.domain.errors import DomainError, ServiceUnavailable


class SqlUnitOfWork:
    """The `UnitOfWork` port: repositories share one connection and one transaction.

    The transaction and every statement run on a pooled asyncpg connection (compiled.py and
    database.py say why).

    `read_only` runs in autocommit: a use case that only reads skips the BEGIN and ROLLBACK
    round trips (each statement still sees a consistent snapshot of its own). Not behind a
    transaction-mode pooler, though: there a statement's prepare and execute must share a
    transaction, or they may land on different server connections.
    """

    def __init__(self, pool: ConnectionPool, *, read_only: bool = False, retry_after_s: int = 2) -> None:
        self._pool = pool
        self._read_only = read_only
        self._autocommit = read_only and not pool.pooler
        self._retry_after_s = retry_after_s
        self._driver: Driver | None = None
        self._transaction: Transaction | None = None

    @property
    def driver(self) -> Driver:
        if self._driver is None:
            raise RuntimeError("use the unit of work inside `async with`")
        return self._driver

    @property
    def tasks(self) -> SqlTaskRepository:
        return SqlTaskRepository(self.driver)

    @property
    def idempotency_keys(self) -> SqlIdempotencyKeys:
        return SqlIdempotencyKeys(self.driver)

    @property
    def users(self) -> SqlUserRepository:
        return SqlUserRepository(self.driver)

    @property
    def refresh_tokens(self) -> SqlRefreshTokenRepository:
        return SqlRefreshTokenRepository(self.driver)

    @property
    def rate_limits(self) -> SqlRateLimiter:
        return SqlRateLimiter(self.driver)

    async def __aenter__(self) -> SqlUnitOfWork:
        try:
            self._driver = await self._pool.acquire()
            if not self._autocommit:
                self._transaction = self.driver.transaction(readonly=self._read_only)
                await self._transaction.start()
        except PoolTimeout as error:
            raise ServiceUnavailable(
                "The database is busy; try again shortly.", retry_after_s=self._retry_after_s
            ) from error
        except BaseException as error:
            await self._close(error)
            raise (translate(error, retry_after_s=self._retry_after_s) or error) from error
        return self

    async def commit(self) -> None:
        if self._read_only or self._transaction is None:
            raise RuntimeError("a read-only unit of work has nothing to commit")
        transaction, self._transaction = self._transaction, None
        try:
            await transaction.commit()
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
        await self._close(exc)
        if exc is not None and (domain_error := translate(exc, retry_after_s=self._retry_after_s)) is not None:
            raise domain_error from exc

    async def _close(self, error: BaseException | None) -> None:
        """Roll back what was not committed and hand the connection back, or discard it when the
        failure may have left it unusable (anything but an error the server reported cleanly)."""
        transaction, self._transaction = self._transaction, None
        driver, self._driver = self._driver, None
        if driver is None:
            return
        usable = False
        try:
            if _leaves_connection_usable(error):
                if transaction is not None:
                    await transaction.rollback()
                usable = True
        except Exception:  # noqa: BLE001, S110 - the connection is gone either way; the pool opens another
            pass
        finally:  # also when cancelled mid-rollback: then it is discarded, never handed out half-done
            self._pool.release(driver, discard=not usable)


def _leaves_connection_usable(error: BaseException | None) -> bool:
    """A domain decision, or an error the server reported while the session stays up; not a lost,
    timed-out or cancelled operation, which may leave the protocol mid-message."""
    while error is not None:
        if isinstance(error, asyncpg.PostgresError):
            return not str(error.sqlstate or "").startswith(("08", "57P"))
        if not isinstance(error, DomainError):
            return False
        error = error.__cause__
    return True


_PING = Compiled(select(literal(1)))


class SqlDatabaseProbe:
    def __init__(self, pool: ConnectionPool, *, retry_after_s: int = 2) -> None:
        self._pool = pool
        self._retry_after_s = retry_after_s

    async def ping(self) -> None:
        async with SqlUnitOfWork(self._pool, read_only=True, retry_after_s=self._retry_after_s) as unit:
            await _PING.fetchval(unit.driver)
