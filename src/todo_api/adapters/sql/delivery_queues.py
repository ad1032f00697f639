"""The `DeliveryQueue` port on PostgreSQL: webhooks, and the publisher's per-person cursors.

A follower is due when it is active, its retry time has come, nobody holds an unexpired lease on
it and its person's feed has gone past its cursor. Leasing is one short statement: `FOR UPDATE
SKIP LOCKED` picks due rows no other worker is leasing right now, and the UPDATE stamps them with
`leased_until` and a token. Every later write names the token, so a worker whose lease expired
(and was taken over) changes nothing. Times are the database's `now()`: replicas' clocks may differ.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    case,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import INTERVAL, insert
from sqlalchemy.sql.elements import ColumnElement

from todo_api.adapters.sql.engine import Connection, ConnectionPool, Row, Statement
from todo_api.adapters.sql.tables import change_feeds, events, publisher_cursors, webhook_deliveries, webhooks
from todo_api.domain.changes import FeedEvent
from todo_api.domain.webhooks import Attempt, Lease

_now = func.now()
_EVENTS = Statement(
    select(events.c.position, events.c.payload)
    .where(events.c.user_id == bindparam("owner"), events.c.position > bindparam("after", type_=BigInteger))
    .order_by(events.c.position)
    .limit(bindparam("limit"))
)


class _Statements:
    """Lease, advance and release for one table of followers (`key`: the column naming one)."""

    def __init__(self, table: Table, key: str, *, active: ColumnElement[bool] | None = None) -> None:
        c = table.c
        due_where = [
            c.next_attempt_at <= _now,
            or_(c.leased_until.is_(None), c.leased_until < _now),
            change_feeds.c.position > c.position,
        ]
        if active is not None:
            due_where.append(active)
        due = (
            select(c[key].label("key"), change_feeds.c.pruned_through)
            .join(change_feeds, change_feeds.c.user_id == c.user_id)
            .where(*due_where)
            .order_by(c.next_attempt_at)
            .limit(bindparam("limit"))
            .with_for_update(of=table, skip_locked=True)
            .cte("due")
        )
        extra = [c.url, c.secret, c.event_types] if table is webhooks else []
        self.lease = Statement(
            update(table)
            .where(c[key] == due.c.key)
            .values(leased_until=_now + bindparam("lease", type_=INTERVAL), leased_by=bindparam("token"))
            .returning(c[key].label("key"), c.user_id, c.position, c.attempts, due.c.pruned_through, *extra)
        )
        held = (c[key] == bindparam("key", type_=c[key].type), c.leased_by == bindparam("token", type_=String))
        advance = update(table).where(*held).values(position=bindparam("position", type_=BigInteger), attempts=0)
        self.advance = Statement(advance.returning(c[key]))
        release_values: dict[str, Any] = {
            "position": bindparam("position", type_=BigInteger),
            "attempts": bindparam("attempts", type_=Integer),
            "next_attempt_at": _now + bindparam("retry_in", type_=INTERVAL),
            "leased_until": None,
            "leased_by": None,
        }
        if table is webhooks:
            reason = bindparam("disabled_reason", type_=Text)
            release_values["state"] = case((reason.is_(None), c.state), else_="disabled")
            release_values["disabled_reason"] = func.coalesce(reason, c.disabled_reason)
        release = update(table).where(*held).values(release_values)
        self.release = Statement(release.returning(c[key]))
        if table is webhooks:
            self.advance_logged = Statement(_logged(advance.returning(c.id).cte("moved")))
            self.release_logged = Statement(_logged(release.returning(c.id).cte("moved")))


def _logged(moved: Any) -> Any:
    """The cursor's move and its delivery log row in one statement: no row when the lease was lost."""
    return (
        insert(webhook_deliveries)
        .from_select(
            [
                "webhook_id",
                "event_id",
                "event_type",
                "position",
                "attempt",
                "status_code",
                "error",
                "duration_ms",
                "delivered",
            ],
            select(
                moved.c.id,
                bindparam("event_id", type_=String),
                bindparam("event_type", type_=String),
                bindparam("event_position", type_=BigInteger),
                bindparam("attempt", type_=Integer),
                bindparam("status_code", type_=Integer),
                bindparam("error", type_=Text),
                bindparam("duration_ms", type_=Integer),
                bindparam("delivered", type_=Boolean),
            ).select_from(moved),
        )
        .returning(webhook_deliveries.c.id)
    )


_WEBHOOKS = _Statements(webhooks, "id", active=webhooks.c.state == "active")
_PUBLISHER = _Statements(publisher_cursors, "user_id")
# Everyone with a feed gets a publisher cursor (from the start of what is kept) on the first pass.
_ENROL = Statement(
    insert(publisher_cursors)
    .from_select(
        ["user_id"],
        select(change_feeds.c.user_id).where(
            ~exists().where(publisher_cursors.c.user_id == change_feeds.c.user_id),
            change_feeds.c.position > 0,
        ),
    )
    .on_conflict_do_nothing(index_elements=["user_id"])
)


def _log_values(attempt: Attempt) -> dict[str, Any]:
    outcome = attempt.outcome
    return {
        "event_id": attempt.event_id,
        "event_type": attempt.event_type,
        "event_position": attempt.position,
        "attempt": attempt.attempt,
        "status_code": outcome.status_code,
        "error": (outcome.error or "")[:500] or None,
        "duration_ms": outcome.duration_ms,
        "delivered": outcome.delivered,
    }


class _SqlQueue:
    _statements: _Statements

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def _lease_of(self, row: Row, token: str) -> Lease:
        raise NotImplementedError

    async def _before_lease(self, connection: Connection) -> None:
        """Anything to do in the leasing transaction, before the lease."""

    async def lease(self, limit: int, lease_s: float) -> list[Lease]:
        token = str(uuid.uuid4())
        async with Connection(self._pool) as connection:
            await self._before_lease(connection)
            rows = await self._statements.lease.fetch(
                connection, limit=limit, lease=timedelta(seconds=lease_s), token=token
            )
            await connection.commit()
        return [self._lease_of(row, token) for row in rows]

    async def events(self, user_id: str, after: int, limit: int) -> list[FeedEvent]:
        async with Connection(self._pool, read_only=True) as connection:
            rows = await _EVENTS.fetch(connection, owner=user_id, after=after, limit=limit)
        return [FeedEvent(row["position"], row["payload"]) for row in rows]

    def _key(self, lease: Lease) -> object:
        return lease.follower_id

    async def advance(self, lease: Lease, position: int, attempt: Attempt | None) -> bool:
        held = {"key": self._key(lease), "token": lease.token, "position": position}
        async with Connection(self._pool) as connection:
            if attempt is None:
                moved = await self._statements.advance.fetchval(connection, **held)
            else:
                moved = await self._statements.advance_logged.fetchval(connection, **held, **_log_values(attempt))
            await connection.commit()
        return moved is not None

    async def release(
        self,
        lease: Lease,
        position: int,
        *,
        attempts: int,
        retry_in_s: float,
        attempt: Attempt | None = None,
        disabled_reason: str | None = None,
    ) -> bool:
        values: dict[str, Any] = {
            "key": self._key(lease),
            "token": lease.token,
            "position": position,
            "attempts": attempts,
            "retry_in": timedelta(seconds=retry_in_s),
        }
        if self._statements is _WEBHOOKS:
            values["disabled_reason"] = disabled_reason
        async with Connection(self._pool) as connection:
            if attempt is None:
                released = await self._statements.release.fetchval(connection, **values)
            else:
                released = await self._statements.release_logged.fetchval(connection, **values, **_log_values(attempt))
            await connection.commit()
        return released is not None


class SqlWebhookQueue(_SqlQueue):
    """Webhooks as followers: each its own cursor, retries, delivery log."""

    _statements = _WEBHOOKS

    def _lease_of(self, row: Row, token: str) -> Lease:
        return Lease(
            follower_id=row["key"],
            user_id=row["user_id"],
            position=row["position"],
            attempts=row["attempts"],
            horizon=row["pruned_through"],
            token=token,
            target=row["url"],
            secret=row["secret"],
            event_types=tuple(row["event_types"]),
        )


class SqlPublisherQueue(_SqlQueue):
    """The broker publisher: one cursor per person, so each person's events go out in order."""

    _statements = _PUBLISHER

    def _lease_of(self, row: Row, token: str) -> Lease:
        return Lease(
            follower_id=0,
            user_id=row["key"],
            position=row["position"],
            attempts=row["attempts"],
            horizon=row["pruned_through"],
            token=token,
        )

    def _key(self, lease: Lease) -> object:
        return lease.user_id

    async def _before_lease(self, connection: Connection) -> None:
        await _ENROL.execute(connection)
