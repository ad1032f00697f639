"""Lists in SQLAlchemy Core, each with its task counts from the same statement (no query per list)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, any_, bindparam, delete, false, func, select, true, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY, insert

from todo_api.adapters.sql.engine import Connection, Row, Statement
from todo_api.adapters.sql.order_keys import set_positions
from todo_api.adapters.sql.tables import deleted_lists, lists, tasks
from todo_api.adapters.sql.task_repository import RESTORE_LIST_TASKS, TRASH_LIST_TASKS, task_of
from todo_api.domain.errors import Conflict
from todo_api.domain.lists import TaskList
from todo_api.domain.ports import ListPosition
from todo_api.domain.tasks import Task

_counts = (
    select(
        func.count().label("total_count"),
        func.count().filter(tasks.c.completed.is_(false())).label("open_count"),
    )
    .where(tasks.c.list_id == lists.c.id)
    .lateral("counts")
)
_list_ids = bindparam("ids", type_=ARRAY(BigInteger))
_WITH_COUNTS = select(lists, _counts.c.total_count, _counts.c.open_count).select_from(lists.join(_counts, true()))
_OWNED = (lists.c.id == bindparam("list_id"), lists.c.user_id == bindparam("owner"))
_NAME_TAKEN = "You already have a list with this name."


def list_of(row: Row) -> TaskList:
    return TaskList(
        id=row["id"],
        user_id=row["user_id"],
        name=row["name"],
        color=row["color"],
        position=row["position"],
        is_inbox=row["is_inbox"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
        open_count=row["open_count"],
        total_count=row["total_count"],
    )


_GET = Statement(_WITH_COUNTS.where(*_OWNED))
# FOR UPDATE blocks inserts into the list (their foreign-key check takes KEY SHARE on its row).
_LOCK = Statement(select(lists.c.id).where(*_OWNED).with_for_update())
_INBOX = Statement(_WITH_COUNTS.where(lists.c.user_id == bindparam("owner"), lists.c.is_inbox))
# The person's turn: their Inbox row, FOR NO KEY UPDATE so that adding a task to the Inbox (KEY
# SHARE, by its foreign key) never waits on it. No counts: the lock is all it is for.
_TAKE_TURN = Statement(
    select(lists.c.id)
    .where(lists.c.user_id == bindparam("owner"), lists.c.is_inbox)
    .with_for_update(key_share=True)  # FOR NO KEY UPDATE
)
_ORDER = (lists.c.position.asc(), lists.c.id.asc())
_FIRST_PAGE = Statement(
    _WITH_COUNTS.where(lists.c.user_id == bindparam("owner")).order_by(*_ORDER).limit(bindparam("limit"))
)
_NEXT_PAGE = Statement(
    _WITH_COUNTS.where(
        lists.c.user_id == bindparam("owner"),
        tuple_(lists.c.position, lists.c.id)
        > tuple_(bindparam("after_position", type_=lists.c.position.type), bindparam("after_id")),
    )
    .order_by(*_ORDER)
    .limit(bindparam("limit"))
)
_last_top_level = (
    select(tasks.c.position)
    .where(tasks.c.user_id == lists.c.user_id, tasks.c.list_id == lists.c.id, tasks.c.parent_id.is_(None))
    .order_by(tasks.c.position.desc(), tasks.c.id.desc())
    .limit(1)
    .scalar_subquery()
)
# A create's first statement: a plain read, so it runs before the BEGIN and the create's write can
# be its own transaction (engine/connection.py).
_APPEND_TO_INBOX = Statement(
    select(lists.c.id, _last_top_level.label("last_position")).where(
        lists.c.user_id == bindparam("owner"), lists.c.is_inbox
    ),
    plain_read=True,
)
_APPEND_TO_LIST = Statement(select(lists.c.id, _last_top_level.label("last_position")).where(*_OWNED), plain_read=True)
_COUNT = Statement(select(func.count()).select_from(lists).where(lists.c.user_id == bindparam("owner")))
_LAST_POSITION = Statement(
    select(lists.c.position)
    .where(lists.c.user_id == bindparam("owner"))
    .order_by(*(c.desc() for c in (lists.c.position, lists.c.id)))
    .limit(1)
)
# A taken name is an expected outcome: ON CONFLICT keeps the transaction usable after it.
_ADD = Statement(
    insert(lists)
    .values(
        {
            name: bindparam(name)
            for name in ("user_id", "name", "color", "position", "is_inbox", "created_at", "updated_at")
        }
    )
    .on_conflict_do_nothing()
    .returning(lists.c.id)
)
_SAVE = Statement(
    update(lists)
    .where(*_OWNED, lists.c.version == bindparam("expected_version"))
    .values(
        name=bindparam("name"),
        color=bindparam("color"),
        position=bindparam("position"),
        updated_at=bindparam("updated_at"),
        version=lists.c.version + 1,
    )
    .returning(lists.c.id)
)
_NAME_IN_USE = Statement(
    select(lists.c.id).where(
        lists.c.user_id == bindparam("owner"),
        func.lower(lists.c.name) == func.lower(bindparam("name")),
        lists.c.id != bindparam("list_id"),
    )
)
_ORDER_OF = Statement(
    select(lists.c.id, lists.c.position).where(lists.c.user_id == bindparam("owner")).order_by(*_ORDER)
)
_SET_POSITIONS = set_positions(lists, lists.c.id)
_MANY = Statement(
    _WITH_COUNTS.where(lists.c.user_id == bindparam("owner"), lists.c.id == any_(_list_ids)).order_by(*_ORDER)
)
_kept = [column.name for column in deleted_lists.c if column.name != "deleted_at"]
_gone = delete(lists).where(*_OWNED).returning(*(lists.c[name] for name in _kept)).cte("gone")
_TRASH = Statement(
    insert(deleted_lists)
    .from_select(
        [*_kept, "deleted_at"],
        select(*(_gone.c[name] for name in _kept), bindparam("at", type_=DateTime(timezone=True))),
    )
    .returning(deleted_lists.c.id)
)
_TRASHED = Statement(
    select(deleted_lists).where(
        deleted_lists.c.id == bindparam("list_id"), deleted_lists.c.user_id == bindparam("owner")
    )
)
_back = (
    delete(deleted_lists)
    .where(deleted_lists.c.id == bindparam("list_id"), deleted_lists.c.user_id == bindparam("owner"))
    .returning(*(deleted_lists.c[name] for name in _kept))
    .cte("back")
)
_restored = {name: _back.c[name] for name in _kept} | {
    "version": _back.c.version + 1,
    "updated_at": bindparam("at", type_=DateTime(timezone=True)),
}
# A list is restored unless its name was taken meanwhile (ON CONFLICT: the caller says so).
_RESTORE = Statement(
    insert(lists)
    .from_select(list(_restored), select(*_restored.values()))
    .on_conflict_do_nothing()
    .returning(lists.c.id)
)


class SqlListRepository:
    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def add(
        self, user_id: str, name: str, color: str | None, position: str, at: datetime, *, is_inbox: bool = False
    ) -> TaskList:
        list_id = await _ADD.fetchval(
            self._db,
            user_id=user_id,
            name=name,
            color=color,
            position=position,
            is_inbox=is_inbox,
            created_at=at,
            updated_at=at,
        )
        if list_id is None:  # the name (any case), or a second Inbox
            raise Conflict(_NAME_TAKEN, code="list_name_taken")
        added = await self.get(user_id, list_id)
        assert added is not None  # noqa: S101 - written by this transaction
        return added

    async def get(self, user_id: str, list_id: int, *, for_update: bool = False) -> TaskList | None:
        if for_update and await _LOCK.fetchval(self._db, owner=user_id, list_id=list_id) is None:
            return None
        row = await _GET.fetchrow(self._db, owner=user_id, list_id=list_id)
        return list_of(row) if row else None

    async def inbox(self, user_id: str) -> TaskList | None:
        row = await _INBOX.fetchrow(self._db, owner=user_id)
        return list_of(row) if row else None

    async def take_turn(self, user_id: str) -> bool:
        return await _TAKE_TURN.fetchval(self._db, owner=user_id) is not None

    async def page(self, user_id: str, limit: int, after: ListPosition | None) -> list[TaskList]:
        if after is None:
            rows = await _FIRST_PAGE.fetch(self._db, owner=user_id, limit=limit + 1)
        else:
            rows = await _NEXT_PAGE.fetch(
                self._db, owner=user_id, limit=limit + 1, after_position=after.position, after_id=after.id
            )
        return [list_of(row) for row in rows]

    async def append_point(self, user_id: str, list_id: int | None) -> tuple[int, str | None] | None:
        if list_id is None:
            row = await _APPEND_TO_INBOX.fetchrow(self._db, owner=user_id)
        else:
            row = await _APPEND_TO_LIST.fetchrow(self._db, owner=user_id, list_id=list_id)
        return (row["id"], row["last_position"]) if row else None

    async def count(self, user_id: str) -> int:
        return int(await _COUNT.fetchval(self._db, owner=user_id))

    async def last_position(self, user_id: str) -> str | None:
        position: str | None = await _LAST_POSITION.fetchval(self._db, owner=user_id)
        return position

    async def save(self, task_list: TaskList, *, expected_version: int) -> TaskList | None:
        values = {"owner": task_list.user_id, "list_id": task_list.id, "name": task_list.name}
        if await _NAME_IN_USE.fetchval(self._db, **values) is not None:
            raise Conflict(_NAME_TAKEN, code="list_name_taken")
        try:
            saved = await _SAVE.fetchval(
                self._db,
                **values,
                color=task_list.color,
                position=task_list.position,
                updated_at=task_list.updated_at,
                expected_version=expected_version,
            )
        except Conflict as taken:  # a rename that raced ours to the same name committed first
            raise Conflict(_NAME_TAKEN, code="list_name_taken") from taken
        return None if saved is None else await self.get(task_list.user_id, task_list.id)

    async def order(self, user_id: str) -> list[tuple[int, str]]:
        return [(row["id"], row["position"]) for row in await _ORDER_OF.fetch(self._db, owner=user_id)]

    async def set_positions(self, user_id: str, positions: dict[int, str], at: datetime) -> list[int]:
        rows = await _SET_POSITIONS.fetch(
            self._db, owner=user_id, ids=list(positions), positions=list(positions.values()), updated_at=at
        )
        return [row["id"] for row in rows]

    async def many(self, user_id: str, list_ids: Sequence[int]) -> list[TaskList]:
        return [list_of(row) for row in await _MANY.fetch(self._db, owner=user_id, ids=list(list_ids))]

    async def trash(self, user_id: str, list_id: int, at: datetime) -> list[int]:
        rows = await TRASH_LIST_TASKS.fetch(self._db, owner=user_id, list_id=list_id, at=at)
        await _TRASH.execute(self._db, owner=user_id, list_id=list_id, at=at)
        return [row["id"] for row in rows]

    async def trashed(self, user_id: str, list_id: int) -> TaskList | None:
        row = await _TRASHED.fetchrow(self._db, owner=user_id, list_id=list_id)
        if row is None:
            return None
        return TaskList(
            id=row["id"],
            user_id=row["user_id"],
            name=row["name"],
            color=row["color"],
            position=row["position"],
            is_inbox=False,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            version=row["version"],
            open_count=0,
            total_count=0,
        )

    async def restore(self, user_id: str, list_id: int, at: datetime) -> tuple[TaskList, list[Task]] | None:
        if await _RESTORE.fetchval(self._db, owner=user_id, list_id=list_id, at=at) is None:
            raise Conflict(_NAME_TAKEN, code="list_name_taken")
        restored = [
            task_of(row) for row in await RESTORE_LIST_TASKS.fetch(self._db, owner=user_id, list_id=list_id, at=at)
        ]
        task_list = await self.get(user_id, list_id)
        return None if task_list is None else (task_list, restored)
