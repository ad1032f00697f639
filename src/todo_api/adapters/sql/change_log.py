"""The change feed on PostgreSQL: a per-person counter and the outbox, written at commit.

Recorded changes wait in memory until the unit of work commits; then one statement bumps the
person's counter (taking its row lock), a COPY appends the numbered events, and the COMMIT follows
at once. The lock is held only for those last round trips (a third behind a pooler: the COPY's
column lookup), and a second writer of the same person gets its numbers only after the first
committed: positions become visible in order, so a reader that has seen N never later meets an
event below N.

A unit whose last statement writes one task (a create, an edit, a toggle) saves those round trips:
`with_events` makes the write carry its own event and everything recorded before it, so the
counter's lock is taken by the statement the COMMIT follows (`SqlChangeLog.take`).

No NOTIFY runs in the write's transaction: PostgreSQL serialises the commits of every transaction
that notifies (one lock for the whole cluster, held through the commit's WAL flush), which halved
the database's write throughput at 32 concurrent writers. The log keeps each person's last
position instead (`written`), and the unit of work announces them once committed
(change_notifications.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Integer,
    Text,
    bindparam,
    cast,
    func,
    literal,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.sql.dml import Insert, Update
from sqlalchemy.sql.elements import ColumnElement

from todo_api.adapters.sql.engine import Connection, CopyIn, Statement
from todo_api.adapters.sql.tables import change_feeds, events, tasks
from todo_api.domain.changes import Change, Deleted, FeedEvent, ReminderDue, coalesced
from todo_api.domain.lists import TaskList
from todo_api.domain.recurrence import format_instant
from todo_api.domain.tasks import Task

NOTIFY_CHANNEL: Final = "todo_changes"
"""Committed writes are announced as `<user id>:<last position>` here (change_notifications.py)."""

FEED_POSITION: Final = "feed_position"
"""The column `with_events` adds to the written row: the person's last position after it."""

DataOf = Callable[[Task | TaskList], dict[str, Any]]
"""The object as the API returns it: the composition root passes the HTTP representation."""

_count = bindparam("count", type_=Integer)
_recorded = func.unnest(
    bindparam("ids", type_=ARRAY(Text)),
    bindparam("aggregate_types", type_=ARRAY(Text)),
    bindparam("aggregate_ids", type_=ARRAY(Text)),
    bindparam("types", type_=ARRAY(Text)),
    # JSON text (`_json_texts`): spliced as text below, and parsed once, as it is stored.
    bindparam("payloads", type_=ARRAY(Text)),
).table_valued("id", "aggregate_type", "aggregate_id", "type", "payload", with_ordinality="ord", name="recorded")
_recorded = _recorded.render_derived()


def _numbered(payload: ColumnElement[str], position: ColumnElement[int]) -> ColumnElement[Any]:
    """The CloudEvent (compact JSON text of an object) with its position added as the last member.

    The position is only known in the statement. Spliced into the text, the event is parsed once,
    by `json`'s check as it is stored; adding it as JSONB cost a parse into JSONB's binary form,
    its keys sorted, and a rebuild for the `||`: a third of the outbox's time in PostgreSQL
    (docs/performance.md).
    """
    return cast(func.left(payload, -1) + literal(',"position":') + cast(position, Text) + literal("}"), JSON)


def _json_texts(payloads: Sequence[dict[str, Any]]) -> list[str]:
    return [orjson.dumps(payload, option=orjson.OPT_UTC_Z).decode() for payload in payloads]


_NEW_ID: Final = "\x1f"
"""Where a created task's event takes the id the INSERT draws: a control character, which JSON text
never holds as it is (a string escapes it), so the statement's `replace` meets only these."""


def _awaiting_id(text: str) -> str:
    """A created task's event (built with id 0) with its two ids left to the statement: a text
    replace in PostgreSQL, where reading it as JSONB to set them cost a parse, a rebuild and a
    print of the whole event (docs/performance.md). The first `"subject":"tasks/0"` and
    `"data":{"id":0` are the event's own members: inside a JSON string every quote is escaped."""
    marked = text.replace('"subject":"tasks/0"', f'"subject":"tasks/{_NEW_ID}"', 1)
    marked = marked.replace('"data":{"id":0', f'"data":{{"id":{_NEW_ID}', 1)
    if marked.count(_NEW_ID) != 2:
        raise ValueError(f"not the event of a task being created: {text[:200]}")
    return marked


# A flush takes the person's next positions first (the counter's row lock, held until the COMMIT
# that follows), then appends the numbered events through COPY.
_TAKE_POSITIONS = Statement(
    insert(change_feeds)
    .values(user_id=bindparam("owner"), position=_count)
    .on_conflict_do_update(index_elements=["user_id"], set_={"position": change_feeds.c.position + _count})
    .returning(change_feeds.c.position)
)
_EVENT_COLUMNS = ("user_id", "position", "id", "aggregate_type", "aggregate_id", "type", "payload", "created_at")
_APPEND_EVENTS = CopyIn(events, [events.c[name] for name in _EVENT_COLUMNS])


def with_events(write: Insert | Update) -> Statement:
    """`write` (one task, `RETURNING` it) with the unit's events appended by the same statement.

    The counter is bumped from the written row, so the task's lock is taken before the counter's
    (the order every other writer keeps), and a write that matched no row appends nothing. An event
    recorded without an id (a task being created) takes the new row's.

    Every row lock the write needs must be taken before the counter's: an INSERT's foreign-key
    checks run at the end of the statement, after it, so an INSERT first locks what it refers to
    (`SqlTaskRepository.add_and_record`), or a cascade delete holding that row and waiting for the
    counter would deadlock with it.

    Nothing is written after it (`last_write`): in a unit that wrote nothing before it (a create
    after its plain reads), it is its own transaction, with no BEGIN or COMMIT round trip.
    """
    written = write.returning(tasks).cte("written")
    feed = (
        insert(change_feeds)
        .from_select(["user_id", "position"], select(written.c.user_id, _count).select_from(written))
        .on_conflict_do_update(index_elements=["user_id"], set_={"position": change_feeds.c.position + _count})
        .returning(change_feeds.c.position)
        .cte("feed")
    )
    position = feed.c.position - _count + _recorded.c.ord
    new_id = cast(written.c.id, Text)
    # A created task's event (one per create) takes the new row's id where `_awaiting_id` marked it.
    payload = func.replace(_recorded.c.payload, literal(_NEW_ID), new_id)
    appended = insert(events).from_select(
        list(_EVENT_COLUMNS),
        select(
            written.c.user_id,
            position,
            cast(_recorded.c.id, events.c.id.type),
            _recorded.c.aggregate_type,
            func.coalesce(_recorded.c.aggregate_id, new_id),
            _recorded.c.type,
            _numbered(payload, position),
            bindparam("logged_at", type_=DateTime(timezone=True)),
        ).select_from(written.join(feed, literal_column("true")).join(_recorded, literal_column("true"))),
    )
    # The person's new last position travels with the row, for the announcement after the COMMIT.
    return Statement(
        select(written, feed.c.position.label(FEED_POSITION))
        .select_from(written.join(feed, literal_column("true")))
        .add_cte(appended.cte("appended")),
        last_write=True,
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


def cloud_events(user_id: str, changes: Sequence[Change], data_of: DataOf, at: datetime) -> list[dict[str, Any]]:
    """CloudEvents 1.0 JSON events, one per change; the position is added, last, when they are numbered."""
    source, time = f"/api/{user_id}", format_instant(at)
    return [
        {
            "specversion": "1.0",
            "id": event_id,
            "source": source,
            "type": change.type,
            "subject": f"{change.aggregate_type}s/{change.subject.id}",
            "time": time,
            "datacontenttype": "application/json",
            "data": _data(change.subject, data_of),
        }
        for change, event_id in zip(changes, _event_ids(len(changes)), strict=True)
    ]


def _data(subject: Task | TaskList | Deleted | ReminderDue, data_of: DataOf) -> dict[str, Any]:
    if isinstance(subject, Deleted):
        return {"id": subject.id, "deleted_at": format_instant(subject.deleted_at)}
    if isinstance(subject, ReminderDue):
        reminder = {"id": subject.reminder_id, "index": subject.index, "fire_at": format_instant(subject.fire_at)}
        return data_of(subject.task) | {"reminder": reminder}
    return data_of(subject)


def _event_ids(count: int) -> list[str]:
    """`count` random UUIDs (version 4, as `uuid.uuid4()` makes them) from one read of the system's
    random source: `uuid4()` builds a `UUID` object for each, which took 2.5 us an event, 250 us of
    a bulk change of 100 (docs/performance.md)."""
    digits = os.urandom(16 * count).hex()
    return [
        f"{d[:8]}-{d[8:12]}-4{d[13:16]}-{'89ab'[int(d[16], 16) & 3]}{d[17:20]}-{d[20:]}"
        for d in (digits[start : start + 32] for start in range(0, 32 * count, 32))
    ]


class SqlChangeLog:
    """The `ChangeLog` port for one unit of work; `flush` runs just before its COMMIT."""

    def __init__(self, connection: Connection, data_of: DataOf) -> None:
        self._db = connection
        self._data_of = data_of
        self._pending: dict[str, list[Change]] = {}
        self._taken: tuple[str, list[Change]] | None = None
        self.written: dict[str, int] = {}
        """Each person's last position this unit wrote: what to announce once it has committed."""

    def record(self, user_id: str, changes: Sequence[Change]) -> None:
        if self._taken is not None:
            raise RuntimeError("the unit's last write has written its events: record before it, or write before it")
        self._pending.setdefault(user_id, []).extend(changes)

    def take(self, user_id: str, own: Change, *, creating: bool = False) -> dict[str, Any]:
        """The values `with_events` binds: `own` (the write's change; `creating`: its id is not
        known yet) after the person's changes recorded so far. Until the COMMIT, nothing more is
        recorded: the statement holds the counter's lock, and so must be the unit's last."""
        if self._taken is not None:
            raise RuntimeError("a unit of work has one last write")
        recorded = self._pending.pop(user_id, [])
        self._taken = (user_id, recorded)
        at = datetime.now(UTC)
        changes = coalesced([*recorded, own])
        payloads = cloud_events(user_id, changes, self._data_of, at)
        new = [creating and change.subject is own.subject for change in changes]  # its id comes with the row
        return {
            "count": len(changes),
            "ids": [payload["id"] for payload in payloads],
            "aggregate_types": [change.aggregate_type for change in changes],
            "aggregate_ids": [
                None if is_new else str(change.aggregate_id) for change, is_new in zip(changes, new, strict=True)
            ],
            "types": [change.type for change in changes],
            "payloads": [
                _awaiting_id(text) if is_new else text for text, is_new in zip(_json_texts(payloads), new, strict=True)
            ],
            "logged_at": at,
        }

    def give_back(self) -> None:
        """The last write matched no row, so wrote no events: the recorded ones wait for the COMMIT."""
        if self._taken is not None:
            user_id, recorded = self._taken
            self._pending.setdefault(user_id, [])[:0] = recorded
            self._taken = None

    def wrote(self, user_id: str, position: int) -> None:
        """The last write (`with_events`) numbered the person's events up to `position`."""
        self.written[user_id] = position

    def forget(self) -> None:
        self._pending.clear()
        self._taken = None
        self.written.clear()

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        self._taken = None
        at = datetime.now(UTC)
        for user_id, recorded in sorted(pending.items()):  # one lock order, should two people share a unit
            if not (changes := coalesced(recorded)):
                continue
            payloads = cloud_events(user_id, changes, self._data_of, at)
            last = await _TAKE_POSITIONS.fetchval(self._db, owner=user_id, count=len(changes))
            first, rows = last - len(changes) + 1, []
            for position, change, payload in zip(range(first, last + 1), changes, payloads, strict=True):
                payload["position"] = position
                aggregate = (change.aggregate_type, str(change.aggregate_id))
                rows.append((user_id, position, payload["id"], *aggregate, change.type, payload, at))
            await _APPEND_EVENTS.run(self._db, rows)
            self.written[user_id] = last

    async def position(self, user_id: str) -> int:
        return int(await _POSITION.fetchval(self._db, owner=user_id) or 0)

    async def horizon(self, user_id: str) -> int:
        return int(await _HORIZON.fetchval(self._db, owner=user_id) or 0)

    async def read(self, user_id: str, after: int, limit: int) -> list[FeedEvent]:
        rows = await _READ.fetch(self._db, owner=user_id, after=after, limit=limit)
        return [FeedEvent(row["position"], row["payload"]) for row in rows]
