"""One pooled connection checked out for one unit of work, with at most one transaction."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from asyncpg.transaction import Transaction

from todo_api.adapters.sql.engine.errors import leaves_connection_usable, translate
from todo_api.adapters.sql.engine.pool import ConnectionPool, Driver, PoolTimeout
from todo_api.domain.errors import ServiceUnavailable


class Connection:
    """`async with` takes a connection from the pool and begins a transaction; `commit()` is
    explicit and leaving without it rolls back; the connection goes back to the pool, or is
    discarded when a failure may have left it unusable.

    `read_only` runs in autocommit: a use case that only reads skips the BEGIN and ROLLBACK round
    trips (each statement still sees a consistent snapshot of its own). Not behind a
    transaction-mode pooler, though: there a statement's prepare and execute must share a
    transaction, or they may land on different server connections.
    """

    def __init__(self, pool: ConnectionPool, *, read_only: bool = False) -> None:
        self._pool = pool
        self.read_only = read_only
        self.retry_after_s = pool.retry_after_s
        self._autocommit = read_only and not pool.pooler
        self._driver: Driver | None = None
        self._transaction: Transaction | None = None

    @property
    def driver(self) -> Driver:
        if self._driver is None:
            raise RuntimeError("use the unit of work inside `async with`")
        return self._driver

    async def __aenter__(self) -> Self:
        try:
            self._driver = await self._pool.acquire()
            if not self._autocommit:
                self._transaction = self._driver.transaction(readonly=self.read_only)
                await self._transaction.start()
        except PoolTimeout as error:
            raise ServiceUnavailable(
                "The database is busy; try again shortly.", retry_after_s=self.retry_after_s
            ) from error
        except BaseException as error:
            await self._close(error)
            raise (translate(error, retry_after_s=self.retry_after_s) or error) from error
        return self

    async def commit(self) -> None:
        if self.read_only or self._transaction is None:
            raise RuntimeError("a read-only unit of work has nothing to commit")
        transaction, self._transaction = self._transaction, None
        try:
            await transaction.commit()
        except Exception as error:
            translated = translate(error, retry_after_s=self.retry_after_s)
            if type(translated) is ServiceUnavailable:
                # The COMMIT was sent; whether the server applied it before the connection went is
                # unknowable from here. Say so, rather than imply nothing was saved.
                raise ServiceUnavailable(
                    "The database went away while saving: the change may or may not have been stored. "
                    "Retry with the same Idempotency-Key to find out.",
                    retry_after_s=self.retry_after_s,
                    code="commit_outcome_unknown",
                ) from error
            raise (translated or error) from error

    async def rollback(self) -> None:
        """Undo what this unit wrote, now; the connection stays checked out until the unit ends."""
        transaction, self._transaction = self._transaction, None
        if transaction is not None:
            try:
                await transaction.rollback()
            except Exception as error:
                raise (translate(error, retry_after_s=self.retry_after_s) or error) from error

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._close(exc)

    async def _close(self, error: BaseException | None) -> None:
        """Roll back what was not committed and hand the connection back, or discard it when the
        failure may have left it unusable (anything but an error the server reported cleanly)."""
        transaction, self._transaction = self._transaction, None
        driver, self._driver = self._driver, None
        if driver is None:
            return
        usable = False
        try:
            if leaves_connection_usable(error):
                if transaction is not None:
                    await transaction.rollback()
                usable = True
        except Exception:  # noqa: BLE001, S110 - the connection is gone either way; the pool opens another
            pass
        finally:  # also when cancelled mid-rollback: then it is discarded, never handed out half-done
            self._pool.release(driver, discard=not usable)
