"""The change feed on PostgreSQL: a per-person counter and the outbox, written at commit.

Recorded changes wait in memory until the unit of work commits; then one statement bumps the
person's counter (taking its row lock), inserts the numbered events and queues a NOTIFY, and the
COMMIT follows at once. The lock is held only for that last round trip, and a second writer of
the same person gets its numbers only after the first committed: positions become visible in
order, so a reader that has seen N never later meets an event below N.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    String,
    Text,
    bindparam,
    cast,
    func,
    literal,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert

from todo_api.adapters.sql.engine import Connection, Statement
from todo_api.adapters.sql.tables import change_feeds, events
from todo_api.domain.changes import Change, Deleted, FeedEvent, coalesced
from todo_api.domain.lists import TaskList
from todo_api.domain.tasks import Task

NOTIFY_CHANNEL: Final = "todo_changes"
"""Each committed write notifies `<user id>:<last position>` here (change_notifications.py)."""

DataOf = Callable[[Task | TaskList], dict[str, Any]]
"""The object as the API returns it: the composition root passes the HTTP representation."""

_count = bindparam("count", type_=Integer)
_feed = (
    insert(change_feeds)
    .values(user_id=bindparam("owner"), position=_count)
    .on_conflict_do_update(index_elements=["user_id"], set_={"position": change_feeds.c.position + _count})
    .returning(
        change_feeds.c.position,
        func.pg_notify(NOTIFY_CHANNEL, change_feeds.c.user_id + literal(":") + cast(change_feeds.c.position, Text)),
    )
    .cte("feed")
)
_recorded = func.unnest(
    bindparam("ids", type_=ARRAY(Text)),
    bindparam("aggregate_types", type_=ARRAY(Text)),
    bindparam("aggregate_ids", type_=ARRAY(Text)),
    bindparam("types", type_=ARRAY(Text)),
    bindparam("payloads", type_=ARRAY(JSONB)),
).table_valued("id", "aggregate_type", "aggregate_id", "type", "payload", with_ordinality="ord", name="recorded")
_recorded = _recorded.render_derived()
_position = _feed.c.position - _count + _recorded.c.ord
_APPEND = Statement(
    insert(events).from_select(
        ["user_id", "position", "id", "aggregate_type", "aggregate_id", "type", "payload", "created_at"],
        select(
            bindparam("owner", type_=String),
            _position,
            cast(_recorded.c.id, events.c.id.type),
            _recorded.c.aggregate_type,
            _recorded.c.aggregate_id,
            _recorded.c.type,
            # The position is only known here; it travels in the CloudEvent as an extension.
            _recorded.c.payload.op("||")(func.jsonb_build_object(literal("position"), _position)),
            bindparam("created_at", type_=DateTime(timezone=True)),
        ).select_from(_feed.join(_recorded, literal_column("true"))),
    )
)
_owner = change_feeds.c.user_id == bindparam("owner")
_POSITION = Statement(select(change_feeds.c.position).where(_owner))
_HORIZON = Statement(select(change_feeds.c.pruned_through).where(_owner))
_READ = Statement(
    select(events.c.position, events.c.payload)
    .where(events.c.user_id == bindparam("owner"), events.c.position > bindparam("after", type_=BigInteger))
    .order_by(events.c.position)
    .limit(bindparam("limit"))
)


def cloud_event(user_id: str, change: Change, data_of: DataOf, at: datetime) -> dict[str, Any]:
    """A CloudEvents 1.0 JSON event; the position is added when it is numbered."""
    subject = change.subject
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": f"/api/{user_id}",
        "type": change.type,
        "subject": f"{change.aggregate_type}s/{subject.id}",
        "time": at.isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": (
            {"id": subject.id, "deleted_at": subject.deleted_at.isoformat().replace("+00:00", "Z")}
            if isinstance(subject, Deleted)
            else data_of(subject)
        ),
    }


class SqlChangeLog:
    """The `ChangeLog` port for one unit of work; `flush` runs just before its COMMIT."""

    def __init__(self, connection: Connection, data_of: DataOf) -> None:
        self._db = connection
        self._data_of = data_of
        self._pending: dict[str, list[Change]] = {}

    def record(self, user_id: str, changes: Sequence[Change]) -> None:
        self._pending.setdefault(user_id, []).extend(changes)

    def forget(self) -> None:
        self._pending.clear()

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        at = datetime.now(UTC)
        for user_id, recorded in sorted(pending.items()):  # one lock order, should two people share a unit
            changes = coalesced(recorded)
            payloads = [cloud_event(user_id, change, self._data_of, at) for change in changes]
            await _APPEND.execute(
                self._db,
                owner=user_id,
                count=len(changes),
                ids=[payload["id"] for payload in payloads],
                aggregate_types=[change.aggregate_type for change in changes],
                aggregate_ids=[str(change.aggregate_id) for change in changes],
                types=[change.type for change in changes],
                payloads=payloads,
                created_at=at,
            )

    async def position(self, user_id: str) -> int:
        return int(await _POSITION.fetchval(self._db, owner=user_id) or 0)

    async def horizon(self, user_id: str) -> int:
        return int(await _HORIZON.fetchval(self._db, owner=user_id) or 0)

    async def read(self, user_id: str, after: int, limit: int) -> list[FeedEvent]:
        rows = await _READ.fetch(self._db, owner=user_id, after=after, limit=limit)
        return [FeedEvent(row["position"], row["payload"]) for row in rows]
