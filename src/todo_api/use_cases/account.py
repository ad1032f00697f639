"""Account self-service: the profile, the sessions (devices), an export of everything, and
deleting the account with all its data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from todo_api.domain.errors import AuthenticationFailed, Conflict, Forbidden, NotFound
from todo_api.domain.lists import TaskList
from todo_api.domain.ports import Clock, PasswordHasher, UnitOfWork, UnitOfWorkFactory
from todo_api.domain.sessions import Session
from todo_api.domain.tasks import MAX_PAGE_SIZE, Position, Sort, Task, TaskQuery
from todo_api.domain.users import Principal, User, normalise_name
from todo_api.domain.webhooks import Webhook
from todo_api.use_cases.auth import ThrottleLimits, refuse_if, throttle_key
from todo_api.use_cases.retries import retry_transient
from todo_api.use_cases.revocations import RevokedSessionCache


def _gone() -> AuthenticationFailed:
    return AuthenticationFailed("The account for this token no longer exists.", code="invalid_token")


class UpdateProfile:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    @retry_transient
    async def execute(self, principal: Principal, name: str | None) -> User:
        async with self._uow() as uow:
            user = await uow.users.set_name(principal.user_id, normalise_name(name), self._clock.now())
            if user is None:
                raise _gone()
            await uow.commit()
        return user


@dataclass(frozen=True, slots=True)
class SessionView:
    session: Session
    current: bool


class ListSessions:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    async def execute(self, principal: Principal) -> list[SessionView]:
        async with self._uow(read_only=True) as uow:
            sessions = await uow.sessions.live(principal.user_id, self._clock.now())
        return [SessionView(session, session.id == principal.session_id) for session in sessions]


class EndSession:
    """Log a device out: its refresh token stops at once, its access tokens within the refresh interval."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, revocations: RevokedSessionCache) -> None:
        self._uow, self._clock, self._revocations = uow, clock, revocations

    @retry_transient
    async def execute(self, principal: Principal, session_id: str) -> None:
        now = self._clock.now()
        async with self._uow() as uow:
            ended = await uow.sessions.end(principal.user_id, now, session_id=session_id)
            if not ended:
                raise NotFound(f"You have no session {session_id[:40]!r}.", code="session_not_found")
            await uow.commit()
        self._revocations.note(ended, now)


@dataclass(frozen=True, slots=True)
class AccountExport:
    user: User
    lists: Sequence[TaskList]
    tasks: Sequence[Task]
    deleted_tasks: Sequence[Task]
    webhooks: Sequence[Webhook]
    sessions: Sequence[Session]


class ExportAccount:
    """Everything the person has, read in one unit, page by page through the repositories."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    async def execute(self, principal: Principal) -> AccountExport:
        user_id = principal.user_id
        async with self._uow(read_only=True) as uow:
            user = await uow.users.get(user_id)
            if user is None:
                raise _gone()
            lists = await uow.lists.many(user_id, [list_id for list_id, _ in await uow.lists.order(user_id)])
            return AccountExport(
                user=user,
                lists=lists,
                tasks=await _every_task(uow, user_id, self._clock),
                deleted_tasks=await _every_deleted_task(uow, user_id),
                webhooks=await uow.webhooks.all(user_id),
                sessions=await uow.sessions.live(user_id, self._clock.now()),
            )


async def _every_task(uow: UnitOfWork, user_id: str, clock: Clock) -> list[Task]:
    found: list[Task] = []
    after: Position | None = None
    while True:
        query = TaskQuery(sort=Sort.parse("created_at"), limit=MAX_PAGE_SIZE, after=after)
        page = await uow.tasks.list(user_id, query, clock.now())
        found += page[:MAX_PAGE_SIZE]
        if len(page) <= MAX_PAGE_SIZE:
            return found
        after = Position(page[MAX_PAGE_SIZE - 1].created_at, page[MAX_PAGE_SIZE - 1].id)


async def _every_deleted_task(uow: UnitOfWork, user_id: str) -> list[Task]:
    found: list[Task] = []
    after: Position | None = None
    while True:
        page = await uow.tasks.trashed_page(user_id, MAX_PAGE_SIZE, after)
        found += page[:MAX_PAGE_SIZE]
        if len(page) <= MAX_PAGE_SIZE:
            return found
        last = page[MAX_PAGE_SIZE - 1]
        after = Position(last.deleted_at, last.id)


class DeleteAccount:
    """After the password is entered again: the person and every row of theirs, in one transaction;
    every session ends, on every replica."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        hasher: PasswordHasher,
        clock: Clock,
        limits: ThrottleLimits,
        revocations: RevokedSessionCache,
    ) -> None:
        self._uow, self._hasher, self._clock, self._limits = uow, hasher, clock, limits
        self._revocations = revocations

    async def execute(self, principal: Principal, password: str) -> None:
        user_id = principal.user_id
        key = throttle_key("password:account", user_id)
        wait, user = await self._count_attempt(key, user_id)
        refuse_if(wait)
        if user is None:
            raise _gone()
        if user.password_hash is None:
            raise Conflict(
                "This account signs in through an external provider; delete it there.", code="password_not_set"
            )
        if not await self._hasher.verify(password, user.password_hash):
            raise Forbidden("The password is incorrect.", code="current_password_incorrect")
        await self._delete(user, key)

    @retry_transient
    async def _count_attempt(self, key: str, user_id: str) -> tuple[int | None, User | None]:
        async with self._uow() as uow:
            wait = await uow.rate_limits.acquire(
                key, limit=self._limits.login_per_account, window_s=self._limits.login_window_s
            )
            user = await uow.users.get(user_id)
            await uow.commit()
        return wait, user

    @retry_transient
    async def _delete(self, user: User, key: str) -> None:
        now = self._clock.now()
        async with self._uow() as uow:
            ended = await uow.sessions.end(user.id, now)
            if not await uow.users.delete(user.id):
                raise _gone()
            await uow.rate_limits.reset(key)
            if user.email is not None:
                await uow.rate_limits.reset(throttle_key("login:account", user.email))
            await uow.commit()
        self._revocations.note(ended, now)
