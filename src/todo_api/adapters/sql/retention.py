"""The `RetentionStore` port on PostgreSQL: batched deletes of what is older than the window.

Each batch is one short transaction that first tries a transaction-level advisory lock: with
several replicas, one prunes and the others skip the pass (no two raise the same person's
`pruned_through` in different orders, which could deadlock). It works behind a transaction-mode
pooler too, since the lock ends with the transaction.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from sqlalchemy import BigInteger, Table, bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import INTERVAL

from todo_api.adapters.sql.engine import Connection, ConnectionPool, Statement
from todo_api.adapters.sql.tables import (
    change_feeds,
    deleted_lists,
    deleted_tasks,
    events,
    refresh_tokens,
    revoked_sessions,
    sessions,
    webhook_deliveries,
)

RETENTION_LOCK: Final = 0x746F646F_72657400  # "todo ret"
_now = func.now()
_cutoff = _now - bindparam("age", type_=INTERVAL)

_LOCK = Statement(select(func.pg_try_advisory_xact_lock(bindparam("lock_key", type_=BigInteger))))

# Events: a batch of the oldest, then each person's horizon raised over what went, in one statement.
_doomed = (
    select(events.c.user_id, events.c.position)
    .where(events.c.created_at < _cutoff)
    .order_by(events.c.created_at)
    .limit(bindparam("batch"))
    .cte("doomed")
)
_gone = (
    delete(events)
    .where(events.c.user_id == _doomed.c.user_id, events.c.position == _doomed.c.position)
    .returning(events.c.user_id, events.c.position)
    .cte("gone")
)
_tops = select(_gone.c.user_id, func.max(_gone.c.position).label("top")).group_by(_gone.c.user_id).subquery("tops")
_raised = (
    update(change_feeds)
    .where(change_feeds.c.user_id == _tops.c.user_id)
    .values(pruned_through=func.greatest(change_feeds.c.pruned_through, _tops.c.top))
    .returning(change_feeds.c.user_id)
    .cte("raised")
)
_PRUNE_EVENTS = Statement(select(func.count()).select_from(_gone).add_cte(_raised))


def _prune_older(table: Table, at: Any, key: Any = None) -> Statement:
    """A batch of `table`'s rows whose `at` is older than the window, oldest first, by `key` (its id)."""
    key = table.c.id if key is None else key
    batch = select(key).where(at < _cutoff).order_by(at).limit(bindparam("batch")).scalar_subquery()
    gone = delete(table).where(key.in_(batch)).returning(key).cte("gone")
    return Statement(select(func.count()).select_from(gone))


_PRUNE_TASKS = _prune_older(deleted_tasks, deleted_tasks.c.deleted_at)
_PRUNE_LISTS = _prune_older(deleted_lists, deleted_lists.c.deleted_at)
_PRUNE_DELIVERIES = _prune_older(webhook_deliveries, webhook_deliveries.c.at)
# An ended session matters while one of its access tokens could be valid (a day at most, the
# window at least a day): past the window no process reads it again.
_PRUNE_ENDED_SESSIONS = _prune_older(revoked_sessions, revoked_sessions.c.revoked_at, revoked_sessions.c.session_id)
# A session or refresh token past its expiry refreshes nothing and is listed nowhere: without
# this, every login and every refresh would leave a row for good.
_PRUNE_EXPIRED_SESSIONS = _prune_older(sessions, sessions.c.expires_at)
_PRUNE_EXPIRED_TOKENS = _prune_older(refresh_tokens, refresh_tokens.c.expires_at, refresh_tokens.c.token_hash)


class SqlRetentionStore:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    async def _prune(self, statement: Statement, older_than_days: int, batch: int) -> int:
        async with Connection(self._pool) as connection:
            if not await _LOCK.fetchval(connection, lock_key=RETENTION_LOCK):
                return 0  # another replica is pruning
            count = int(await statement.fetchval(connection, age=timedelta(days=older_than_days), batch=batch))
            await connection.commit()
        return count

    async def prune_events(self, older_than_days: int, batch: int) -> int:
        return await self._prune(_PRUNE_EVENTS, older_than_days, batch)

    async def prune_trash(self, older_than_days: int, batch: int) -> int:
        tasks = await self._prune(_PRUNE_TASKS, older_than_days, batch)
        return tasks + await self._prune(_PRUNE_LISTS, older_than_days, batch)

    async def prune_deliveries(self, older_than_days: int, batch: int) -> int:
        return await self._prune(_PRUNE_DELIVERIES, older_than_days, batch)

    async def prune_ended_sessions(self, older_than_days: int, batch: int) -> int:
        return await self._prune(_PRUNE_ENDED_SESSIONS, older_than_days, batch)

    async def prune_expired_sessions(self, older_than_days: int, batch: int) -> int:
        removed = await self._prune(_PRUNE_EXPIRED_SESSIONS, older_than_days, batch)
        return removed + await self._prune(_PRUNE_EXPIRED_TOKENS, older_than_days, batch)
