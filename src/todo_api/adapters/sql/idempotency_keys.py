"""Idempotency keys: the first outcome of a create or a bulk change, kept 24 hours per (user, key) as JSONB."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert

from todo_api.adapters.sql.engine import Connection, Statement
from todo_api.adapters.sql.tables import idempotency_keys
from todo_api.adapters.sql.task_repository import reminders_json, task_of
from todo_api.domain.bulk import BulkOutcome, BulkResult
from todo_api.domain.ports import IdempotentOutcome
from todo_api.domain.tasks import Task


def _snapshot(task: Task) -> dict[str, Any]:
    recurrence = task.recurrence
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
        "list_id": task.list_id,
        "parent_id": task.parent_id,
        "position": task.position,
        "recurrence_rule": recurrence.rule if recurrence else None,
        "recurrence_timezone": recurrence.timezone if recurrence else None,
        "recurrence_from": recurrence.from_ if recurrence else None,
        "recurrence_start": recurrence.start.isoformat() if recurrence and recurrence.start else None,
        "reminders": reminders_json(task.reminders),
        "series_id": task.series_id,
        "previous_id": task.previous_id,
    }


_BEFORE_SERIES = dict.fromkeys(
    ("recurrence_rule", "recurrence_timezone", "recurrence_from", "recurrence_start", "series_id", "previous_id")
)


def _from_snapshot(snapshot: dict[str, Any]) -> Task:
    values = {**_BEFORE_SERIES, "reminders": [], **snapshot}  # a snapshot taken before series existed has none
    for name in ("completed_at", "due_at", "created_at", "updated_at", "recurrence_start"):
        values[name] = datetime.fromisoformat(values[name]) if values[name] else None
    return task_of(values)


def _bulk_snapshot(outcome: BulkOutcome) -> dict[str, Any]:
    return {
        "applied": outcome.applied,
        "results": [[result.task_id, result.op, result.code, result.message] for result in outcome.results],
    }


def _bulk_from_snapshot(snapshot: dict[str, Any]) -> BulkOutcome:
    return BulkOutcome(snapshot["applied"], tuple(BulkResult(*result) for result in snapshot["results"]))


_OWN_KEY = (idempotency_keys.c.user_id == bindparam("owner"), idempotency_keys.c.key == bindparam("idempotency_key"))
_FIND_OUTCOME = Statement(
    select(idempotency_keys.c.request_hash, idempotency_keys.c.task, idempotency_keys.c.bulk).where(
        *_OWN_KEY, idempotency_keys.c.created_at > bindparam("since")
    )
)
_FORGET_EXPIRED = Statement(
    delete(idempotency_keys).where(*_OWN_KEY, idempotency_keys.c.created_at <= bindparam("since"))
)
_CLAIM = Statement(
    insert(idempotency_keys)
    .values({name: bindparam(name) for name in ("user_id", "key", "request_hash", "task", "bulk", "created_at")})
    .on_conflict_do_nothing()
    .returning(idempotency_keys.c.key)
)


class SqlIdempotencyKeys:
    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def find(self, user_id: str, key: str, since: datetime) -> IdempotentOutcome | None:
        row = await _FIND_OUTCOME.fetchrow(self._db, owner=user_id, idempotency_key=key, since=since)
        if row is None:
            return None
        result = _from_snapshot(row["task"]) if row["task"] is not None else _bulk_from_snapshot(row["bulk"])
        return IdempotentOutcome(row["request_hash"], result)

    async def claim(self, user_id: str, key: str, outcome: IdempotentOutcome, at: datetime, since: datetime) -> bool:
        await _FORGET_EXPIRED.execute(self._db, owner=user_id, idempotency_key=key, since=since)
        claimed = await _CLAIM.fetchval(
            self._db,
            user_id=user_id,
            key=key,
            request_hash=outcome.request_hash,
            task=_snapshot(outcome.result) if isinstance(outcome.result, Task) else None,
            bulk=_bulk_snapshot(outcome.result) if isinstance(outcome.result, BulkOutcome) else None,
            created_at=at,
        )
        return claimed is not None
