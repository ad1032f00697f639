"""In-memory fakes of the ports, for unit tests of the use cases: state you can look at, no mocks.

One `FakeStore` plays the database. Every `FakeUnitOfWork` handed out by a `FakeUnitOfWorkFactory`
works on that store; on exit it restores the store to its last commit, so rollback is the default,
as with the SQL unit of work. Units of work are used one at a time, as the use cases do.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Self

from todo_api.domain.errors import AuthenticationFailed, Conflict
from todo_api.domain.ports import (
    AccessTokens,
    Clock,
    IdempotencyKeys,
    PasswordHasher,
    RateLimiter,
    RefreshTokenRepository,
    TaskRepository,
    TokenVerifier,
    UnitOfWork,
    UnitOfWorkFactory,
    UserRepository,
)
from todo_api.domain.sessions import RefreshToken
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


@dataclass
class FakeStore:
    """Every table as a dict. Add a field here for a new table; snapshot and restore cover it."""

    users: dict[str, User] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    rate_limits: dict[str, FixedWindow] = field(default_factory=dict)

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
    def __init__(self, store: FakeStore) -> None:
        self._store = store

    async def get(self, user_id: str) -> User | None:
        return self._store.users.get(user_id)

    async def get_by_email(self, email: str) -> User | None:
        return self._store.user_by_email(email)

    async def add(self, user: User) -> None:
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

    async def retry_after(self, key: str, *, limit: int, window_s: int) -> int | None:
        window = self._current(key, window_s)
        if window is None or window.hits < limit:
            return None
        remaining = window.started_at + timedelta(seconds=window_s) - self._clock.now()
        return max(1, math.ceil(remaining.total_seconds()))

    async def hit(self, key: str, *, window_s: int) -> None:
        window = self._current(key, window_s)
        if window is None:
            self._store.rate_limits[key] = FixedWindow(hits=1, started_at=self._clock.now())
        else:
            self._store.rate_limits[key] = replace(window, hits=window.hits + 1)

    async def reset(self, key: str) -> None:
        self._store.rate_limits.pop(key, None)

    def _current(self, key: str, window_s: int) -> FixedWindow | None:
        window = self._store.rate_limits.get(key)
        if window is None or window.started_at <= self._clock.now() - timedelta(seconds=window_s):
            return None
        return window


# --- Unit of work ------------------------------------------------------------------------------------


class FakeUnitOfWork:
    """Commit saves the store as it is; exit restores the last save, so whatever was not committed is gone."""

    def __init__(self, store: FakeStore, clock: FakeClock) -> None:
        self._store = store
        self._saved: FakeStore | None = None
        self._users = FakeUserRepository(store)
        self._refresh_tokens = FakeRefreshTokenRepository(store)
        self._rate_limits = FakeRateLimiter(store, clock)
        self.committed = False

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
    def tasks(self) -> TaskRepository:
        raise NotImplementedError("no task fakes yet: add FakeTaskRepository to tests/unit/fakes.py")

    @property
    def idempotency_keys(self) -> IdempotencyKeys:
        raise NotImplementedError("no task fakes yet: add FakeIdempotencyKeys to tests/unit/fakes.py")

    async def __aenter__(self) -> Self:
        self._saved = self._store.snapshot()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._saved is not None:
            self._store.restore(self._saved)
            self._saved = None

    async def commit(self) -> None:
        self._saved = self._store.snapshot()
        self.committed = True

    def _require_inside(self) -> None:
        if self._saved is None:
            raise RuntimeError("use the unit of work inside `async with`")


class FakeUnitOfWorkFactory:
    """Hands out units of work over one store; `units` lists them, so a test can count transactions."""

    def __init__(self, store: FakeStore | None = None, clock: FakeClock | None = None) -> None:
        self.store = store if store is not None else FakeStore()
        self.clock = clock if clock is not None else FakeClock()
        self.units: list[FakeUnitOfWork] = []

    def __call__(self) -> FakeUnitOfWork:
        uow = FakeUnitOfWork(self.store, self.clock)
        self.units.append(uow)
        return uow


# --- Passwords and tokens ----------------------------------------------------------------------------


class FakePasswordHasher:
    """Fast and deterministic: the hash of `pw` is "hashed:pw". Counts dummy verifications (no hash)."""

    def __init__(self) -> None:
        self.dummy_verifications = 0

    async def hash(self, password: str) -> str:
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


# --- Static proof that the fakes satisfy the ports (mypy checks these; nothing runs) -----------------

if TYPE_CHECKING:
    _clock: Clock = FakeClock()
    _store = FakeStore()
    _users: UserRepository = FakeUserRepository(_store)
    _refresh_tokens: RefreshTokenRepository = FakeRefreshTokenRepository(_store)
    _rate_limiter: RateLimiter = FakeRateLimiter(_store, FakeClock())
    _uow: UnitOfWork = FakeUnitOfWork(_store, FakeClock())
    _uow_factory: UnitOfWorkFactory = FakeUnitOfWorkFactory()
    _hasher: PasswordHasher = FakePasswordHasher()
    _access_tokens: AccessTokens = FakeAccessTokens()
    _verifier: TokenVerifier = FakeTokenVerifier()
