"""Tasks and idempotency keys in SQLAlchemy Core, compiled once and run by asyncpg (compiled.py).

Every statement filters by owner; listing is keyset pagination over an index per sort, so page
5,000 costs what page 1 costs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal, NamedTuple

import asyncpg
from sqlalchemy import (
    ColumnElement,
    DateTime,
    SmallInteger,
    Text,
    any_,
    bindparam,
    delete,
    false,
    func,
    literal_column,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert

from todo_api.adapters.sql.compiled import Compiled, Driver
from todo_api.adapters.sql.tables import DUE_LAST_ASC, DUE_LAST_DESC, idempotency_keys, tasks
from todo_api.domain.ports import IdempotentOutcome
from todo_api.domain.tasks import Priority, Sort, Task, TaskDraft, TaskFilter, TaskQuery

_SORT_COLUMNS: dict[str, ColumnElement[Any]] = {
    "created_at": tasks.c.created_at,
    "updated_at": tasks.c.updated_at,
    "priority": tasks.c.priority,
    "title": func.lower(tasks.c.title),
}
_WRITABLE = ("title", "description", "completed", "priority", "tags", "due_at")


def _task(row: asyncpg.Record | Mapping[str, Any]) -> Task:
    return Task(
        id=row["id"],
        user_id=row["user_id"],
        title=row["title"],
        description=row["description"],
        completed=row["completed"],
        completed_at=row["completed_at"],
        priority=Priority(row["priority"]),
        tags=tuple(row["tags"]),
        due_at=row["due_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
    )


def _values(task: Task | TaskDraft) -> dict[str, Any]:
    return {
        "title": task.title,
        "description": task.description,
        "completed": task.completed,
        "priority": int(task.priority),
        "tags": list(task.tags),
        "due_at": task.due_at,
    }


# One shape each: compiled at import.
_OWNED = (tasks.c.id == bindparam("task_id"), tasks.c.user_id == bindparam("owner"))
_GET = Compiled(select(tasks).where(*_OWNED))
_GET_FOR_UPDATE = Compiled(select(tasks).where(*_OWNED).with_for_update())
_ADD = Compiled(
    insert(tasks)
    .values({name: bindparam(name) for name in ("user_id", *_WRITABLE, "completed_at", "created_at", "updated_at")})
    .returning(tasks)
)
_SAVE = Compiled(
    update(tasks)
    .where(*_OWNED, tasks.c.version == bindparam("expected_version"))
    .values(
        {name: bindparam(name) for name in (*_WRITABLE, "completed_at", "updated_at")}
        | {"version": tasks.c.version + 1}
    )
    .returning(tasks)
)
_DELETE = Compiled(delete(tasks).where(*_OWNED).returning(tasks.c.id))
_DELETE_AT_VERSION = Compiled(
    delete(tasks).where(*_OWNED, tasks.c.version == bindparam("expected_version")).returning(tasks.c.id)
)


# Listing: the statement depends only on the query's shape (which filters, which sort, whether
# there is a position), so each shape is compiled once and its values are bound per request.


class _Shape(NamedTuple):
    status: Literal["all", "pending", "completed"]
    priorities: bool
    tags: bool
    search: bool
    due_before: bool
    due_after: bool
    overdue: bool

    @classmethod
    def of(cls, task_filter: TaskFilter) -> _Shape:
        return cls(
            task_filter.status,
            bool(task_filter.priorities),
            bool(task_filter.tags),
            bool(task_filter.search),
            task_filter.due_before is not None,
            task_filter.due_after is not None,
            task_filter.overdue,
        )


After = Literal["none", "value", "no_due_date"]


def _sort_key(sort: Sort) -> ColumnElement[Any]:
    """The indexed expression a sort orders by; `due_at` has no NULLs in it (see tables.py)."""
    if sort.field == "due_at":
        return DUE_LAST_DESC if sort.descending else DUE_LAST_ASC
    return _SORT_COLUMNS[sort.field]


def _order_by(sort: Sort) -> list[ColumnElement[Any]]:
    key = _sort_key(sort)
    return [key.desc(), tasks.c.id.desc()] if sort.descending else [key.asc(), tasks.c.id.asc()]


def _after(sort: Sort, after: After) -> ColumnElement[bool]:
    """Rows strictly after the position in the sort order: one row comparison, so an index range."""
    key = _sort_key(sort)
    value: ColumnElement[Any]
    if sort.field == "title":
        # The position holds the raw title: PostgreSQL lower-cases both sides, so the comparison
        # uses exactly the function (and collation) the index and ORDER BY use.
        value = func.lower(bindparam("after_value", type_=Text))
    elif after == "no_due_date":
        value = literal_column("'-infinity'::timestamptz" if sort.descending else "'infinity'::timestamptz")
    else:
        value = bindparam("after_value", type_=key.type)
    pair, bound = tuple_(key, tasks.c.id), tuple_(value, bindparam("after_id"))
    return pair < bound if sort.descending else pair > bound


def _conditions(shape: _Shape) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [tasks.c.user_id == bindparam("owner")]
    if shape.status != "all":
        conditions.append(tasks.c.completed.is_(true() if shape.status == "completed" else false()))
    if shape.priorities:
        conditions.append(tasks.c.priority == any_(bindparam("priorities", type_=ARRAY(SmallInteger))))
    if shape.tags:
        conditions.append(tasks.c.tags.contains(bindparam("tags", type_=ARRAY(Text))))
    if shape.search:
        pattern = bindparam("pattern", type_=Text)
        conditions.append(
            or_(tasks.c.title.ilike(pattern, escape="\\"), tasks.c.description.ilike(pattern, escape="\\"))
        )
    timestamp = DateTime(timezone=True)
    if shape.due_before:
        conditions.append(tasks.c.due_at < bindparam("due_before", type_=timestamp))
    if shape.due_after:
        conditions.append(tasks.c.due_at > bindparam("due_after", type_=timestamp))
    if shape.overdue:
        conditions.extend([tasks.c.due_at < bindparam("now", type_=timestamp), tasks.c.completed.is_(false())])
    return conditions


@lru_cache(maxsize=1024)
def _page_statement(shape: _Shape, sort: Sort, after: After) -> Compiled:
    conditions = _conditions(shape)
    if after != "none":
        conditions.append(_after(sort, after))
    return Compiled(select(tasks).where(*conditions).order_by(*_order_by(sort)).limit(bindparam("limit")))


@lru_cache(maxsize=256)
def _count_statement(shape: _Shape) -> Compiled:
    return Compiled(select(func.count()).select_from(tasks).where(*_conditions(shape)))


def _like_pattern(search: str) -> str:
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filter_values(user_id: str, task_filter: TaskFilter, now: datetime) -> dict[str, Any]:
    return {
        "owner": user_id,
        "priorities": sorted(int(p) for p in task_filter.priorities),
        "tags": list(task_filter.tags),
        "pattern": _like_pattern(task_filter.search) if task_filter.search else None,
        "due_before": task_filter.due_before,
        "due_after": task_filter.due_after,
        "now": now,
    }


def page_query(user_id: str, query: TaskQuery, now: datetime) -> tuple[Compiled, list[Any]]:
    """The statement for one page (one row more than the limit, to tell whether there is a next
    page) and its arguments. Public so the index tests EXPLAIN exactly what runs."""
    values = _filter_values(user_id, query.filter, now)
    values["limit"] = query.limit + 1
    after: After = "none"
    if (position := query.after) is not None:
        after = "no_due_date" if query.sort.field == "due_at" and position.value is None else "value"
        values.update(after_value=position.value, after_id=position.id)
    statement = _page_statement(_Shape.of(query.filter), query.sort, after)
    return statement, statement.arguments(values)


class SqlTaskRepository:
    def __init__(self, connection: Driver) -> None:
        self._db = connection

    async def add(self, user_id: str, draft: TaskDraft, at: datetime) -> Task:
        row = await _ADD.fetchrow(
            self._db,
            user_id=user_id,
            completed_at=at if draft.completed else None,
            created_at=at,
            updated_at=at,
            **_values(draft),
        )
        assert row is not None  # noqa: S101 - INSERT ... RETURNING returns the row
        return _task(row)

    async def get(self, user_id: str, task_id: int, *, for_update: bool = False) -> Task | None:
        statement = _GET_FOR_UPDATE if for_update else _GET
        row = await statement.fetchrow(self._db, owner=user_id, task_id=task_id)
        return _task(row) if row else None

    async def save(self, task: Task, *, expected_version: int) -> Task | None:
        row = await _SAVE.fetchrow(
            self._db,
            owner=task.user_id,
            task_id=task.id,
            expected_version=expected_version,
            completed_at=task.completed_at,
            updated_at=task.updated_at,
            **_values(task),
        )
        return _task(row) if row else None

    async def delete(self, user_id: str, task_id: int, *, expected_version: int | None) -> bool:
        if expected_version is None:
            return await _DELETE.fetchval(self._db, owner=user_id, task_id=task_id) is not None
        deleted = await _DELETE_AT_VERSION.fetchval(
            self._db, owner=user_id, task_id=task_id, expected_version=expected_version
        )
        return deleted is not None

    async def list(self, user_id: str, query: TaskQuery, now: datetime) -> list[Task]:
        statement, arguments = page_query(user_id, query, now)
        return [_task(row) for row in await self._db.fetch(statement.sql, *arguments)]

    async def count(self, user_id: str, task_filter: TaskFilter, now: datetime) -> int:
        statement = _count_statement(_Shape.of(task_filter))
        return int(await statement.fetchval(self._db, **_filter_values(user_id, task_filter, now)))


def _snapshot(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "user_id": task.user_id,
        "title": task.title,
        "description": task.description,
        "completed": task.completed,
        "completed_at": task.completed_at.isoformat() if task.completed_at else None,
        "priority": int(task.priority),
        "tags": list(task.tags),
        "due_at": task.due_at.isoformat() if task.due_at else None,
        "created_at": task.created_at.isoformat(),
        "updated_at": task.updated_at.isoformat(),
        "version": task.version,
    }


def _from_snapshot(snapshot: dict[str, Any]) -> Task:
    values = dict(snapshot)
    for name in ("completed_at", "due_at", "created_at", "updated_at"):
        values[name] = datetime.fromisoformat(values[name]) if values[name] else None
    return _task(values)


_FIND_OUTCOME = Compiled(
    select(idempotency_keys.c.request_hash, idempotency_keys.c.task).where(
        idempotency_keys.c.user_id == bindparam("owner"),
        idempotency_keys.c.key == bindparam("idempotency_key"),
        idempotency_keys.c.created_at > bindparam("since"),
    )
)
_FORGET_EXPIRED = Compiled(
    delete(idempotency_keys).where(
        idempotency_keys.c.user_id == bindparam("owner"),
        idempotency_keys.c.key == bindparam("idempotency_key"),
        idempotency_keys.c.created_at <= bindparam("since"),
    )
)
_CLAIM = Compiled(
    insert(idempotency_keys)
    .values({name: bindparam(name) for name in ("user_id", "key", "request_hash", "task", "created_at")})
    .on_conflict_do_nothing()
    .returning(idempotency_keys.c.key)
)


class SqlIdempotencyKeys:
    def __init__(self, connection: Driver) -> None:
        self._db = connection

    async def find(self, user_id: str, key: str, since: datetime) -> IdempotentOutcome | None:
        row = await _FIND_OUTCOME.fetchrow(self._db, owner=user_id, idempotency_key=key, since=since)
        # asyncpg hands JSONB over as text (SQLAlchemy's JSON bind processor encoded it going in).
        return IdempotentOutcome(row["request_hash"], _from_snapshot(json.loads(row["task"]))) if row else None

    async def claim(self, user_id: str, key: str, outcome: IdempotentOutcome, at: datetime, since: datetime) -> bool:
        await _FORGET_EXPIRED.execute(self._db, owner=user_id, idempotency_key=key, since=since)
        claimed = await _CLAIM.fetchval(
            self._db,
            user_id=user_id,
            key=key,
            request_hash=outcome.request_hash,
            task=_snapshot(outcome.task),
            created_at=at,
        )
        return claimed is not None
