"""List use cases: create, page, get, rename or recolour, reorder, delete (with its tasks on request)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from todo_api.domain.changes import Change, Deleted, task_deleted
from todo_api.domain.errors import Conflict, InvalidInput, NotFound, PreconditionFailed
from todo_api.domain.lists import (
    INBOX_NAME,
    MAX_LISTS_PER_USER,
    TaskList,
    normalise_color,
    normalise_list_name,
)
from todo_api.domain.ordering import key_between, key_with_room, keys_between
from todo_api.domain.ports import Clock, ListPosition, UnitOfWork, UnitOfWorkFactory
from todo_api.domain.tasks import UNSET, Unset
from todo_api.use_cases.retries import retry_transient


def list_not_found(list_id: int) -> NotFound:
    return NotFound(f"List {list_id} was not found.", code="list_not_found")


def _stale(task_list: TaskList) -> PreconditionFailed:
    return PreconditionFailed(
        f"List {task_list.id} has changed since the version you sent (it is at version {task_list.version}).",
        current_version=task_list.version,
    )


async def _locked(uow: UnitOfWork, user_id: str, list_id: int, if_match: frozenset[int] | None) -> TaskList:
    """The list, locked for the change about to be made, if it is at a version `if_match` accepts."""
    found = await uow.lists.get(user_id, list_id, for_update=True)
    if found is None:
        raise list_not_found(list_id)
    if if_match is not None and found.version not in if_match:
        raise _stale(found)
    return found


async def take_turn(uow: UnitOfWork, user_id: str, at: datetime) -> None:
    """The person's turn at changing the shape of their lists and task trees (see
    `ListRepository.take_turn`): what one change reads (neighbours' keys, a parent's ancestors,
    the number of lists) stays true until it commits. Changes of fields never take it."""
    if not await uow.lists.take_turn(user_id):
        await inbox_id(uow, user_id, at)  # the new Inbox row is ours until we commit


async def inbox_id(uow: UnitOfWork, user_id: str, at: datetime) -> int:
    """The user's Inbox, made on first need for an account that has none yet (sign-up and the
    migration make it; an account another way in, such as an external issuer, may not have it)."""
    if (inbox := await uow.lists.inbox(user_id)) is not None:
        return inbox.id
    last = await uow.lists.last_position(user_id)
    position = key_between(None, None) if last is None else key_between(last, None)
    inbox = await uow.lists.add(user_id, INBOX_NAME, None, position, at, is_inbox=True)
    uow.changes.record(user_id, [Change("list.created", inbox)])
    return inbox.id


@dataclass(frozen=True, slots=True)
class ListPage:
    lists: list[TaskList]
    next_position: ListPosition | None
    sync_position: int | None = None  # on a first page, as for tasks (TaskPage)


class CreateList:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    @retry_transient
    async def execute(self, user_id: str, name: str, color: str | None = None) -> TaskList:
        name, color = normalise_list_name(name), normalise_color(color)
        async with self._uow() as uow:
            # Two creations at the cap cannot both pass the count, nor two at the end share a key.
            await take_turn(uow, user_id, self._clock.now())
            if await uow.lists.count(user_id) >= MAX_LISTS_PER_USER:
                raise InvalidInput(f"You can have at most {MAX_LISTS_PER_USER} lists.", code="too_many_lists")
            last = await uow.lists.last_position(user_id)
            added = await uow.lists.add(user_id, name, color, key_between(last, None), self._clock.now())
            uow.changes.record(user_id, [Change("list.created", added)])
            await uow.commit()
        return added


class ListLists:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def execute(self, user_id: str, limit: int, after: ListPosition | None = None) -> ListPage:
        async with self._uow(read_only=True) as uow:
            synced = await uow.changes.position(user_id) if after is None else None
            rows = await uow.lists.page(user_id, limit, after)
        page, more = rows[:limit], len(rows) > limit
        return ListPage(page, ListPosition(page[-1].position, page[-1].id) if more else None, synced)


class GetList:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def execute(self, user_id: str, list_id: int) -> TaskList:
        async with self._uow(read_only=True) as uow:
            found = await uow.lists.get(user_id, list_id)
        if found is None:
            raise list_not_found(list_id)
        return found


class UpdateList:
    """Rename or recolour; the Inbox can be renamed too (it stays the Inbox)."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    @retry_transient
    async def execute(
        self,
        user_id: str,
        list_id: int,
        *,
        name: str | Unset = UNSET,
        color: str | Unset | None = UNSET,
        if_match: frozenset[int] | None = None,
    ) -> TaskList:
        async with self._uow() as uow:
            found = await _locked(uow, user_id, list_id, if_match)
            changed = replace(
                found,
                name=found.name if isinstance(name, Unset) else normalise_list_name(name),
                color=found.color if isinstance(color, Unset) else normalise_color(color),
            )
            if changed == found:
                return found
            saved = await uow.lists.save(replace(changed, updated_at=self._clock.now()), expected_version=found.version)
            if saved is None:  # cannot happen under the lock; refuse rather than guess
                raise _stale(found)
            uow.changes.record(user_id, [Change("list.updated", saved)])
            await uow.commit()
        return saved


class MoveList:
    """Put a list before or after another (neither: last). A person has at most 1,000 lists, so
    the move reads every list's key (ids and short strings, one index range) rather than asking
    for neighbours twice; it writes the one row, unless there is no room between the neighbours'
    keys (equal, or grown past the limit), when every list gets a fresh, evenly spread key."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    @retry_transient
    async def execute(
        self,
        user_id: str,
        list_id: int,
        *,
        before_id: int | None = None,
        after_id: int | None = None,
        if_match: frozenset[int] | None = None,
    ) -> TaskList:
        if before_id is not None and after_id is not None:
            raise InvalidInput("Send `before_id` or `after_id`, not both.", code="invalid_move")
        if list_id in (before_id, after_id):
            raise InvalidInput("A list cannot be placed next to itself.", code="invalid_move")
        async with self._uow() as uow:
            # Two lists dropped into one gap at once would otherwise read the same neighbours.
            await take_turn(uow, user_id, self._clock.now())
            found = await _locked(uow, user_id, list_id, if_match)
            others = [entry for entry in await uow.lists.order(user_id) if entry[0] != list_id]
            index = _insertion_index([entry[0] for entry in others], before_id, after_id)
            now = self._clock.now()
            low = others[index - 1][1] if index > 0 else None
            high = others[index][1] if index < len(others) else None
            position = key_with_room(low, high)
            if position is None:
                ids = [entry[0] for entry in others]
                ids.insert(index, list_id)
                fresh = dict(zip(ids, keys_between(None, None, len(ids)), strict=True))
                position = fresh.pop(list_id)
                await respread(uow, user_id, fresh, now)
            moved = replace(found, position=position, updated_at=now)
            saved = await uow.lists.save(moved, expected_version=found.version)
            if saved is None:  # cannot happen under the lock; refuse rather than guess
                raise _stale(found)
            uow.changes.record(user_id, [Change("list.moved", saved)])
            await uow.commit()
        return saved


async def respread(uow: UnitOfWork, user_id: str, fresh: dict[int, str], now: datetime) -> dict[int, TaskList]:
    """Give lists fresh keys (a rebalance), each a new version and a `list.moved` event."""
    moved = await uow.lists.many(user_id, await uow.lists.set_positions(user_id, fresh, now))
    uow.changes.record(user_id, [Change("list.moved", other) for other in moved])
    return {other.id: other for other in moved}


def _insertion_index(ids: list[int], before_id: int | None, after_id: int | None) -> int:
    """Where the moved list goes among the others: before `before_id`, after `after_id`, or last."""
    anchor = before_id if before_id is not None else after_id
    if anchor is None:
        return len(ids)
    if anchor not in ids:
        raise list_not_found(anchor)
    return ids.index(anchor) + (0 if before_id is not None else 1)


class DeleteList:
    """A list that still holds tasks is kept unless `cascade`; the Inbox is never deleted. The list
    is locked first, so a task being added to it concurrently either lands before the count (and
    blocks a plain delete) or finds the list gone: never a task without its list. The list and
    its tasks stay restorable for the retention window (RestoreList)."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    @retry_transient
    async def execute(
        self, user_id: str, list_id: int, *, cascade: bool = False, if_match: frozenset[int] | None = None
    ) -> None:
        async with self._uow() as uow:
            found = await _locked(uow, user_id, list_id, if_match)
            if found.is_inbox:
                raise Conflict("The Inbox cannot be deleted; rename it if you like.", code="inbox_not_deletable")
            if found.total_count and not cascade:
                raise Conflict(
                    f"List {list_id} still holds {found.total_count} tasks; move them, or delete with ?cascade=true.",
                    code="list_not_empty",
                )
            now = self._clock.now()
            deleted = await uow.lists.trash(user_id, list_id, now)
            uow.changes.record(user_id, [task_deleted(task_id, now) for task_id in deleted])
            uow.changes.record(user_id, [Change("list.deleted", Deleted("list", list_id, now))])
            await uow.commit()
