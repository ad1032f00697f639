"""Tasks in SQLAlchemy Core: statements compiled once (engine), rows mapped to entities by hand.

Every statement filters by owner: another user's task is indistinguishable from no task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache, partial
from operator import attrgetter
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    BindParameter,
    Boolean,
    ColumnElement,
    DateTime,
    Integer,
    SmallInteger,
    Table,
    Text,
    all_,
    any_,
    bindparam,
    case,
    cast,
    delete,
    false,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, distinct_on, insert
from sqlalchemy.sql.selectable import Exists, Subquery
from sqlalchemy.types import TypeEngine

from todo_api.adapters.sql.change_log import FEED_POSITION, SqlChangeLog, with_events
from todo_api.adapters.sql.engine import Connection, Row, Statement
from todo_api.adapters.sql.order_keys import set_positions
from todo_api.adapters.sql.tables import deleted_tasks, lists, tasks, users
from todo_api.adapters.sql.task_listing import (
    count_query,
    filter_conditions,
    filter_shape,
    filter_values,
    page_query,
)
from todo_api.domain.changes import task_change
from todo_api.domain.errors import NotFound
from todo_api.domain.overview import Counts, Day, TagCount, TaskSummary
from todo_api.domain.recurrence import Recurrence, Reminder, parse_duration, reminder_fields
from todo_api.domain.tasks import DeletedTask, Position, Priority, Task, TaskDraft, TaskFilter, TaskQuery

_SERIES = ("recurrence_rule", "recurrence_timezone", "recurrence_from", "recurrence_start", "reminders")
_WRITABLE = ("title", "description", "completed", "priority", "tags", "due_at", *_SERIES)


def reminders_json(reminders: tuple[Reminder, ...]) -> list[dict[str, str]]:
    return [reminder_fields(reminder) for reminder in reminders]


def _reminders_of(stored: list[dict[str, str]]) -> tuple[Reminder, ...]:
    return tuple(
        Reminder(before=parse_duration(item["before"]))
        if "before" in item
        else Reminder(at=datetime.fromisoformat(item["at"]))
        for item in stored
    )


def _recurrence_of(row: Row) -> Recurrence | None:
    if row["recurrence_rule"] is None:
        return None
    return Recurrence(
        row["recurrence_rule"], row["recurrence_timezone"], row["recurrence_from"], row["recurrence_start"]
    )


def _aware(moment: datetime | None) -> datetime | None:
    """asyncpg hands back the two extreme instants (0001-01-01T00:00Z, 9999-12-31T23:59:59.999999Z)
    as its naive infinity sentinels: a due date a client may send, so give it its zone back."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def task_of(row: Row) -> Task:
    return Task(
        id=row["id"],
        user_id=row["user_id"],
        title=row["title"],
        description=row["description"],
        completed=row["completed"],
        completed_at=row["completed_at"],
        priority=Priority(row["priority"]),
        tags=tuple(row["tags"]),
        due_at=_aware(row["due_at"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
        list_id=row["list_id"],
        parent_id=row["parent_id"],
        position=row["position"],
        recurrence=_recurrence_of(row),
        reminders=_reminders_of(row["reminders"]) if row["reminders"] else (),
        series_id=row["series_id"],
        previous_id=row["previous_id"],
    )


def _deleted(row: Row) -> Task:
    return replace(task_of(row), deleted_at=row["deleted_at"])


def _values(task: Task | TaskDraft) -> dict[str, Any]:
    recurrence = task.recurrence
    return {
        "title": task.title,
        "description": task.description,
        "completed": task.completed,
        "priority": int(task.priority),
        "tags": list(task.tags),
        "due_at": task.due_at,
        "recurrence_rule": recurrence and recurrence.rule,
        "recurrence_timezone": recurrence and recurrence.timezone,
        "recurrence_from": recurrence and recurrence.from_,
        "recurrence_start": recurrence and recurrence.start,
        "reminders": reminders_json(task.reminders),
    }


def _added(user_id: str, draft: TaskDraft, at: datetime, list_id: int, position: str) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "list_id": list_id,
        "parent_id": draft.parent_id,
        "position": position,
        "completed_at": at if draft.completed else None,
        "created_at": at,
        "updated_at": at,
        **_values(draft),
    }


def _saved(task: Task, expected_version: int) -> dict[str, Any]:
    return {
        "owner": task.user_id,
        "task_id": task.id,
        "expected_version": expected_version,
        "completed_at": task.completed_at,
        "updated_at": task.updated_at,
        **_values(task),
    }


def _stored(task: Task, version: int) -> Task:
    """A task as its row will read back, at `version`: instants in UTC (the event is built before
    the row is). One copy, and no conversion when the instants are UTC already (a bulk change's
    are: read from rows, stamped by the clock), as `replace` is most of what it costs."""
    instants = (task.due_at, task.completed_at, task.created_at, task.updated_at)
    if all(moment is None or moment.tzinfo is UTC for moment in instants):
        return replace(task, version=version)
    return replace(
        task,
        version=version,
        due_at=_utc(task.due_at),
        completed_at=_utc(task.completed_at),
        created_at=_utc(task.created_at) or task.created_at,
        updated_at=_utc(task.updated_at) or task.updated_at,
    )


def _utc(moment: datetime | None) -> datetime | None:
    try:
        return moment.astimezone(UTC) if moment is not None else None
    except OverflowError:  # beyond year 9999 in UTC: the database refuses it, as it would anyway
        return moment


_OWNED = (tasks.c.id == bindparam("task_id"), tasks.c.user_id == bindparam("owner"))
_GET = Statement(select(tasks).where(*_OWNED))
_GET_FOR_UPDATE = Statement(select(tasks).where(*_OWNED).with_for_update())
_PLACE = ("list_id", "parent_id", "position")
_add = insert(tasks).values(
    {name: bindparam(name) for name in ("user_id", *_WRITABLE, "completed_at", "created_at", "updated_at", *_PLACE)}
)
_ADD = Statement(_add.returning(tasks))


def _key_share(table: Table, key: ColumnElement[Any], value: BindParameter[Any], *owned: ColumnElement[bool]) -> Exists:
    """The row exists, and stays (no delete, no key change) until the commit."""
    return select(key).where(key == value, *owned).with_for_update(read=True, key_share=True).exists()


_adding = {
    name: bindparam(name, type_=tasks.c[name].type)
    for name in ("user_id", *_WRITABLE, "completed_at", "created_at", "updated_at", *_PLACE)
}
_owner_of = bindparam("user_id", type_=users.c.id.type)
# The one-statement create (`with_events`) takes the row locks its foreign keys need before the
# counter's: the person, the list, the parent. The INSERT's own checks then find them held; and a
# list or parent deleted since the use case read it inserts nothing (NotFound), as a check would.
_ADD_RECORDED = with_events(
    insert(tasks).from_select(
        list(_adding),
        select(*_adding.values()).where(
            _key_share(users, users.c.id, _owner_of),
            _key_share(lists, lists.c.id, _adding["list_id"], lists.c.user_id == _owner_of),
            or_(
                _adding["parent_id"].is_(None),
                _key_share(tasks, tasks.c.id, _adding["parent_id"], tasks.c.user_id == _owner_of),
            ),
        ),
    )
)
_LINKS = ("series_id", "previous_id")
_ADD_SUCCESSOR = Statement(
    insert(tasks)
    .values(
        {
            name: bindparam(name)
            for name in ("user_id", *_WRITABLE, "completed_at", "created_at", "updated_at", *_PLACE, *_LINKS)
        }
    )
    .on_conflict_do_nothing(index_elements=["previous_id"], index_where=tasks.c.previous_id.is_not(None))
    .returning(tasks)
)
_child = tasks.alias("child")
_REMOVE_SUCCESSOR = Statement(
    delete(tasks)
    .where(
        tasks.c.user_id == bindparam("owner"),
        tasks.c.previous_id == bindparam("previous_id", type_=BigInteger),
        tasks.c.version == 1,
        ~select(_child.c.id).where(_child.c.parent_id == tasks.c.id).exists(),
    )
    .returning(tasks.c.id)
)
_save = (
    update(tasks)
    .where(*_OWNED, tasks.c.version == bindparam("expected_version"))
    .values(
        {name: bindparam(name) for name in (*_WRITABLE, "completed_at", "updated_at")}
        | {"version": tasks.c.version + 1}
    )
)
_SAVE = Statement(_save.returning(tasks))
_SAVE_RECORDED = with_events(_save)
_LAST_POSITION = Statement(
    select(tasks.c.position)
    .where(tasks.c.user_id == bindparam("owner"), tasks.c.list_id == bindparam("list_id"), tasks.c.parent_id.is_(None))
    .order_by(tasks.c.position.desc(), tasks.c.id.desc())
    .limit(1)
)
_LAST_CHILD_POSITION = Statement(
    select(tasks.c.position)
    .where(tasks.c.user_id == bindparam("owner"), tasks.c.parent_id == bindparam("parent_id"))
    .order_by(tasks.c.position.desc(), tasks.c.id.desc())
    .limit(1)
)
_chain_start = (
    select(tasks.c.id, tasks.c.parent_id, literal(1).label("depth"))
    .where(tasks.c.id == bindparam("task_id"), tasks.c.user_id == bindparam("owner"))
    .cte("chain", recursive=True)
)
_chain = _chain_start.union_all(
    select(tasks.c.id, tasks.c.parent_id, (_chain_start.c.depth + 1).label("depth"))
    .join(_chain_start, tasks.c.id == _chain_start.c.parent_id)
    .where(_chain_start.c.depth < 16)  # a guard: the use cases never let a chain loop or grow past 4
)
_DEPTH = Statement(select(func.max(_chain.c.depth)))
_ids = bindparam("ids", type_=ARRAY(BigInteger))
_down_start = (
    select(tasks.c.id, tasks.c.parent_id, literal(1).label("depth"))
    .where(tasks.c.parent_id == any_(_ids), tasks.c.user_id == bindparam("owner"))
    .cte("down", recursive=True)
)
_down = _down_start.union_all(
    select(tasks.c.id, tasks.c.parent_id, (_down_start.c.depth + 1).label("depth"))
    .join(_down_start, tasks.c.parent_id == _down_start.c.id)
    .where(_down_start.c.depth < 16)
)
_DESCENDANTS = Statement(select(_down.c.id, _down.c.depth))
_SUBTREES = Statement(select(_down.c.id, _down.c.parent_id))
_NOT_KEPT = tasks.c.id != all_(bindparam("keep", type_=ARRAY(BigInteger)))
_COMPLETE_DESCENDANTS = Statement(
    update(tasks)
    .where(tasks.c.id.in_(select(_down.c.id)), tasks.c.completed.is_(false()), _NOT_KEPT)
    .values(completed=True, completed_at=bindparam("at"), updated_at=bindparam("at"), version=tasks.c.version + 1)
    .returning(tasks)
)
_PLACE_TASK = Statement(
    update(tasks)
    .where(*_OWNED)
    .values(
        list_id=bindparam("list_id"),
        parent_id=bindparam("parent_id"),
        position=bindparam("position"),
        updated_at=bindparam("updated_at"),
        version=tasks.c.version + 1,
    )
    .returning(tasks)
)
_MOVE_DESCENDANTS = Statement(
    update(tasks)
    .where(tasks.c.id.in_(select(_down.c.id)), _NOT_KEPT)
    .values(list_id=bindparam("list_id"), updated_at=bindparam("at"), version=tasks.c.version + 1)
    .returning(tasks)
)
_OWNED_MANY = (tasks.c.id == any_(_ids), tasks.c.user_id == bindparam("owner"))
_GET_MANY_FOR_UPDATE = Statement(select(tasks).where(*_OWNED_MANY).order_by(tasks.c.id).with_for_update())


@dataclass(frozen=True, slots=True)
class _BatchColumn:
    """A column a bulk write may set: the `Task` field it holds (and its name, where the two
    differ), the type of its array's elements, its value for a task, and how the column reads it
    from the batch (by default as it comes)."""

    field: str
    kind: TypeEngine[Any]
    value: Callable[[Task], Any]
    read: Callable[[Subquery], ColumnElement[Any]] | None = None
    named: str = ""

    @property
    def name(self) -> str:
        return self.named or self.field


def _tags_read(batch: Subquery) -> ColumnElement[Any]:
    return func.array(
        select(func.jsonb_array_elements_text(cast(batch.c.tags, JSONB))).correlate(batch).scalar_subquery()
    )


def _recurrence_part(task: Task, attribute: str) -> Any:
    recurrence = task.recurrence
    return recurrence and getattr(recurrence, attribute)


# Tags and reminders travel as JSON text: asyncpg would read a list of lists as a 2-D array.
_BATCH_COLUMNS = (
    _BatchColumn("title", Text(), attrgetter("title")),
    _BatchColumn("description", Text(), attrgetter("description")),
    _BatchColumn("completed", Boolean(), attrgetter("completed")),
    _BatchColumn("completed_at", DateTime(timezone=True), attrgetter("completed_at")),
    _BatchColumn("priority", SmallInteger(), lambda task: int(task.priority)),
    _BatchColumn("tags", Text(), lambda task: orjson.dumps(task.tags).decode(), _tags_read),
    _BatchColumn("due_at", DateTime(timezone=True), attrgetter("due_at")),
    _BatchColumn("updated_at", DateTime(timezone=True), attrgetter("updated_at")),
    _BatchColumn("list_id", BigInteger(), attrgetter("list_id")),
    _BatchColumn("parent_id", BigInteger(), attrgetter("parent_id")),
    _BatchColumn("position", Text(), attrgetter("position"), lambda b: cast(b.c.position, tasks.c.position.type)),
    *(
        _BatchColumn("recurrence", kind, partial(_recurrence_part, attribute=attribute), named=f"recurrence_{part}")
        for part, attribute, kind in (
            ("rule", "rule", Text()),
            ("timezone", "timezone", Text()),
            ("from", "from_", Text()),
            ("start", "start", DateTime(timezone=True)),
        )
    ),
    _BatchColumn(
        "reminders",
        Text(),
        lambda task: orjson.dumps(reminders_json(task.reminders)).decode(),
        lambda b: cast(b.c.reminders, JSONB),
    ),
)
_BATCH_FIELDS = tuple(dict.fromkeys(column.field for column in _BATCH_COLUMNS))


@lru_cache(maxsize=32)
def _batch_update(fields: frozenset[str]) -> tuple[Statement, tuple[_BatchColumn, ...]]:
    """Many tasks written back in one statement, each column an array, each only over the version
    it was read at: only the columns of `fields`, the others as they are, and only the ids of
    those written come back (docs/performance.md)."""
    columns = tuple(column for column in _BATCH_COLUMNS if column.field in fields)
    unnested = [("id", BigInteger()), ("expected_version", Integer())] + [(c.name, c.kind) for c in columns]
    batch = select(
        *(func.unnest(bindparam(f"batch_{name}", type_=ARRAY(kind))).label(name) for name, kind in unnested)
    ).subquery("batch")
    statement = (
        update(tasks)
        .where(
            tasks.c.id == batch.c.id,
            tasks.c.user_id == bindparam("owner"),
            tasks.c.version == batch.c.expected_version,
        )
        .values(
            {c.name: c.read(batch) if c.read else batch.c[c.name] for c in columns} | {"version": tasks.c.version + 1}
        )
        .returning(tasks.c.id)
    )
    return Statement(statement), columns


_SET_POSITIONS = set_positions(tasks, tasks)


@lru_cache(maxsize=8)
def _siblings(top_level: bool, after: bool | None) -> Statement:
    """The siblings of a group (a list's top level, or a parent's subtasks) in order; with `after`,
    only the nearest one after (True) or before (False) a position."""
    group = [tasks.c.user_id == bindparam("owner"), tasks.c.list_id == bindparam("list_id")]
    group.append(tasks.c.parent_id.is_(None) if top_level else tasks.c.parent_id == bindparam("parent_id"))
    pair = tuple_(tasks.c.position, tasks.c.id)
    bound = tuple_(bindparam("position", type_=tasks.c.position.type), bindparam("task_id"))
    if after is None:
        return Statement(select(tasks.c.id).where(*group).order_by(tasks.c.position, tasks.c.id))
    if after:
        return Statement(
            select(tasks.c.position).where(*group, pair > bound).order_by(tasks.c.position, tasks.c.id).limit(1)
        )
    return Statement(
        select(tasks.c.position)
        .where(*group, pair < bound)
        .order_by(tasks.c.position.desc(), tasks.c.id.desc())
        .limit(1)
    )


def _trash(by_list: bool, start: Sequence[ColumnElement[bool]] | None = None) -> Statement:
    """Move tasks with everything under them to `deleted_tasks` in one statement: the named tasks
    (or a list's top-level ones, or those `start` matches) and their subtrees, each remembering the
    top-most starting task above it (its `root_id`: restoring that one brings it back)."""
    if start is None:
        first = tasks.c.list_id == bindparam("list_id") if by_list else tasks.c.id == any_(_ids)
        if by_list:
            first = first & tasks.c.parent_id.is_(None)
        start = [first, tasks.c.user_id == bindparam("owner")]
    down = (
        select(tasks.c.id, tasks.c.id.label("root_id"), literal(0).label("depth"))
        .where(*start)
        .cte("trashed", recursive=True)
    )
    down = down.union_all(
        select(tasks.c.id, down.c.root_id, (down.c.depth + 1).label("depth"))
        .join(down, tasks.c.parent_id == down.c.id)
        .where(down.c.depth < 16)
    )
    roots = (
        select(down.c.id, down.c.root_id)
        .ext(distinct_on(down.c.id))
        .order_by(down.c.id, down.c.depth.desc())  # a named task under another goes with the top one
        .cte("roots")
    )
    gone = delete(tasks).where(tasks.c.id == roots.c.id).returning(*tasks.c, roots.c.root_id).cte("gone")
    kept = [column.name for column in tasks.c]
    return Statement(
        insert(deleted_tasks)
        .from_select(
            [*kept, "deleted_at", "root_id", "deleted_list_id"],
            select(
                *(gone.c[name] for name in kept),
                bindparam("at", type_=DateTime(timezone=True)),
                gone.c.root_id,
                bindparam("list_id", type_=BigInteger) if by_list else cast(literal(None), BigInteger),
            ),
        )
        .returning(deleted_tasks.c.id)
    )


_TRASH = _trash(by_list=False)
TRASH_LIST_TASKS = _trash(by_list=True)


@lru_cache(maxsize=64)
def _trash_matching(shape: Any) -> Statement:
    return _trash(by_list=False, start=filter_conditions(shape))


@lru_cache(maxsize=64)
def _complete_matching(shape: Any) -> Statement:
    """The open tasks a filter matches and the open tasks under them (completing a task completes
    its subtasks, as one task's completion does), completed by one UPDATE."""
    start = select(tasks.c.id, literal(0).label("depth")).where(
        *filter_conditions(shape), tasks.c.completed.is_(false())
    )
    down = start.cte("matched", recursive=True)
    down = down.union_all(
        select(tasks.c.id, (down.c.depth + 1).label("depth"))
        .join(down, tasks.c.parent_id == down.c.id)
        .where(down.c.depth < 16)
    )
    at = bindparam("at", type_=DateTime(timezone=True))
    return Statement(
        update(tasks)
        .where(tasks.c.id.in_(select(down.c.id)), tasks.c.user_id == bindparam("owner"), tasks.c.completed.is_(false()))
        .values(completed=True, completed_at=at, updated_at=at, version=tasks.c.version + 1)
        .returning(tasks)
    )


# The summary: one pass over the person's lists and their tasks, counted three ways at once
# (GROUPING SETS): in all, per priority, per list. `tasks.user_id = lists.user_id` lets the planner
# read the tasks through a user index as well as through `ix_tasks_list`.
_open = tasks.c.completed.is_(false())
_timestamp = DateTime(timezone=True)
_COUNTS = (
    func.count(tasks.c.id).filter(_open).label("open"),
    func.count(tasks.c.id).filter(tasks.c.completed.is_(true())).label("completed"),
    func.count(tasks.c.id).filter(_open, tasks.c.due_at < bindparam("now", type_=_timestamp)).label("overdue"),
    func.count(tasks.c.id)
    .filter(
        _open,
        tasks.c.due_at >= bindparam("day_start", type_=_timestamp),
        tasks.c.due_at < bindparam("day_end", type_=_timestamp),
    )
    .label("due_today"),
)
_SUMMARY = Statement(
    select(
        func.grouping(tasks.c.priority, lists.c.id).label("grouping"),
        tasks.c.priority,
        lists.c.id.label("list_id"),
        func.min(lists.c.position).label("list_position"),
        *_COUNTS,
    )
    .select_from(lists.outerjoin(tasks, (tasks.c.list_id == lists.c.id) & (tasks.c.user_id == lists.c.user_id)))
    .where(lists.c.user_id == bindparam("owner"))
    .group_by(func.grouping_sets(tuple_(), tasks.c.priority, lists.c.id))
)
_GROUPED_BY_PRIORITY, _GROUPED_BY_LIST, _GROUPED_BY_NOTHING = 1, 2, 3  # GROUPING(priority, list): 1 = not grouped
_tag = func.unnest(tasks.c.tags).column_valued("tag")
_TAG_COUNTS = Statement(
    select(_tag, func.count().filter(_open).label("open"), func.count().label("total"))
    .select_from(tasks)
    .where(tasks.c.user_id == bindparam("owner"))
    .group_by(_tag)
    .order_by(_tag)
)


def _counts(row: Row) -> Counts:
    return Counts(open=row["open"], completed=row["completed"], overdue=row["overdue"], due_today=row["due_today"])


_TRASHED = Statement(
    select(deleted_tasks).where(
        deleted_tasks.c.id == bindparam("task_id"), deleted_tasks.c.user_id == bindparam("owner")
    )
)


def _restore(by_list: bool) -> Statement:
    """Bring a deletion back from `deleted_tasks`, each task as a new version: a task's (its
    subtree's `root_id`), placed where the caller says, its subtree following it to that list; or
    every task a list's deletion took, as they were."""
    group = (
        deleted_tasks.c.deleted_list_id == bindparam("list_id", type_=BigInteger)
        if by_list
        else deleted_tasks.c.root_id == bindparam("root_id", type_=BigInteger)
    )
    back = (
        delete(deleted_tasks)
        .where(deleted_tasks.c.user_id == bindparam("owner"), group)
        .returning(*(deleted_tasks.c[column.name] for column in tasks.c))
        .cte("back")
    )
    values: dict[str, Any] = {column.name: back.c[column.name] for column in tasks.c}
    values |= {"version": back.c.version + 1, "updated_at": bindparam("at", type_=DateTime(timezone=True))}
    if not by_list:
        is_root = back.c.id == bindparam("root_id", type_=BigInteger)
        values["list_id"] = bindparam("list_id", type_=BigInteger)
        values["parent_id"] = case((is_root, bindparam("parent_id", type_=BigInteger)), else_=back.c.parent_id)
        values["position"] = case(
            (is_root, cast(bindparam("position", type_=Text), tasks.c.position.type)), else_=back.c.position
        )
    return Statement(insert(tasks).from_select(list(values), select(*values.values())).returning(tasks))


_RESTORE = _restore(by_list=False)
RESTORE_LIST_TASKS = _restore(by_list=True)
_deleted_root = (deleted_tasks.c.root_id == deleted_tasks.c.id) & deleted_tasks.c.deleted_list_id.is_(None)
_DELETED_ORDER = (deleted_tasks.c.deleted_at.desc(), deleted_tasks.c.id.desc())
_TRASH_FIRST_PAGE = Statement(
    select(deleted_tasks)
    .where(deleted_tasks.c.user_id == bindparam("owner"), _deleted_root)
    .order_by(*_DELETED_ORDER)
    .limit(bindparam("limit"))
)
_TRASH_NEXT_PAGE = Statement(
    select(deleted_tasks)
    .where(
        deleted_tasks.c.user_id == bindparam("owner"),
        _deleted_root,
        tuple_(deleted_tasks.c.deleted_at, deleted_tasks.c.id)
        < tuple_(bindparam("after_at", type_=DateTime(timezone=True)), bindparam("after_id", type_=BigInteger)),
    )
    .order_by(*_DELETED_ORDER)
    .limit(bindparam("limit"))
)


class SqlTaskRepository:
    def __init__(self, connection: Connection, changes: SqlChangeLog) -> None:
        self._db = connection
        self._changes = changes

    async def add(self, user_id: str, draft: TaskDraft, at: datetime, *, list_id: int, position: str) -> Task:
        row = await _ADD.fetchrow(self._db, **_added(user_id, draft, at, list_id, position))
        assert row is not None  # noqa: S101 - INSERT ... RETURNING returns the row
        return task_of(row)

    async def add_and_record(
        self, user_id: str, draft: TaskDraft, at: datetime, *, list_id: int, position: str
    ) -> Task:
        """One round trip for the row and the feed: the event is built from the row as it will
        be stored, and the statement gives it the id the database draws."""
        unsaved = draft.created(0, user_id, at, list_id=list_id, position=position)  # its id comes with the row
        events = self._changes.take(user_id, task_change(None, _stored(unsaved, unsaved.version)), creating=True)
        row = await _ADD_RECORDED.fetchrow(self._db, **_added(user_id, draft, at, list_id, position), **events)
        if row is None:
            self._changes.give_back()
            raise NotFound("The task's list or parent is gone.", code="list_not_found")
        self._changes.wrote(user_id, row[FEED_POSITION])
        return task_of(row)

    async def get(self, user_id: str, task_id: int, *, for_update: bool = False) -> Task | None:
        statement = _GET_FOR_UPDATE if for_update else _GET
        row = await statement.fetchrow(self._db, owner=user_id, task_id=task_id)
        return task_of(row) if row else None

    async def save(self, task: Task, *, expected_version: int) -> Task | None:
        row = await _SAVE.fetchrow(self._db, **_saved(task, expected_version))
        return task_of(row) if row else None

    async def save_and_record(self, task: Task, *, before: Task) -> Task | None:
        saving = _stored(task, before.version + 1)
        events = self._changes.take(task.user_id, task_change(before, saving))
        row = await _SAVE_RECORDED.fetchrow(self._db, **_saved(task, before.version), **events)
        if row is None:
            self._changes.give_back()
            return None
        self._changes.wrote(task.user_id, row[FEED_POSITION])
        return task_of(row)

    async def trash(self, user_id: str, root_ids: Sequence[int], at: datetime) -> list[int]:
        rows = await _TRASH.fetch(self._db, owner=user_id, ids=list(root_ids), at=at)
        return [row["id"] for row in rows]

    async def trashed(self, user_id: str, task_id: int) -> DeletedTask | None:
        row = await _TRASHED.fetchrow(self._db, owner=user_id, task_id=task_id)
        if row is None:
            return None
        return DeletedTask(_deleted(row), row["root_id"], row["deleted_list_id"])

    async def trashed_page(self, user_id: str, limit: int, after: Position | None) -> list[Task]:
        if after is None:
            rows = await _TRASH_FIRST_PAGE.fetch(self._db, owner=user_id, limit=limit + 1)
        else:
            rows = await _TRASH_NEXT_PAGE.fetch(
                self._db, owner=user_id, limit=limit + 1, after_at=after.value, after_id=after.id
            )
        return [_deleted(row) for row in rows]

    async def restore(
        self, user_id: str, root_id: int, *, list_id: int, parent_id: int | None, position: str, at: datetime
    ) -> list[Task]:
        rows = await _RESTORE.fetch(
            self._db, owner=user_id, root_id=root_id, list_id=list_id, parent_id=parent_id, position=position, at=at
        )
        return [task_of(row) for row in rows]

    async def list(self, user_id: str, query: TaskQuery, now: datetime) -> list[Task]:
        statement, values = page_query(user_id, query, now)
        return [task_of(row) for row in await statement.fetch(self._db, **values)]

    async def count(self, user_id: str, task_filter: TaskFilter, now: datetime) -> int:
        statement, values = count_query(user_id, task_filter, now)
        return int(await statement.fetchval(self._db, **values))

    async def last_position(self, user_id: str, list_id: int, parent_id: int | None) -> str | None:
        if parent_id is None:
            position: str | None = await _LAST_POSITION.fetchval(self._db, owner=user_id, list_id=list_id)
        else:
            position = await _LAST_CHILD_POSITION.fetchval(self._db, owner=user_id, parent_id=parent_id)
        return position

    async def depth(self, user_id: str, task_id: int) -> int | None:
        depth: int | None = await _DEPTH.fetchval(self._db, owner=user_id, task_id=task_id)
        return depth

    async def descendants(self, user_id: str, task_id: int) -> dict[int, int]:
        rows = await _DESCENDANTS.fetch(self._db, owner=user_id, ids=[task_id])
        return {row["id"]: row["depth"] for row in rows}

    async def get_many(self, user_id: str, task_ids: Sequence[int]) -> dict[int, Task]:
        rows = await _GET_MANY_FOR_UPDATE.fetch(self._db, owner=user_id, ids=list(task_ids))
        return {row["id"]: task_of(row) for row in rows}

    async def save_many(self, changed: Sequence[Task], before: Mapping[int, Task]) -> Sequence[Task]:
        if not changed:
            return []
        fields = frozenset(
            field
            for field in _BATCH_FIELDS
            if any(getattr(task, field) != getattr(before[task.id], field) for task in changed)
        )
        statement, columns = _batch_update(fields)
        values = {f"batch_{column.name}": [column.value(task) for task in changed] for column in columns}
        values["batch_id"] = [task.id for task in changed]
        values["batch_expected_version"] = [before[task.id].version for task in changed]
        # Only the ids come back: the rest is what was sent, as a row reads it back (`_stored`).
        written = {row["id"] for row in await statement.fetch(self._db, owner=changed[0].user_id, **values)}
        return [_stored(task, before[task.id].version + 1) for task in changed if task.id in written]

    async def move_descendants_to(
        self, user_id: str, root_ids: Sequence[int], list_id: int, at: datetime, *, keep: Sequence[int] = ()
    ) -> Sequence[Task]:
        rows = await _MOVE_DESCENDANTS.fetch(
            self._db, owner=user_id, ids=list(root_ids), list_id=list_id, at=at, keep=list(keep)
        )
        return [task_of(row) for row in rows]

    async def subtrees(self, user_id: str, root_ids: Sequence[int]) -> dict[int, int]:
        rows = await _SUBTREES.fetch(self._db, owner=user_id, ids=list(root_ids))
        return {row["id"]: row["parent_id"] for row in rows}

    async def complete_descendants(
        self, user_id: str, root_ids: Sequence[int], at: datetime, *, keep: Sequence[int] = ()
    ) -> Sequence[Task]:
        rows = await _COMPLETE_DESCENDANTS.fetch(self._db, owner=user_id, ids=list(root_ids), at=at, keep=list(keep))
        return [task_of(row) for row in rows]

    async def neighbour(self, sibling: Task, *, after: bool) -> str | None:
        statement = _siblings(sibling.parent_id is None, after)
        position: str | None = await statement.fetchval(
            self._db,
            owner=sibling.user_id,
            list_id=sibling.list_id,
            parent_id=sibling.parent_id,
            position=sibling.position,
            task_id=sibling.id,
        )
        return position

    async def place(self, task: Task, *, list_id: int, parent_id: int | None, position: str, at: datetime) -> Task:
        row = await _PLACE_TASK.fetchrow(
            self._db,
            owner=task.user_id,
            task_id=task.id,
            list_id=list_id,
            parent_id=parent_id,
            position=position,
            updated_at=at,
        )
        assert row is not None  # noqa: S101 - the use case holds the row's lock
        return task_of(row)

    async def sibling_ids(self, user_id: str, list_id: int, parent_id: int | None) -> Sequence[int]:
        rows = await _siblings(parent_id is None, None).fetch(
            self._db, owner=user_id, list_id=list_id, parent_id=parent_id
        )
        return [row["id"] for row in rows]

    async def summary(self, user_id: str, now: datetime, day: Day) -> TaskSummary:
        rows = await _SUMMARY.fetch(self._db, owner=user_id, now=now, day_start=day.start, day_end=day.end)
        total, by_priority, by_list = Counts(), {priority: Counts() for priority in Priority}, []
        for row in rows:
            if row["grouping"] == _GROUPED_BY_NOTHING:
                total = _counts(row)
            elif row["grouping"] == _GROUPED_BY_PRIORITY:
                if row["priority"] is not None:  # NULL: the lists without tasks
                    by_priority[Priority(row["priority"])] = _counts(row)
            elif row["grouping"] == _GROUPED_BY_LIST:
                by_list.append((row["list_position"], row["list_id"], _counts(row)))
        by_list.sort(key=lambda entry: (entry[0], entry[1]))
        return TaskSummary(total, by_priority, {list_id: counts for _, list_id, counts in by_list}, now, day)

    async def tag_counts(self, user_id: str) -> Sequence[TagCount]:
        rows = await _TAG_COUNTS.fetch(self._db, owner=user_id)
        return [TagCount(row["tag"], row["open"], row["total"]) for row in rows]

    async def complete_matching(self, user_id: str, task_filter: TaskFilter, at: datetime) -> Sequence[Task]:
        values = filter_values(user_id, task_filter, at)
        rows = await _complete_matching(filter_shape(task_filter)).fetch(self._db, at=at, **values)
        return [task_of(row) for row in rows]

    async def trash_matching(self, user_id: str, task_filter: TaskFilter, at: datetime) -> Sequence[int]:
        values = filter_values(user_id, task_filter, at) | {"at": at}
        rows = await _trash_matching(filter_shape(task_filter)).fetch(self._db, **values)
        return [row["id"] for row in rows]

    async def set_positions(self, user_id: str, positions: dict[int, str], at: datetime) -> Sequence[Task]:
        rows = await _SET_POSITIONS.fetch(
            self._db, owner=user_id, ids=list(positions), positions=list(positions.values()), updated_at=at
        )
        return [task_of(row) for row in rows]

    async def add_successor(self, successor: Task, at: datetime) -> Task | None:
        row = await _ADD_SUCCESSOR.fetchrow(
            self._db,
            user_id=successor.user_id,
            list_id=successor.list_id,
            parent_id=successor.parent_id,
            position=successor.position,
            completed_at=None,
            created_at=at,
            updated_at=at,
            series_id=successor.series_id,
            previous_id=successor.previous_id,
            **_values(successor),
        )
        return task_of(row) if row else None

    async def remove_successor(self, user_id: str, previous_id: int) -> int | None:
        removed: int | None = await _REMOVE_SUCCESSOR.fetchval(self._db, owner=user_id, previous_id=previous_id)
        return removed
