"""Tasks and idempotency keys in SQLAlchemy Core. Every statement filters by owner; listing is
keyset pagination over an index per sort, so page 5,000 costs what page 1 costs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, delete, false, func, literal_column, or_, select, true, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from todo_api.adapters.sql.tables import DUE_LAST_ASC, DUE_LAST_DESC, idempotency_keys, tasks
from todo_api.domain.ports import IdempotentOutcome
from todo_api.domain.tasks import Position, Priority, Sort, Task, TaskDraft, TaskFilter, TaskQuery

_SORT_COLUMNS: dict[str, ColumnElement[Any]] = {
    "created_at": tasks.c.created_at,
    "updated_at": tasks.c.updated_at,
    "priority": tasks.c.priority,
    "title": func.lower(tasks.c.title),
}


def _task(row: Row[Any] | dict[str, Any]) -> Task:
    values = row._mapping if isinstance(row, Row) else row
    return Task(
        id=values["id"],
        user_id=values["user_id"],
        title=values["title"],
        description=values["description"],
        completed=values["completed"],
        completed_at=values["completed_at"],
        priority=Priority(values["priority"]),
        tags=tuple(values["tags"]),
        due_at=values["due_at"],
        created_at=values["created_at"],
        updated_at=values["updated_at"],
        version=values["version"],
    )


def _sort_key(sort: Sort) -> ColumnElement[Any]:
    """The indexed expression a sort orders by; `due_at` has no NULLs in it (see tables.py)."""
    if sort.field == "due_at":
        return DUE_LAST_DESC if sort.descending else DUE_LAST_ASC
    return _SORT_COLUMNS[sort.field]


def _order_by(sort: Sort) -> list[ColumnElement[Any]]:
    key = _sort_key(sort)
    return [key.desc(), tasks.c.id.desc()] if sort.descending else [key.asc(), tasks.c.id.asc()]


def _after(sort: Sort, position: Position) -> ColumnElement[bool]:
    """Rows strictly after `position` in the sort order: one row comparison, so an index range."""
    value: Any = position.value
    if sort.field == "title":
        # The position holds the raw title: PostgreSQL lower-cases both sides, so the comparison
        # uses exactly the function (and collation) the index and ORDER BY use.
        value = func.lower(value)
    elif sort.field == "due_at" and value is None:
        value = literal_column("'-infinity'::timestamptz" if sort.descending else "'infinity'::timestamptz")
    pair, bound = tuple_(_sort_key(sort), tasks.c.id), tuple_(value, position.id)
    return pair < bound if sort.descending else pair > bound


def _like_pattern(search: str) -> str:
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filtered(user_id: str, task_filter: TaskFilter, now: datetime) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [tasks.c.user_id == user_id]
    if task_filter.status != "all":
        conditions.append(tasks.c.completed.is_(true() if task_filter.status == "completed" else false()))
    if task_filter.priorities:
        conditions.append(tasks.c.priority.in_(sorted(int(p) for p in task_filter.priorities)))
    if task_filter.tags:
        conditions.append(tasks.c.tags.contains(list(task_filter.tags)))
    if task_filter.search:
        pattern = _like_pattern(task_filter.search)
        conditions.append(
            or_(tasks.c.title.ilike(pattern, escape="\\"), tasks.c.description.ilike(pattern, escape="\\"))
        )
    if task_filter.due_before is not None:
        conditions.append(tasks.c.due_at < task_filter.due_before)
    if task_filter.due_after is not None:
        conditions.append(tasks.c.due_at > task_filter.due_after)
    if task_filter.overdue:
        conditions.extend([tasks.c.due_at < now, tasks.c.completed.is_(false())])
    return conditions


def _values(task: Task | TaskDraft) -> dict[str, Any]:
    return {
        "title": task.title,
        "description": task.description,
        "completed": task.completed,
        "priority": int(task.priority),
        "tags": list(task.tags),
        "due_at": task.due_at,
    }


class SqlTaskRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._db = connection

    async def add(self, user_id: str, draft: TaskDraft, at: datetime) -> Task:
        row = (
            await self._db.execute(
                insert(tasks)
                .values(
                    user_id=user_id,
                    completed_at=at if draft.completed else None,
                    created_at=at,
                    updated_at=at,
                    **_values(draft),
                )
                .returning(tasks)
            )
        ).one()
        return _task(row)

    async def get(self, user_id: str, task_id: int, *, for_update: bool = False) -> Task | None:
        statement = select(tasks).where(tasks.c.id == task_id, tasks.c.user_id == user_id)
        if for_update:
            statement = statement.with_for_update()
        row = (await self._db.execute(statement)).first()
        return _task(row) if row else None

    async def save(self, task: Task, *, expected_version: int) -> Task | None:
        row = (
            await self._db.execute(
                update(tasks)
                .where(tasks.c.id == task.id, tasks.c.user_id == task.user_id, tasks.c.version == expected_version)
                .values(
                    completed_at=task.completed_at,
                    updated_at=task.updated_at,
                    version=tasks.c.version + 1,
                    **_values(task),
                )
                .returning(tasks)
            )
        ).first()
        return _task(row) if row else None

    async def delete(self, user_id: str, task_id: int, *, expected_version: int | None) -> bool:
        statement = delete(tasks).where(tasks.c.id == task_id, tasks.c.user_id == user_id)
        if expected_version is not None:
            statement = statement.where(tasks.c.version == expected_version)
        result = await self._db.execute(statement.returning(tasks.c.id))
        return result.first() is not None

    async def list(self, user_id: str, query: TaskQuery, now: datetime) -> list[Task]:
        conditions = _filtered(user_id, query.filter, now)
        if query.after is not None:
            conditions.append(_after(query.sort, query.after))
        statement = select(tasks).where(*conditions).order_by(*_order_by(query.sort)).limit(query.limit + 1)
        return [_task(row) for row in await self._db.execute(statement)]

    async def count(self, user_id: str, task_filter: TaskFilter, now: datetime) -> int:
        statement = select(func.count()).select_from(tasks).where(*_filtered(user_id, task_filter, now))
        return int((await self._db.execute(statement)).scalar_one())


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


class SqlIdempotencyKeys:
    def __init__(self, connection: AsyncConnection) -> None:
        self._db = connection

    async def find(self, user_id: str, key: str, since: datetime) -> IdempotentOutcome | None:
        row = (
            await self._db.execute(
                select(idempotency_keys.c.request_hash, idempotency_keys.c.task).where(
                    idempotency_keys.c.user_id == user_id,
                    idempotency_keys.c.key == key,
                    idempotency_keys.c.created_at > since,
                )
            )
        ).first()
        return IdempotentOutcome(row.request_hash, _from_snapshot(row.task)) if row else None

    async def claim(self, user_id: str, key: str, outcome: IdempotentOutcome, at: datetime, since: datetime) -> bool:
        await self._db.execute(
            delete(idempotency_keys).where(
                idempotency_keys.c.user_id == user_id,
                idempotency_keys.c.key == key,
                idempotency_keys.c.created_at <= since,
            )
        )
        inserted = await self._db.execute(
            insert(idempotency_keys)
            .values(
                user_id=user_id,
                key=key,
                request_hash=outcome.request_hash,
                task=_snapshot(outcome.task),
                created_at=at,
            )
            .on_conflict_do_nothing()
            .returning(idempotency_keys.c.key)
        )
        return inserted.first() is not None
