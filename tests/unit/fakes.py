"""In-memory fakes of the ports, for unit tests of the use cases: state you can look at, no mocks.

One `FakeStore` plays the database. Every `FakeUnitOfWork` handed out by a `FakeUnitOfWorkFactory`
works on that store; on exit it restores the store to its last commit, so rollback is the default,
as with the SQL unit of work. Units of work are used one at a time, as the use cases do.
"""

from __future__ import annotations

import asyncio
import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from tests.unit.chat_fakes import ChatTables, FakeConversationRepository
from tests.unit.webhook_fakes import FakeWebhookRepository, StoredWebhook
from todo_api.domain.changes import Change as FeedChange
from todo_api.domain.changes import Deleted, FeedEvent, coalesced, task_change
from todo_api.domain.errors import AuthenticationFailed, Conflict
from todo_api.domain.lists import TaskList
from todo_api.domain.overview import Counts, Day, TagCount, TaskSummary
from todo_api.domain.ports import (
    AccessTokens,
    ChangeSignals,
    Clock,
    IdempotencyKeys,
    IdempotentOutcome,
    ListPosition,
    ListRepository,
    PasswordHasher,
    RateLimiter,
    RefreshTokenRepository,
    TaskRepository,
    TokenVerifier,
    UnitOfWork,
    UnitOfWorkFactory,
    UserRepository,
)
from todo_api.domain.recurrence import ReminderPosition, ScheduledReminder
from todo_api.domain.sessions import RefreshToken, Session
from todo_api.domain.tasks import (
    DeletedTask,
    Position,
    Priority,
    Sort,
    Task,
    TaskDraft,
    TaskFilter,
    TaskQuery,
    sort_value,
)
from todo_api.domain.users import Principal, User

# --- Time --------------------------------------------------------------------------------------------

START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


class FakeClock:
    """Time stands still until a test moves it."""

    def __init__(self, start: datetime = START) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def set(self, at: datetime) -> None:
        self.current = at

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


# --- The store: what the database would hold ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FixedWindow:
    """One rate-limit counter: hits since the window started."""

    hits: int
    started_at: datetime


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """One row of `idempotency_keys`: the first outcome for a (user, key) and when it was recorded."""

    outcome: IdempotentOutcome
    created_at: datetime


@dataclass
class FakeStore:
    """Every table as a dict. Add a field here for a new table; snapshot and restore cover it."""

    users: dict[str, User] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    rate_limits: dict[str, FixedWindow] = field(default_factory=dict)
    tasks: dict[int, Task] = field(default_factory=dict)
    last_task_id: int = 0  # the id of the last task added; unlike a sequence, rolled back with the rest
    idempotency_keys: dict[tuple[str, str], IdempotencyRecord] = field(default_factory=dict)
    lists: dict[int, TaskList] = field(default_factory=dict)
    last_list_id: int = 0
    deleted_tasks: dict[int, DeletedTask] = field(default_factory=dict)
    deleted_lists: dict[int, TaskList] = field(default_factory=dict)  # `updated_at` kept; deleted_at apart
    deleted_list_at: dict[int, datetime] = field(default_factory=dict)
    events: dict[str, list[FeedEvent]] = field(default_factory=dict)  # per person, in position order
    pruned_through: dict[str, int] = field(default_factory=dict)
    webhooks: dict[int, StoredWebhook] = field(default_factory=dict)
    last_webhook_id: int = 0
    reminders: dict[int, list[ScheduledReminder]] = field(default_factory=dict)  # armed, per task
    last_reminder_id: int = 0
    chat: ChatTables = field(default_factory=ChatTables)
    sessions: dict[str, Session] = field(default_factory=dict)
    revoked_sessions: dict[str, datetime] = field(default_factory=dict)

    def snapshot(self) -> FakeStore:
        return copy.deepcopy(self)

    def restore(self, saved: FakeStore) -> None:
        for table in fields(self):
            setattr(self, table.name, copy.deepcopy(getattr(saved, table.name)))

    def user_by_email(self, email: str) -> User | None:
        return next((user for user in self.users.values() if user.email == email), None)

    def tokens_of_family(self, family_id: str) -> list[RefreshToken]:
        return [token for token in self.refresh_tokens.values() if token.family_id == family_id]


# --- Users and sessions ------------------------------------------------------------------------------


class FakeUserRepository:
    """`before_add` runs first: where another transaction can commit, or the database abort this one."""

    def __init__(self, store: FakeStore, *, before_add: Callable[[], None] = lambda: None) -> None:
        self._store = store
        self._before_add = before_add

    async def get(self, user_id: str) -> User | None:
        return self._store.users.get(user_id)

    async def get_by_email(self, email: str) -> User | None:
        return self._store.user_by_email(email)

    async def add(self, user: User) -> None:
        self._before_add()
        if user.id in self._store.users:
            raise ValueError(f"duplicate user id {user.id!r}")  # a primary-key violation: a bug, not a conflict
        if user.email is not None and self._store.user_by_email(user.email) is not None:
            raise Conflict("An account with this e-mail address already exists.", code="email_taken")
        self._store.users[user.id] = user

    async def add_external(self, user: User) -> None:
        if user.id in self._store.users:
            return
        if user.email is not None and self._store.user_by_email(user.email) is not None:
            user = replace(user, email=None)
        self._store.users[user.id] = user

    async def set_password_hash(self, user_id: str, password_hash: str, at: datetime) -> None:
        if (user := self._store.users.get(user_id)) is not None:
            self._store.users[user_id] = replace(user, password_hash=password_hash, updated_at=at)

    async def set_name(self, user_id: str, name: str | None, at: datetime) -> User | None:
        if (user := self._store.users.get(user_id)) is None:
            return None
        self._store.users[user_id] = replace(user, name=name, updated_at=at)
        return self._store.users[user_id]

    async def delete(self, user_id: str) -> bool:
        """As the foreign keys' cascades: every row that names the person goes with them."""
        store = self._store
        if store.users.pop(user_id, None) is None:
            return False
        for task_id in [key for key, task in store.tasks.items() if task.user_id == user_id]:
            del store.tasks[task_id]
        for list_id in [key for key, task_list in store.lists.items() if task_list.user_id == user_id]:
            del store.lists[list_id]
        for session_id in [key for key, session in store.sessions.items() if session.user_id == user_id]:
            del store.sessions[session_id]
        for key in [key for key, entry in store.deleted_tasks.items() if entry.task.user_id == user_id]:
            del store.deleted_tasks[key]
        for key in [key for key, task_list in store.deleted_lists.items() if task_list.user_id == user_id]:
            del store.deleted_lists[key]
        for token_hash in [key for key, token in store.refresh_tokens.items() if token.user_id == user_id]:
            del store.refresh_tokens[token_hash]
        for pair in [pair for pair in store.idempotency_keys if pair[0] == user_id]:
            del store.idempotency_keys[pair]
        for key in [key for key, hook in store.webhooks.items() if hook.webhook.user_id == user_id]:
            del store.webhooks[key]
        store.events.pop(user_id, None)
        store.pruned_through.pop(user_id, None)
        return True


class FakeSessionRepository:
    def __init__(self, store: FakeStore) -> None:
        self._store = store

    async def start(self, session: Session) -> None:
        self._store.sessions[session.id] = session

    async def touch(self, session_id: str, at: datetime, expires_at: datetime) -> None:
        if (session := self._store.sessions.get(session_id)) is not None:
            self._store.sessions[session_id] = replace(session, last_used_at=at, expires_at=expires_at)

    async def live(self, user_id: str, now: datetime) -> list[Session]:
        mine = [s for s in self._store.sessions.values() if s.user_id == user_id and s.expires_at > now]
        return sorted(mine, key=lambda session: (-session.last_used_at.timestamp(), session.id))

    async def end(
        self, user_id: str, at: datetime, *, session_id: str | None = None, keep: str | None = None
    ) -> list[str]:
        def ends(family: str) -> bool:
            return family == session_id if session_id is not None else family != keep

        store = self._store
        ended = {key for key, session in store.sessions.items() if session.user_id == user_id and ends(key)}
        ended |= {
            token.family_id
            for token in store.refresh_tokens.values()
            if token.user_id == user_id and token.revoked_at is None and ends(token.family_id)
        }
        for key in ended:
            store.sessions.pop(key, None)
            store.revoked_sessions.setdefault(key, at)
        for token_hash, token in list(store.refresh_tokens.items()):
            if token.family_id in ended and token.revoked_at is None:
                store.refresh_tokens[token_hash] = replace(token, revoked_at=at)
        return sorted(ended)


class FakeRevokedSessions:
    """The `RevokedSessions` port over the store every fake unit of work writes."""

    def __init__(self, store: FakeStore) -> None:
        self._store = store

    async def revoked_since(self, since: datetime) -> list[str]:
        return [key for key, at in self._store.revoked_sessions.items() if at > since]


class FakeRefreshTokenRepository:
    def __init__(self, store: FakeStore) -> None:
        self._store = store

    async def add(self, token: RefreshToken) -> None:
        if token.token_hash in self._store.refresh_tokens:
            raise ValueError("duplicate refresh token hash")
        self._store.refresh_tokens[token.token_hash] = token

    async def get_for_update(self, token_hash: str) -> RefreshToken | None:
        return self._store.refresh_tokens.get(token_hash)

    async def mark_rotated(self, token_hash: str, at: datetime) -> None:
        if (token := self._store.refresh_tokens.get(token_hash)) is not None:
            self._store.refresh_tokens[token_hash] = replace(token, rotated_at=at)

    async def revoke_family(self, family_id: str, at: datetime) -> None:
        self._revoke_where(lambda token: token.family_id == family_id, at)

    async def revoke_user_families(self, user_id: str, at: datetime, *, keep_family: str | None) -> None:
        self._revoke_where(lambda token: token.user_id == user_id and token.family_id != keep_family, at)

    async def family_live(self, family_id: str, at: datetime) -> bool:
        return any(
            token.revoked_at is None and token.expires_at > at for token in self._store.tokens_of_family(family_id)
        )

    def _revoke_where(self, matches: Callable[[RefreshToken], bool], at: datetime) -> None:
        """Like the SQL: a token revoked already keeps the time it was first revoked."""
        tokens = self._store.refresh_tokens
        for token_hash, token in list(tokens.items()):
            if token.revoked_at is None and matches(token):
                tokens[token_hash] = replace(token, revoked_at=at)


# --- Throttling --------------------------------------------------------------------------------------


class FakeRateLimiter:
    """Fixed windows, as `SqlRateLimiter`: the first hit starts a window of `window_s` seconds."""

    def __init__(self, store: FakeStore, clock: FakeClock) -> None:
        self._store, self._clock = store, clock

    async def acquire(self, key: str, *, limit: int, window_s: int) -> int | None:
        """As `SqlRateLimiter`: the attempt is counted first; over `limit`, the seconds left in the window."""
        window = await self.hit(key, window_s=window_s)
        if window.hits <= limit:
            return None
        remaining = window.started_at + timedelta(seconds=window_s) - self._clock.now()
        return max(1, math.ceil(remaining.total_seconds()))

    async def hit(self, key: str, *, window_s: int) -> FixedWindow:
        """Count one attempt with no limit to check (not a port method: tests use it to fill the table)."""
        window = self._current(key, window_s)
        if window is None:
            window = FixedWindow(hits=1, started_at=self._clock.now())
        else:
            window = replace(window, hits=window.hits + 1)
        self._store.rate_limits[key] = window
        return window

    async def release(self, key: str) -> None:
        if (window := self._store.rate_limits.get(key)) is not None and window.hits > 0:
            self._store.rate_limits[key] = replace(window, hits=window.hits - 1)

    async def reset(self, key: str) -> None:
        self._store.rate_limits.pop(key, None)

    def _current(self, key: str, window_s: int) -> FixedWindow | None:
        window = self._store.rate_limits.get(key)
        if window is None or window.started_at <= self._clock.now() - timedelta(seconds=window_s):
            return None
        return window


# --- Tasks and idempotency keys ----------------------------------------------------------------------


def _nothing() -> None:
    return None


def in_sort_order(tasks: list[Task], sort: Sort) -> list[Task]:
    """As `ORDER BY` in `SqlTaskRepository`: the value then the id, both in the sort's direction;
    tasks without `due_at` last either way (ascending puts NULLs last in PostgreSQL by default)."""
    valued = [task for task in tasks if sort_value(task, sort.field) is not None]
    unvalued = [task for task in tasks if sort_value(task, sort.field) is None]
    valued.sort(key=lambda task: _keyset(task, sort), reverse=sort.descending)
    unvalued.sort(key=lambda task: task.id, reverse=sort.descending)
    return valued + unvalued


def is_after(task: Task, sort: Sort, position: Position) -> bool:
    """As the keyset condition in `SqlTaskRepository`: strictly after `position` in the sort order."""
    value = sort_value(task, sort.field)
    if position.value is None:  # only a `due_at` can be missing: the page ended among the undated tasks
        return value is None and (task.id < position.id if sort.descending else task.id > position.id)
    if value is None:
        return True  # undated tasks come after every dated one
    pair, bound = _keyset(task, sort), (_comparable(position.value, sort), position.id)
    return pair < bound if sort.descending else pair > bound


def _comparable(value: Any, sort: Sort) -> Any:
    """Titles compare case-insensitively on both sides, as `lower(title)` does in SQL."""
    return value.lower() if sort.field == "title" and isinstance(value, str) else value


def _keyset(task: Task, sort: Sort) -> tuple[Any, int]:
    """(value, id); `Any` because one sort compares values of one type only."""
    return _comparable(sort_value(task, sort.field), sort), task.id


def matches_filter(task: Task, user_id: str, task_filter: TaskFilter, now: datetime) -> bool:
    """As the `WHERE` of `SqlTaskRepository`: owner, status, priorities, every tag, search, due dates."""
    due = task.due_at
    search = task_filter.search.lower() if task_filter.search else None
    return (
        task.user_id == user_id
        and (task_filter.status == "all" or task.completed == (task_filter.status == "completed"))
        and (not task_filter.priorities or task.priority in task_filter.priorities)
        and set(task_filter.tags) <= set(task.tags)
        and (search is None or search in task.title.lower() or search in (task.description or "").lower())
        and (task_filter.due_before is None or (due is not None and due < task_filter.due_before))
        and (task_filter.due_after is None or (due is not None and due > task_filter.due_after))
        and (not task_filter.overdue or (due is not None and due < now and not task.completed))
        and (task_filter.list_id is None or task.list_id == task_filter.list_id)
        and (task_filter.parent_id is None or task.parent_id == task_filter.parent_id)
        and (not task_filter.top_level or task.parent_id is None)
    )


class FakeTaskRepository:
    """As `SqlTaskRepository`: every method filters by owner; a save or delete with a version only
    writes over that version. `before_save` and `before_delete` run first: where another transaction
    can commit in between (see `OtherTransactions`)."""

    def __init__(
        self,
        store: FakeStore,
        *,
        before_save: Callable[[], None] = _nothing,
        before_delete: Callable[[], None] = _nothing,
        before_locked_read: Callable[[], None] = _nothing,
        changes: FakeChangeLog | None = None,
    ) -> None:
        self._store = store
        self._before_save, self._before_delete = before_save, before_delete
        self._before_locked_read = before_locked_read
        self._changes = changes if changes is not None else FakeChangeLog(store)

    async def add(self, user_id: str, draft: TaskDraft, at: datetime, *, list_id: int, position: str) -> Task:
        self._store.last_task_id += 1
        task = draft.created(self._store.last_task_id, user_id, at, list_id=list_id, position=position)
        self._store.tasks[task.id] = task
        return task

    async def add_successor(self, successor: Task, at: datetime) -> Task | None:
        if any(task.previous_id == successor.previous_id for task in self._store.tasks.values()):
            return None
        self._store.last_task_id += 1
        task = replace(successor, id=self._store.last_task_id, created_at=at, updated_at=at, version=1)
        self._store.tasks[task.id] = task
        return task

    async def remove_successor(self, user_id: str, previous_id: int) -> int | None:
        for task in list(self._store.tasks.values()):
            has_children = any(child.parent_id == task.id for child in self._store.tasks.values())
            if task.user_id == user_id and task.previous_id == previous_id and task.version == 1 and not has_children:
                del self._store.tasks[task.id]
                return task.id
        return None

    async def add_and_record(
        self, user_id: str, draft: TaskDraft, at: datetime, *, list_id: int, position: str
    ) -> Task:
        task = await self.add(user_id, draft, at, list_id=list_id, position=position)
        self._changes.record(user_id, [task_change(None, task)])
        self._changes.close()
        return task

    async def save_and_record(self, task: Task, *, before: Task) -> Task | None:
        saved = await self.save(task, expected_version=before.version)
        if saved is not None:
            self._changes.record(task.user_id, [task_change(before, saved)])
            self._changes.close()
        return saved

    async def get(self, user_id: str, task_id: int, *, for_update: bool = False) -> Task | None:
        if for_update:
            self._before_locked_read()
        task = self._store.tasks.get(task_id)
        return task if task is not None and task.user_id == user_id else None

    async def save(self, task: Task, *, expected_version: int) -> Task | None:
        self._before_save()
        stored = await self.get(task.user_id, task.id)
        if stored is None or stored.version != expected_version:
            return None
        saved = replace(  # the columns the SQL `UPDATE` sets; id, owner and created_at stay as stored
            stored,
            title=task.title,
            description=task.description,
            completed=task.completed,
            completed_at=task.completed_at,
            priority=task.priority,
            tags=task.tags,
            due_at=task.due_at,
            recurrence=task.recurrence,
            reminders=task.reminders,
            updated_at=task.updated_at,
            version=stored.version + 1,
        )
        self._store.tasks[saved.id] = saved
        return saved

    async def trash(
        self, user_id: str, root_ids: Sequence[int], at: datetime, *, deleted_list_id: int | None = None
    ) -> list[int]:
        self._before_delete()
        roots = [
            task_id for task_id in root_ids if (task := self._store.tasks.get(task_id)) and task.user_id == user_id
        ]
        root_of: dict[int, int] = {}
        for root in roots:  # a named task under another goes with the top one
            for task_id in [root, *(await self.descendants(user_id, root))]:
                if task_id not in root_of or task_id == root_of[task_id]:
                    root_of[task_id] = root
        for task_id, root in root_of.items():
            task = replace(self._store.tasks.pop(task_id), deleted_at=at)
            self._store.deleted_tasks[task_id] = DeletedTask(task, root, deleted_list_id)
        return list(root_of)

    async def trashed(self, user_id: str, task_id: int) -> DeletedTask | None:
        found = self._store.deleted_tasks.get(task_id)
        return found if found is not None and found.task.user_id == user_id else None

    async def trashed_page(self, user_id: str, limit: int, after: Position | None) -> list[Task]:
        roots = [
            entry.task
            for entry in self._store.deleted_tasks.values()
            if entry.task.user_id == user_id and entry.root_id == entry.task.id and entry.deleted_list_id is None
        ]
        roots.sort(key=lambda task: (task.deleted_at, task.id), reverse=True)
        if after is not None:
            roots = [task for task in roots if (task.deleted_at, task.id) < (after.value, after.id)]
        return roots[: limit + 1]

    async def restore(
        self, user_id: str, root_id: int, *, list_id: int, parent_id: int | None, position: str, at: datetime
    ) -> list[Task]:
        group = [e for e in self._store.deleted_tasks.values() if e.root_id == root_id and e.task.user_id == user_id]
        return [
            self._back(
                entry,
                at,
                **(
                    {"list_id": list_id}
                    | ({"parent_id": parent_id, "position": position} if entry.task.id == root_id else {})
                ),
            )
            for entry in group
        ]

    def _back(self, entry: DeletedTask, at: datetime, **place: Any) -> Task:
        del self._store.deleted_tasks[entry.task.id]
        task = replace(entry.task, deleted_at=None, updated_at=at, version=entry.task.version + 1, **place)
        self._store.tasks[task.id] = task
        return task

    def restore_list_tasks(self, user_id: str, list_id: int, at: datetime) -> list[Task]:
        group = [
            e for e in self._store.deleted_tasks.values() if e.deleted_list_id == list_id and e.task.user_id == user_id
        ]
        return [self._back(entry, at) for entry in group]

    async def list(self, user_id: str, query: TaskQuery, now: datetime) -> list[Task]:
        rows = [task for task in self._store.tasks.values() if matches_filter(task, user_id, query.filter, now)]
        if query.after is not None:
            after = query.after
            rows = [task for task in rows if is_after(task, query.sort, after)]
        return in_sort_order(rows, query.sort)[: query.limit + 1]

    async def count(self, user_id: str, task_filter: TaskFilter, now: datetime) -> int:
        return sum(matches_filter(task, user_id, task_filter, now) for task in self._store.tasks.values())

    async def summary(self, user_id: str, now: datetime, day: Day) -> TaskSummary:
        def counted(held: list[Task]) -> Counts:
            open_ = [task for task in held if not task.completed]
            return Counts(
                open=len(open_),
                completed=len(held) - len(open_),
                overdue=sum(task.due_at is not None and task.due_at < now for task in open_),
                due_today=sum(task.due_at is not None and day.start <= task.due_at < day.end for task in open_),
            )

        mine = [task for task in self._store.tasks.values() if task.user_id == user_id]
        lists = sorted(
            (x for x in self._store.lists.values() if x.user_id == user_id), key=lambda x: (x.position, x.id)
        )
        return TaskSummary(
            counted(mine),
            {priority: counted([task for task in mine if task.priority == priority]) for priority in Priority},
            {x.id: counted([task for task in mine if task.list_id == x.id]) for x in lists},
            now,
            day,
        )

    async def tag_counts(self, user_id: str) -> Sequence[TagCount]:
        found: dict[str, list[bool]] = {}
        for task in self._store.tasks.values():
            if task.user_id == user_id:
                for tag in task.tags:
                    found.setdefault(tag, []).append(task.completed)
        return [TagCount(tag, done.count(False), len(done)) for tag, done in sorted(found.items())]

    async def complete_matching(self, user_id: str, task_filter: TaskFilter, at: datetime) -> Sequence[Task]:
        roots = [task.id for task in self._store.tasks.values() if matches_filter(task, user_id, task_filter, at)]
        targets = set(roots)
        for root in roots:
            targets.update(await self.descendants(user_id, root))
        done = []
        for task_id in sorted(targets):
            task = self._store.tasks[task_id]
            if not task.completed:
                task = replace(task, completed=True, completed_at=at, updated_at=at, version=task.version + 1)
                self._store.tasks[task_id] = task
                done.append(task)
        return done

    async def trash_matching(self, user_id: str, task_filter: TaskFilter, at: datetime) -> Sequence[int]:
        roots = [task.id for task in self._store.tasks.values() if matches_filter(task, user_id, task_filter, at)]
        return await self.trash(user_id, roots, at)

    async def last_position(self, user_id: str, list_id: int, parent_id: int | None) -> str | None:
        keys = [
            t.position
            for t in self._store.tasks.values()
            if (t.user_id, t.list_id, t.parent_id) == (user_id, list_id, parent_id)
        ]
        return max(keys, default=None)

    async def descendants(self, user_id: str, task_id: int) -> dict[int, int]:
        found: dict[int, int] = {}
        level, depth = {task_id}, 0
        while level:
            depth += 1
            level = {t.id for t in self._store.tasks.values() if t.parent_id in level and t.user_id == user_id}
            found.update(dict.fromkeys(level - found.keys(), depth))
        return found

    async def subtrees(self, user_id: str, root_ids: Sequence[int]) -> dict[int, int]:
        below = {task_id for root in root_ids for task_id in await self.descendants(user_id, root)}
        return {task_id: parent for task_id in below if (parent := self._store.tasks[task_id].parent_id) is not None}

    async def complete_descendants(
        self, user_id: str, root_ids: Sequence[int], at: datetime, *, keep: Sequence[int] = ()
    ) -> Sequence[Task]:
        below_roots = {below for root in root_ids for below in await self.descendants(user_id, root)}
        done = []
        for below in sorted(below_roots - set(keep)):
            if not (stored := self._store.tasks[below]).completed:
                self._store.tasks[below] = replace(
                    stored, completed=True, completed_at=at, updated_at=at, version=stored.version + 1
                )
                done.append(self._store.tasks[below])
        return done

    async def neighbour(self, sibling: Task, *, after: bool) -> str | None:
        group = [
            t
            for t in self._store.tasks.values()
            if (t.user_id, t.list_id, t.parent_id) == (sibling.user_id, sibling.list_id, sibling.parent_id)
        ]
        mark = (sibling.position, sibling.id)
        if after:
            return min(((t.position, t.id) for t in group if (t.position, t.id) > mark), default=(None,))[0]
        return max(((t.position, t.id) for t in group if (t.position, t.id) < mark), default=(None,))[0]

    async def place(self, task: Task, *, list_id: int, parent_id: int | None, position: str, at: datetime) -> Task:
        stored = self._store.tasks[task.id]
        placed = replace(
            stored, list_id=list_id, parent_id=parent_id, position=position, updated_at=at, version=stored.version + 1
        )
        self._store.tasks[task.id] = placed
        return placed

    async def move_descendants_to(
        self, user_id: str, root_ids: Sequence[int], list_id: int, at: datetime, *, keep: Sequence[int] = ()
    ) -> Sequence[Task]:
        moved = []
        for root in root_ids:
            for below in sorted((await self.descendants(user_id, root)).keys() - set(keep)):
                stored = self._store.tasks[below]
                self._store.tasks[below] = replace(stored, list_id=list_id, updated_at=at, version=stored.version + 1)
                moved.append(self._store.tasks[below])
        return moved

    async def get_many(self, user_id: str, task_ids: Sequence[int]) -> dict[int, Task]:
        self._before_locked_read()
        return {task.id: task for task_id in sorted(task_ids) if (task := await self.get(user_id, task_id))}

    async def save_many(self, changed: Sequence[Task], before: Mapping[int, Task]) -> Sequence[Task]:
        saved = []
        for task in changed:
            stored = await self.get(task.user_id, task.id)
            if stored is not None and stored.version == before[task.id].version:
                self._store.tasks[task.id] = replace(task, created_at=stored.created_at, version=stored.version + 1)
                saved.append(self._store.tasks[task.id])
        return saved

    async def sibling_ids(self, user_id: str, list_id: int, parent_id: int | None) -> Sequence[int]:
        group = [
            t
            for t in self._store.tasks.values()
            if (t.user_id, t.list_id, t.parent_id) == (user_id, list_id, parent_id)
        ]
        return [t.id for t in sorted(group, key=lambda t: (t.position, t.id))]

    async def set_positions(self, user_id: str, positions: dict[int, str], at: datetime) -> Sequence[Task]:
        written = []
        for task_id, position in positions.items():
            if (stored := await self.get(user_id, task_id)) is not None:
                self._store.tasks[task_id] = replace(
                    stored, position=position, updated_at=at, version=stored.version + 1
                )
                written.append(self._store.tasks[task_id])
        return written

    async def depth(self, user_id: str, task_id: int) -> int | None:
        task = await self.get(user_id, task_id)
        depth = 0
        while task is not None:
            depth += 1
            task = self._store.tasks.get(task.parent_id) if task.parent_id is not None else None
        return depth or None


class FakeIdempotencyKeys:
    """As `SqlIdempotencyKeys`: one record per (user, key); a record at or before `since` has expired.
    `before_claim` runs first: where a concurrent request with the same key can commit."""

    def __init__(self, store: FakeStore, *, before_claim: Callable[[], None] = _nothing) -> None:
        self._store = store
        self._before_claim = before_claim

    async def find(self, user_id: str, key: str, since: datetime) -> IdempotentOutcome | None:
        record = self._store.idempotency_keys.get((user_id, key))
        return record.outcome if record is not None and record.created_at > since else None

    async def claim(self, user_id: str, key: str, outcome: IdempotentOutcome, at: datetime, since: datetime) -> bool:
        self._before_claim()
        record = self._store.idempotency_keys.get((user_id, key))
        if record is not None and record.created_at > since:
            return False
        self._store.idempotency_keys[(user_id, key)] = IdempotencyRecord(outcome, created_at=at)
        return True


# --- Lists -------------------------------------------------------------------------------------------


class FakeListRepository:
    """As `SqlListRepository`: owner-filtered, names unique per user whatever their case, one Inbox
    each, counts computed from the tasks on every read, deleting a list deletes its tasks."""

    def __init__(self, store: FakeStore) -> None:
        self._store = store

    def _counted(self, task_list: TaskList) -> TaskList:
        held = [task for task in self._store.tasks.values() if task.list_id == task_list.id]
        return replace(task_list, total_count=len(held), open_count=sum(not task.completed for task in held))

    def _name_taken(self, user_id: str, name: str, but: int | None = None) -> bool:
        return any(
            other.user_id == user_id and other.name.lower() == name.lower() and other.id != but
            for other in self._store.lists.values()
        )

    async def add(
        self, user_id: str, name: str, color: str | None, position: str, at: datetime, *, is_inbox: bool = False
    ) -> TaskList:
        second_inbox = is_inbox and any(
            other.user_id == user_id and other.is_inbox for other in self._store.lists.values()
        )
        if second_inbox or self._name_taken(user_id, name):
            raise Conflict("You already have a list with this name.", code="list_name_taken")
        self._store.last_list_id += 1
        added = TaskList(self._store.last_list_id, user_id, name, color, position, is_inbox, at, at, 1)
        self._store.lists[added.id] = added
        return added

    async def get(self, user_id: str, list_id: int, *, for_update: bool = False) -> TaskList | None:
        found = self._store.lists.get(list_id)
        return self._counted(found) if found is not None and found.user_id == user_id else None

    async def take_turn(self, user_id: str) -> bool:
        return await self.inbox(user_id) is not None

    async def inbox(self, user_id: str) -> TaskList | None:
        found = next((x for x in self._store.lists.values() if x.user_id == user_id and x.is_inbox), None)
        return self._counted(found) if found is not None else None

    async def append_point(self, user_id: str, list_id: int | None) -> tuple[int, str | None] | None:
        found = await (self.inbox(user_id) if list_id is None else self.get(user_id, list_id))
        if found is None:
            return None
        keys = [t.position for t in self._store.tasks.values() if t.list_id == found.id and t.parent_id is None]
        return found.id, max(keys, default=None)

    async def page(self, user_id: str, limit: int, after: ListPosition | None) -> list[TaskList]:
        mine = sorted((x for x in self._store.lists.values() if x.user_id == user_id), key=lambda x: (x.position, x.id))
        if after is not None:
            mine = [x for x in mine if (x.position, x.id) > (after.position, after.id)]
        return [self._counted(x) for x in mine[: limit + 1]]

    async def count(self, user_id: str) -> int:
        return sum(x.user_id == user_id for x in self._store.lists.values())

    async def last_position(self, user_id: str) -> str | None:
        return max((x.position for x in self._store.lists.values() if x.user_id == user_id), default=None)

    async def save(self, task_list: TaskList, *, expected_version: int) -> TaskList | None:
        stored = await self.get(task_list.user_id, task_list.id)
        if stored is None or stored.version != expected_version:
            return None
        if self._name_taken(task_list.user_id, task_list.name, but=task_list.id):
            raise Conflict("You already have a list with this name.", code="list_name_taken")
        saved = replace(
            stored,
            name=task_list.name,
            color=task_list.color,
            position=task_list.position,
            updated_at=task_list.updated_at,
            version=stored.version + 1,
        )
        self._store.lists[saved.id] = replace(saved, open_count=0, total_count=0)
        return saved

    async def order(self, user_id: str) -> list[tuple[int, str]]:
        return [(x.id, x.position) for x in await self.page(user_id, len(self._store.lists), None)]

    async def set_positions(self, user_id: str, positions: dict[int, str], at: datetime) -> list[int]:
        written = []
        for list_id, position in positions.items():
            stored = self._store.lists.get(list_id)
            if stored is not None and stored.user_id == user_id:
                self._store.lists[list_id] = replace(
                    stored, position=position, updated_at=at, version=stored.version + 1
                )
                written.append(list_id)
        return written

    async def many(self, user_id: str, list_ids: Sequence[int]) -> list[TaskList]:
        return [found for list_id in list_ids if (found := await self.get(user_id, list_id)) is not None]

    async def trash(self, user_id: str, list_id: int, at: datetime) -> list[int]:
        tasks = FakeTaskRepository(self._store)
        top = [t.id for t in self._store.tasks.values() if t.list_id == list_id and t.parent_id is None]
        deleted = await tasks.trash(user_id, top, at, deleted_list_id=list_id)
        self._store.deleted_lists[list_id] = self._store.lists.pop(list_id)
        self._store.deleted_list_at[list_id] = at
        return deleted

    async def trashed(self, user_id: str, list_id: int) -> TaskList | None:
        found = self._store.deleted_lists.get(list_id)
        return replace(found, open_count=0, total_count=0) if found is not None and found.user_id == user_id else None

    async def restore(self, user_id: str, list_id: int, at: datetime) -> tuple[TaskList, list[Task]] | None:
        found = await self.trashed(user_id, list_id)
        if found is None:
            return None
        if any(x.user_id == user_id and x.name.lower() == found.name.lower() for x in self._store.lists.values()):
            raise Conflict("You already have a list with this name.", code="list_name_taken")
        del self._store.deleted_lists[list_id], self._store.deleted_list_at[list_id]
        self._store.lists[list_id] = replace(found, updated_at=at, version=found.version + 1)
        restored = FakeTaskRepository(self._store).restore_list_tasks(user_id, list_id, at)
        back = await self.get(user_id, list_id)
        assert back is not None
        return back, restored


# --- Unit of work ------------------------------------------------------------------------------------

Change = Callable[[FakeStore], None]


class OtherTransactions:
    """Writes other clients commit while a use case's transaction is open, each queued for the moment
    it lands: just before that transaction's next task save, task delete, idempotency-key claim or
    user add, or, when the use case reads the task locked (`for_update`), just before that read.

    A landed change is committed: the use case's rollback keeps it. It is applied to the store and to
    the unit of work's rollback point alike, so it should set values rather than count on ids to come.
    """

    def __init__(self) -> None:
        self.before_task_save: list[Change] = []
        self.before_task_delete: list[Change] = []
        self.before_key_claim: list[Change] = []
        self.before_user_add: list[Change] = []


class FakeChangeLog:
    """As `SqlChangeLog`: recorded changes are numbered and stored when the unit commits. The
    payload keeps what the use cases decide (type, subject, the object); the CloudEvent's JSON
    shape is the SQL adapter's and is tested there."""

    def __init__(self, store: FakeStore) -> None:
        self._store = store
        self.pending: dict[str, list[FeedChange]] = {}
        self.closed = False

    def record(self, user_id: str, changes: Sequence[FeedChange]) -> None:
        if self.closed:  # as SqlChangeLog: a `*_and_record` write is the unit's last
            raise RuntimeError("recorded after the unit's last write")
        self.pending.setdefault(user_id, []).extend(changes)

    def close(self) -> None:
        self.closed = True

    def flush(self) -> None:
        pending, self.pending = self.pending, {}
        self.closed = False
        for user_id, changes in pending.items():
            feed = self._store.events.setdefault(user_id, [])
            for change in coalesced(changes):
                position = (feed[-1].position if feed else self._store.pruned_through.get(user_id, 0)) + 1
                subject = change.subject
                data = {"id": subject.id, "deleted_at": subject.deleted_at} if isinstance(subject, Deleted) else subject
                payload = {"type": change.type, "subject": f"{change.aggregate_type}s/{subject.id}", "data": data}
                feed.append(FeedEvent(position, {**payload, "position": position}))

    async def position(self, user_id: str) -> int:
        feed = self._store.events.get(user_id)
        return feed[-1].position if feed else self._store.pruned_through.get(user_id, 0)

    async def horizon(self, user_id: str) -> int:
        return self._store.pruned_through.get(user_id, 0)

    async def read(self, user_id: str, after: int, limit: int) -> list[FeedEvent]:
        return [event for event in self._store.events.get(user_id, []) if event.position > after][:limit]


class FakeReminderRepository:
    """The schedule as a list of armed reminders (fire time, task id, index); enough for the use cases."""

    def __init__(self, store: FakeStore) -> None:
        self._store = store

    @property
    def armed(self) -> dict[int, list[ScheduledReminder]]:
        return self._store.reminders  # read each time: a rollback replaces the store's tables

    async def arm(self, tasks: Sequence[Task], now: datetime) -> None:
        for task in tasks:
            self.armed[task.id] = []
            if task.completed:
                continue
            for index, reminder in enumerate(task.reminders):
                fire_at = reminder.fire_at(task.due_at)
                if fire_at is not None and fire_at > now:
                    self._store.last_reminder_id += 1
                    armed = ScheduledReminder(self._store.last_reminder_id, task.user_id, task.id, index, fire_at)
                    self.armed[task.id].append(armed)

    async def upcoming(
        self, user_id: str, start: datetime, end: datetime, limit: int, after: ReminderPosition | None
    ) -> list[ScheduledReminder]:
        found = sorted(
            (r for rs in self.armed.values() for r in rs if r.user_id == user_id and start <= r.fire_at < end),
            key=lambda r: (r.fire_at, r.id),
        )
        if after is not None:
            found = [r for r in found if (r.fire_at, r.id) > (after.fire_at, after.id)]
        return found[: limit + 1]

    async def snooze(self, user_id: str, task_id: int, reminder_id: int, until: datetime) -> ScheduledReminder | None:
        for index, reminder in enumerate(self.armed.get(task_id, [])):
            if reminder.id == reminder_id and reminder.user_id == user_id:
                self.armed[task_id][index] = replace(reminder, fire_at=until, snoozed=True)
                return self.armed[task_id][index]
        return None

    async def claim_due(self, now: datetime, limit: int) -> list[tuple[ScheduledReminder, Task]]:
        return []


class FakeUnitOfWork:
    """Commit saves the store as it is; exit restores the last save, so whatever was not committed is gone.

    Stricter than PostgreSQL where a use case can be wrong without noticing: a read-only unit
    refuses a commit and fails if anything was written through it, and a read-write unit that wrote
    and ends without an error, a commit or a rollback fails the test (the use case forgot to commit).
    """

    def __init__(
        self, store: FakeStore, clock: FakeClock, others: OtherTransactions | None = None, *, read_only: bool = False
    ) -> None:
        others = others if others is not None else OtherTransactions()
        self._store = store
        self._saved: FakeStore | None = None
        self.read_only = read_only
        self._users = FakeUserRepository(store, before_add=lambda: self._land(others.before_user_add))
        self._refresh_tokens = FakeRefreshTokenRepository(store)
        self._rate_limits = FakeRateLimiter(store, clock)
        self._changes = FakeChangeLog(store)
        self._tasks = FakeTaskRepository(
            store,
            changes=self._changes,
            before_save=lambda: self._land(others.before_task_save),
            before_delete=lambda: self._land(others.before_task_delete),
            # A locked read waits for every writer queued ahead of it to commit; the ones behind it
            # wait for this unit's commit instead, so nothing lands between its read and its write.
            before_locked_read=lambda: self._land_all(others.before_task_save, others.before_task_delete),
        )
        self._idempotency_keys = FakeIdempotencyKeys(store, before_claim=lambda: self._land(others.before_key_claim))
        self._lists = FakeListRepository(store)
        self._reminders = FakeReminderRepository(store)
        self.committed = False
        self.rolled_back = False

    @property
    def users(self) -> FakeUserRepository:
        self._require_inside()
        return self._users

    @property
    def refresh_tokens(self) -> FakeRefreshTokenRepository:
        self._require_inside()
        return self._refresh_tokens

    @property
    def rate_limits(self) -> FakeRateLimiter:
        self._require_inside()
        return self._rate_limits

    @property
    def reminders(self) -> FakeReminderRepository:
        self._require_inside()
        return self._reminders

    @property
    def tasks(self) -> FakeTaskRepository:
        self._require_inside()
        return self._tasks

    @property
    def idempotency_keys(self) -> FakeIdempotencyKeys:
        self._require_inside()
        return self._idempotency_keys

    @property
    def lists(self) -> FakeListRepository:
        self._require_inside()
        return self._lists

    @property
    def webhooks(self) -> FakeWebhookRepository:
        return FakeWebhookRepository(self._store)

    @property
    def conversations(self) -> FakeConversationRepository:
        self._require_inside()
        return FakeConversationRepository(self._store)

    @property
    def sessions(self) -> FakeSessionRepository:
        self._require_inside()
        return FakeSessionRepository(self._store)

    @property
    def changes(self) -> FakeChangeLog:
        self._require_inside()
        return self._changes

    async def __aenter__(self) -> Self:
        self._saved = self._store.snapshot()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        saved, self._saved = self._saved, None
        if saved is None:
            return
        wrote = self._store != saved
        self._store.restore(saved)
        if exc is None and wrote:
            if self.read_only:
                raise AssertionError("a read-only unit of work was written to")
            raise AssertionError("the use case wrote and left its unit of work without commit() or rollback()")

    async def commit(self) -> None:
        if self.read_only:
            raise RuntimeError("a read-only unit of work has nothing to commit")
        self._require_inside()
        self._changes.flush()
        self._saved = self._store.snapshot()
        self.committed = True

    async def rollback(self) -> None:
        self._require_inside()
        assert self._saved is not None
        self._store.restore(self._saved)
        self._changes.pending.clear()
        self._changes.closed = False
        self.rolled_back = True

    def _require_inside(self) -> None:
        if self._saved is None:
            raise RuntimeError("use the unit of work inside `async with`")

    def _land(self, queue: list[Change]) -> None:
        """Another transaction commits the next queued change: into the store and into this unit's
        rollback point, so it outlives this unit's rollback."""
        if queue:
            change = queue.pop(0)
            change(self._store)
            if self._saved is not None:
                change(self._saved)

    def _land_all(self, *queues: list[Change]) -> None:
        for queue in queues:
            while queue:
                self._land(queue)


class FakeUnitOfWorkFactory:
    """Hands out units of work over one store; `units` lists them, so a test can count transactions."""

    def __init__(self, store: FakeStore | None = None, clock: FakeClock | None = None) -> None:
        self.store = store if store is not None else FakeStore()
        self.clock = clock if clock is not None else FakeClock()
        self.others = OtherTransactions()
        self.units: list[FakeUnitOfWork] = []

    def __call__(self, *, read_only: bool = False) -> FakeUnitOfWork:
        uow = FakeUnitOfWork(self.store, self.clock, self.others, read_only=read_only)
        self.units.append(uow)
        return uow


# --- Passwords and tokens ----------------------------------------------------------------------------


class FakePasswordHasher:
    """Fast and deterministic: the hash of `pw` is "hashed:pw". Counts hashes and dummy verifications."""

    def __init__(self) -> None:
        self.dummy_verifications = 0
        self.hashes = 0

    async def hash(self, password: str) -> str:
        self.hashes += 1
        return f"hashed:{password}"

    async def verify(self, password: str, password_hash: str | None) -> bool:
        if password_hash is None:
            self.dummy_verifications += 1
            return False
        return password_hash == f"hashed:{password}"


class FakeAccessTokens:
    def __init__(self, lifetime_s: int = 900) -> None:
        self._lifetime_s = lifetime_s

    @property
    def lifetime_s(self) -> int:
        return self._lifetime_s

    def issue(self, user_id: str, session_id: str) -> str:
        return f"access:{user_id}:{session_id}"


class FakeTokenVerifier:
    """Knows the tokens in `principals`; any other token proves nothing."""

    def __init__(self, principals: Mapping[str, Principal] | None = None) -> None:
        self.principals: dict[str, Principal] = dict(principals or {})

    async def verify(self, token: str) -> Principal:
        if (principal := self.principals.get(token)) is None:
            raise AuthenticationFailed("The bearer token is invalid or expired.", code="invalid_token")
        return principal


# --- Live-stream wake-ups ------------------------------------------------------------------------------


class FakeChangeSignal:
    def __init__(self, hub: FakeChangeSignals, user_id: str) -> None:
        self._hub, self.user_id, self.woken = hub, user_id, asyncio.Event()

    @property
    def closing(self) -> bool:
        return self._hub.closing

    async def wait(self) -> None:
        await self.woken.wait()
        self.woken.clear()

    def cancel(self) -> None:
        self._hub.subscribed.remove(self)


class FakeChangeSignals:
    """Wakes nobody by itself: a test calls `wake(user_id)` where a commit would have notified."""

    def __init__(self) -> None:
        self.subscribed: list[FakeChangeSignal] = []
        self.closing = False

    def subscribe(self, user_id: str) -> FakeChangeSignal:
        signal = FakeChangeSignal(self, user_id)
        self.subscribed.append(signal)
        return signal

    def wake(self, user_id: str) -> None:
        for signal in self.subscribed:
            if signal.user_id == user_id:
                signal.woken.set()

    def close(self) -> None:
        self.closing = True
        for signal in self.subscribed:
            signal.woken.set()


# --- Static proof that the fakes satisfy the ports (mypy checks these; nothing runs) -----------------

if TYPE_CHECKING:
    _clock: Clock = FakeClock()
    _store = FakeStore()
    _users: UserRepository = FakeUserRepository(_store)
    _refresh_tokens: RefreshTokenRepository = FakeRefreshTokenRepository(_store)
    _rate_limiter: RateLimiter = FakeRateLimiter(_store, FakeClock())
    _tasks: TaskRepository = FakeTaskRepository(_store)
    _idempotency_keys: IdempotencyKeys = FakeIdempotencyKeys(_store)
    _lists: ListRepository = FakeListRepository(_store)
    _uow: UnitOfWork = FakeUnitOfWork(_store, FakeClock())
    _uow_factory: UnitOfWorkFactory = FakeUnitOfWorkFactory()
    _hasher: PasswordHasher = FakePasswordHasher()
    _access_tokens: AccessTokens = FakeAccessTokens()
    _verifier: TokenVerifier = FakeTokenVerifier()
    _signals: ChangeSignals = FakeChangeSignals()
