"""The `UnitOfWork` port on PostgreSQL: repositories that share one connection and transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sqlalchemy import literal, select

from todo_api.adapters.sql.auth_repositories import (
    SqlRateLimiter,
    SqlRefreshTokenRepository,
    SqlSessionRepository,
    SqlUserRepository,
)
from todo_api.adapters.sql.change_log import DataOf, SqlChangeLog
from todo_api.adapters.sql.conversation_repository import SqlConversationRepository
from todo_api.adapters.sql.engine import Connection, ConnectionPool, Statement
from todo_api.adapters.sql.idempotency_keys import SqlIdempotencyKeys
from todo_api.adapters.sql.list_repository import SqlListRepository
from todo_api.adapters.sql.reminder_repository import SqlReminderRepository
from todo_api.adapters.sql.task_repository import SqlTaskRepository
from todo_api.adapters.sql.webhook_repository import SqlWebhookRepository

Announce = Callable[[Mapping[str, int]], None]
"""Told each person's last position once a unit that wrote events has committed."""


def _nobody(_: Mapping[str, int]) -> None:
    pass


class SqlUnitOfWork(Connection):
    """A checked-out connection (engine) seen through the repositories. A subclass rather than a
    wrapper: entering, committing and leaving are the connection's own, with no hop in between.
    The changes recorded on it are written just before the COMMIT (change_log.py) and announced
    just after it (change_notifications.py)."""

    def __init__(
        self, pool: ConnectionPool, data_of: DataOf, *, read_only: bool = False, announce: Announce = _nobody
    ) -> None:
        super().__init__(pool, read_only=read_only)
        self._changes = SqlChangeLog(self, data_of)
        self._announce = announce

    @property
    def changes(self) -> SqlChangeLog:
        return self._changes

    async def commit(self) -> None:
        await self._changes.flush()
        await super().commit()
        if self._changes.written:
            self._announce(self._changes.written)

    async def rollback(self) -> None:
        self._changes.forget()
        await super().rollback()

    @property
    def tasks(self) -> SqlTaskRepository:
        return SqlTaskRepository(self, self._changes)

    @property
    def lists(self) -> SqlListRepository:
        return SqlListRepository(self)

    @property
    def idempotency_keys(self) -> SqlIdempotencyKeys:
        return SqlIdempotencyKeys(self)

    @property
    def users(self) -> SqlUserRepository:
        return SqlUserRepository(self)

    @property
    def refresh_tokens(self) -> SqlRefreshTokenRepository:
        return SqlRefreshTokenRepository(self)

    @property
    def rate_limits(self) -> SqlRateLimiter:
        return SqlRateLimiter(self)

    @property
    def webhooks(self) -> SqlWebhookRepository:
        return SqlWebhookRepository(self)

    @property
    def reminders(self) -> SqlReminderRepository:
        return SqlReminderRepository(self)

    @property
    def conversations(self) -> SqlConversationRepository:
        return SqlConversationRepository(self)

    @property
    def sessions(self) -> SqlSessionRepository:
        return SqlSessionRepository(self)


class SqlUnitsOfWork:
    """The `UnitOfWorkFactory` port: a unit on the pool, read-only when the use case says so."""

    def __init__(self, pool: ConnectionPool, data_of: DataOf, announce: Announce = _nobody) -> None:
        self._pool = pool
        self._data_of = data_of
        self._announce = announce

    def __call__(self, *, read_only: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(self._pool, self._data_of, read_only=read_only, announce=self._announce)


_PING = Statement(select(literal(1)))


class SqlDatabaseProbe:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    async def ping(self) -> None:
        async with Connection(self._pool, read_only=True) as connection:
            await _PING.fetchval(connection)
