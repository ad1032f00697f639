"""Tasks in SQLAlchemy Core: statements compiled once (engine), rows mapped to entities by hand.

Every statement filters by owner: another user's task is indistinguishable from no task.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert

from todo_api.adapters.sql.engine import Connection, Row, Statement
from todo_api.adapters.sql.tables import tasks
from todo_api.adapters.sql.task_listing import count_query, page_query
from todo_api.domain.tasks import Priority, Task, TaskDraft, TaskFilter, TaskQuery

_WRITABLE = ("title", "description", "completed", "priority", "tags", "due_at")


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


_OWNED = (tasks.c.id == bindparam("task_id"), tasks.c.user_id == bindparam("owner"))
_GET = Statement(select(tasks).where(*_OWNED))
_GET_FOR_UPDATE = Statement(select(tasks).where(*_OWNED).with_for_update())
_ADD = Statement(
    insert(tasks)
    .values({name: bindparam(name) for name in ("user_id", *_WRITABLE, "completed_at", "created_at", "updated_at")})
    .returning(tasks)
)
_SAVE = Statement(
    update(tasks)
    .where(*_OWNED, tasks.c.version == bindparam("expected_version"))
    .values(
        {name: bindparam(name) for name in (*_WRITABLE, "completed_at", "updated_at")}
        | {"version": tasks.c.version + 1}
    )
    .returning(tasks)
)
_DELETE = Statement(
    delete(tasks).where(*_OWNED, tasks.c.version == bindparam("expected_version")).returning(tasks.c.id)
)


class SqlTaskRepository:
    def __init__(self, connection: Connection) -> None:
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
        return task_of(row)

    async def get(self, user_id: str, task_id: int, *, for_update: bool = False) -> Task | None:
        statement = _GET_FOR_UPDATE if for_update else _GET
        row = await statement.fetchrow(self._db, owner=user_id, task_id=task_id)
        return task_of(row) if row else None

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
        return task_of(row) if row else None

    async def delete(self, user_id: str, task_id: int, *, expected_version: int) -> bool:
        deleted = await _DELETE.fetchval(self._db, owner=user_id, task_id=task_id, expected_version=expected_version)
        return deleted is not None

    async def list(self, user_id: str, query: TaskQuery, now: datetime) -> list[Task]:
        statement, values = page_query(user_id, query, now)
        return [task_of(row) for row in await statement.fetch(self._db, **values)]

    async def count(self, user_id: str, task_filter: TaskFilter, now: datetime) -> int:
        statement, values = count_query(user_id, task_filter, now)
        return int(await statement.fetchval(self._db, **values))
