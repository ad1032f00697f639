"""One pooled connection checked out for one unit of work, with at most one transaction."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from asyncpg.transaction import Transaction

from todo_api.adapters.sql.engine.errors import leaves_connection_usable, translate
from todo_api.adapters.sql.engine.pool import ConnectionPool, Driver, PoolTimeout
from todo_api.domain.errors import ServiceUnavailable


class Connection:
    """`async with` takes a connection from the pool; `commit()` is explicit and leaving without
    it rolls back; the connection goes back to the pool, or is discarded when a failure may have
    left it unusable.

    A unit that may write begins its transaction at the first statement that needs one, not on
    entering (`deferred`), so that the commonest write, one statement after a few reads, is its
    own transaction:

    - a plain read (`Statement(..., plain_read=True)`) runs alone while the BEGIN waits: under
      READ COMMITTED each statement reads its own snapshot anyway, and the unit has written
      nothing it would need to see;
    - the unit's last write (`last_write=True`) runs alone when nothing before it needed the
      transaction: one statement is atomic, so the BEGIN and the COMMIT round trips are saved (a
      create is two round trips, not four). It commits as it runs: a failure that may have cut it
      short says the outcome is unknown, as a lost COMMIT does; a statement that is not a plain
      read after it, or a rollback, is a bug and raises;
    - any other statement sends the BEGIN first.

    `read_only` runs in autocommit: a use case that only reads skips the BEGIN and ROLLBACK round
    trips. Behind a transaction-mode pooler, though, every unit begins on entering: there a
    statement's prepare and execute must share a transaction, or they may land on different
    server connections.
    """

    def __init__(self, pool: ConnectionPool, *, read_only: bool = False) -> None:
        self._pool = pool
        self.read_only = read_only
        self.retry_after_s = pool.retry_after_s
        self._begins_on_entering = pool.pooler
        self._driver: Driver | None = None
        self._transaction: Transaction | None = None
        self.deferred = False
        """The BEGIN waits for a statement that needs it (statement.py checks, then `begin_for`)."""
        self.wrote_alone = False
        """The unit's last write ran, and committed, on its own."""

    @property
    def driver(self) -> Driver:
        if self._driver is None:
            raise RuntimeError("use the unit of work inside `async with`")
        return self._driver

    async def __aenter__(self) -> Self:
        try:
            self._driver = await self._pool.acquire()
            if self._begins_on_entering:
                await self._begin()
            else:
                self.deferred = not self.read_only
        except PoolTimeout as error:
            raise ServiceUnavailable(
                "The database is busy; try again shortly.", retry_after_s=self.retry_after_s
            ) from error
        except BaseException as error:
            await self._close(error)
            raise (translate(error, retry_after_s=self.retry_after_s) or error) from error
        return self

    async def begin_for(self, *, last_write: bool) -> None:
        """A statement that is not a plain read is about to run while the BEGIN is `deferred`."""
        if self.wrote_alone:
            raise RuntimeError("the unit's last write has committed on its own: only plain reads may follow it")
        if last_write:
            self.wrote_alone = True
        else:
            self.deferred = False
            await self._begin()

    async def _begin(self) -> None:
        self._transaction = self.driver.transaction(readonly=self.read_only)
        await self._transaction.start()

    async def commit(self) -> None:
        if self.read_only:
            raise RuntimeError("a read-only unit of work has nothing to commit")
        if self.deferred:  # nothing needed the transaction, or the last write committed on its own
            self.deferred = False
            return
        if self._transaction is None:
            raise RuntimeError("the unit of work has ended its transaction already")
        transaction, self._transaction = self._transaction, None
        try:
            await transaction.commit()
        except Exception as error:
            raise (translate(error, retry_after_s=self.retry_after_s, committing=True) or error) from error

    async def rollback(self) -> None:
        """Undo what this unit wrote, now; the connection stays checked out until the unit ends."""
        if self.wrote_alone:
            raise RuntimeError("the unit's last write has committed on its own: it cannot be rolled back")
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
