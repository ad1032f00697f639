"""Accounts and sessions: sign up, log in, refresh with rotation and reuse detection, log out,
change the password, and turn a bearer token into a principal."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from todo_api.domain.errors import AuthenticationFailed, Conflict, Forbidden, InvalidInput, NotFound, RateLimited
from todo_api.domain.ports import (
    AccessTokens,
    Clock,
    PasswordHasher,
    TokenVerifier,
    UnitOfWork,
    UnitOfWorkFactory,
)
from todo_api.domain.sessions import (
    IssuedSession,
    RefreshToken,
    Session,
    device_of,
    hash_refresh_token,
    new_family_id,
    new_refresh_token,
)
from todo_api.domain.users import PasswordPolicy, Principal, User, new_user_id, normalise_email, normalise_name
from todo_api.use_cases.lists import inbox_id
from todo_api.use_cases.retries import retry_transient
from todo_api.use_cases.revocations import RevokedSessionCache

_BAD_CREDENTIALS = "The e-mail address or password is incorrect."
_BAD_REFRESH = "The refresh token is invalid, expired or revoked; log in again."


@dataclass(frozen=True, slots=True)
class ThrottleLimits:
    """How many failures (logins) or attempts (signups) a key may make in its window."""

    login_per_account: int = 5
    login_per_address: int = 20
    login_window_s: int = 900
    signup_per_address: int = 10
    signup_window_s: int = 3600


@dataclass(frozen=True, slots=True)
class AuthResult:
    user: User
    session: IssuedSession


@dataclass(frozen=True, slots=True)
class SessionIssuer:
    """Mints an access token and the first or next refresh token of a family."""

    tokens: AccessTokens
    clock: Clock
    refresh_lifetime: timedelta = timedelta(days=30)

    async def issue(
        self, uow: UnitOfWork, user_id: str, family_id: str, *, new: bool = False, user_agent: str | None = None
    ) -> IssuedSession:
        """The first tokens of a new session (`new`: a login, with its device), or the next ones."""
        now = self.clock.now()
        plain, token_hash = new_refresh_token()
        expires_at = now + self.refresh_lifetime
        await uow.refresh_tokens.add(
            RefreshToken(
                token_hash=token_hash, family_id=family_id, user_id=user_id, created_at=now, expires_at=expires_at
            )
        )
        if new:
            await uow.sessions.start(Session(family_id, user_id, device_of(user_agent), now, now, expires_at))
        else:
            await uow.sessions.touch(family_id, now, expires_at)
        return IssuedSession(
            user_id=user_id,
            access_token=self.tokens.issue(user_id, family_id),
            expires_in=self.tokens.lifetime_s,
            refresh_token=plain,
            refresh_expires_at=expires_at,
        )


@dataclass(frozen=True, slots=True)
class SignUpInput:
    email: str
    password: str
    name: str | None = None
    client_address: str = ""
    user_agent: str | None = None


class SignUp:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        hasher: PasswordHasher,
        policy: PasswordPolicy,
        sessions: SessionIssuer,
        limits: ThrottleLimits,
    ) -> None:
        self._uow, self._hasher, self._policy, self._sessions, self._limits = uow, hasher, policy, sessions, limits

    async def execute(self, data: SignUpInput) -> AuthResult:
        email = normalise_email(data.email)
        name = normalise_name(data.name)
        self._policy.check(data.password)
        refuse_if(await self._count_attempt(throttle_key("signup:address", data.client_address)))
        password_hash = await self._hasher.hash(data.password)
        return await self._create_account(email, name, password_hash, data.user_agent)

    @retry_transient
    async def _count_attempt(self, key: str) -> int | None:
        """Counted in its own transaction before the password is hashed (see `RateLimiter`)."""
        async with self._uow() as uow:
            wait = await uow.rate_limits.acquire(
                key, limit=self._limits.signup_per_address, window_s=self._limits.signup_window_s
            )
            await uow.commit()
        return wait

    @retry_transient
    async def _create_account(
        self, email: str, name: str | None, password_hash: str, user_agent: str | None
    ) -> AuthResult:
        async with self._uow() as uow:
            now = self._sessions.clock.now()
            user = User(new_user_id(), email, name, password_hash, created_at=now, updated_at=now)
            await uow.users.add(user)
            await inbox_id(uow, user.id, now)
            session = await self._sessions.issue(uow, user.id, new_family_id(), new=True, user_agent=user_agent)
            await uow.commit()
        return AuthResult(user, session)


@dataclass(frozen=True, slots=True)
class LogInInput:
    email: str
    password: str
    client_address: str = ""
    user_agent: str | None = None


class LogIn:
    """Unknown e-mails cost the same bcrypt time and get the same 401 as wrong passwords."""

    def __init__(
        self, uow: UnitOfWorkFactory, hasher: PasswordHasher, sessions: SessionIssuer, limits: ThrottleLimits
    ) -> None:
        self._uow, self._hasher, self._sessions, self._limits = uow, hasher, sessions, limits

    async def execute(self, data: LogInInput) -> AuthResult:
        try:
            email: str | None = normalise_email(data.email)
        except InvalidInput:  # a malformed e-mail is just another failed login (nothing to look up)
            email = None
        account_key = throttle_key("login:account", email or data.email.strip().lower())
        address_key = throttle_key("login:address", data.client_address)
        wait, user = await self._count_attempts(account_key, address_key, email)
        refuse_if(wait)
        if not await self._hasher.verify(data.password, user.password_hash if user else None) or user is None:
            raise AuthenticationFailed(_BAD_CREDENTIALS, code="invalid_credentials")
        return await self._start_session(user, account_key, address_key, data.user_agent)

    @retry_transient
    async def _count_attempts(
        self, account_key: str, address_key: str, email: str | None
    ) -> tuple[int | None, User | None]:
        """Count the attempt against the account and the address before the password is checked,
        so a burst cannot slip under the limit; the longer wait wins."""
        limits = self._limits
        async with self._uow() as uow:
            waits = [
                await uow.rate_limits.acquire(
                    account_key, limit=limits.login_per_account, window_s=limits.login_window_s
                ),
                await uow.rate_limits.acquire(
                    address_key, limit=limits.login_per_address, window_s=limits.login_window_s
                ),
            ]
            user = await uow.users.get_by_email(email) if email else None
            await uow.commit()
        return max((wait for wait in waits if wait is not None), default=None), user

    @retry_transient
    async def _start_session(
        self, user: User, account_key: str, address_key: str, user_agent: str | None
    ) -> AuthResult:
        async with self._uow() as uow:
            await uow.rate_limits.reset(account_key)
            await uow.rate_limits.release(address_key)
            session = await self._sessions.issue(uow, user.id, new_family_id(), new=True, user_agent=user_agent)
            await uow.commit()
        return AuthResult(user, session)


class RefreshSession:
    """Rotate: the presented token is spent and a new one issued in the same family. Presenting a
    spent token again means it leaked, so the whole family is revoked (reuse detection)."""

    def __init__(self, uow: UnitOfWorkFactory, sessions: SessionIssuer, revocations: RevokedSessionCache) -> None:
        self._uow, self._sessions, self._revocations = uow, sessions, revocations

    @retry_transient
    async def execute(self, refresh_token: str) -> AuthResult:
        now = self._sessions.clock.now()
        async with self._uow() as uow:
            token = await uow.refresh_tokens.get_for_update(hash_refresh_token(refresh_token))
            if token is None or token.revoked_at is not None or token.expires_at <= now:
                raise AuthenticationFailed(_BAD_REFRESH, code="invalid_refresh_token")
            if token.rotated_at is not None:
                ended = await uow.sessions.end(token.user_id, now, session_id=token.family_id)
                await uow.commit()
                self._revocations.note(ended, now)
                raise AuthenticationFailed(
                    "This refresh token was already used; the session is revoked. Log in again.",
                    code="refresh_token_reused",
                )
            user = await uow.users.get(token.user_id)
            if user is None:
                raise AuthenticationFailed(_BAD_REFRESH, code="invalid_refresh_token")
            await uow.refresh_tokens.mark_rotated(token.token_hash, now)
            session = await self._sessions.issue(uow, user.id, token.family_id)
            await uow.commit()
        return AuthResult(user, session)


class LogOut:
    """End the session a refresh token belongs to: its refresh tokens stop at once, its access
    tokens on every replica within SESSION_REVOCATION_REFRESH_S. Idempotent: an unknown token is no error."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, revocations: RevokedSessionCache) -> None:
        self._uow, self._clock, self._revocations = uow, clock, revocations

    @retry_transient
    async def execute(self, *, refresh_token: str | None) -> None:
        if not refresh_token:
            return
        now = self._clock.now()
        async with self._uow() as uow:
            token = await uow.refresh_tokens.get_for_update(hash_refresh_token(refresh_token))
            if token is None:
                return
            ended = await uow.sessions.end(token.user_id, now, session_id=token.family_id)
            await uow.commit()
        self._revocations.note(ended, now)


@dataclass(frozen=True, slots=True)
class ChangePasswordInput:
    principal: Principal
    current_password: str
    new_password: str


class ChangePassword:
    """A new password revokes every other session; the one that changed it stays logged in."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        hasher: PasswordHasher,
        policy: PasswordPolicy,
        clock: Clock,
        limits: ThrottleLimits,
        revocations: RevokedSessionCache,
    ) -> None:
        self._uow, self._hasher, self._policy, self._clock, self._limits = uow, hasher, policy, clock, limits
        self._revocations = revocations

    async def execute(self, data: ChangePasswordInput) -> None:
        user_id = data.principal.user_id
        key = throttle_key("password:account", user_id)
        wait, user = await self._count_attempt(key, user_id)
        refuse_if(wait)
        if user is None:
            raise NotFound("The account no longer exists.", code="user_not_found")
        if user.password_hash is None:
            raise Conflict("This account signs in through an external provider.", code="password_not_set")
        if not await self._hasher.verify(data.current_password, user.password_hash):
            raise Forbidden("The current password is incorrect.", code="current_password_incorrect")
        self._policy.check(data.new_password, field="new_password")
        await self._replace_hash(data, await self._hasher.hash(data.new_password), key)

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
    async def _replace_hash(self, data: ChangePasswordInput, new_hash: str, throttle_key: str) -> None:
        user_id = data.principal.user_id
        async with self._uow() as uow:
            now = self._clock.now()
            await uow.users.set_password_hash(user_id, new_hash, now)
            ended = await uow.sessions.end(user_id, now, keep=data.principal.session_id)
            await uow.rate_limits.reset(throttle_key)
            await uow.commit()
        self._revocations.note(ended, now)


class GetCurrentUser:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def execute(self, principal: Principal) -> User:
        async with self._uow(read_only=True) as uow:
            user = await uow.users.get(principal.user_id)
        if user is None:
            raise AuthenticationFailed("The account for this token no longer exists.", code="invalid_token")
        return user


class Authenticate:
    """Bearer token -> principal, refused when its session has ended. A subject from an external
    issuer gets a user row on first sight."""

    def __init__(
        self,
        verifier: TokenVerifier,
        uow: UnitOfWorkFactory,
        clock: Clock,
        revocations: RevokedSessionCache,
        *,
        remember: int = 10_000,
    ) -> None:
        self._verifier, self._uow, self._clock, self._revocations = verifier, uow, clock, revocations
        self._known_external: dict[str, None] = {}
        self._remember = max(1, remember)

    async def execute(self, token: str | None) -> Principal:
        if not token:
            raise AuthenticationFailed("This route needs a bearer token.", code="missing_token")
        principal = await self._verifier.verify(token)
        # In memory once loaded (revocations.py): the hot path costs no query for it.
        if principal.session_id is not None and await self._revocations.is_revoked(principal.session_id):
            raise AuthenticationFailed("This session has ended; log in again.", code="session_revoked")
        if principal.external and principal.user_id not in self._known_external:
            now = self._clock.now()
            async with self._uow() as uow:
                await uow.users.add_external(
                    User(principal.user_id, principal.email, principal.name, None, created_at=now, updated_at=now)
                )
                await inbox_id(uow, principal.user_id, now)
                await uow.commit()
            if len(self._known_external) >= self._remember:
                self._known_external.pop(next(iter(self._known_external)))
            self._known_external[principal.user_id] = None
        return principal


def throttle_key(kind: str, subject: str) -> str:
    """Counters are keyed by a digest: no e-mail address stored in them, any input a valid key."""
    return f"{kind}:{hashlib.sha256(subject.encode(errors='surrogatepass')).hexdigest()[:32]}"


def refuse_if(wait_s: int | None) -> None:
    if wait_s is not None:
        raise RateLimited("Too many attempts; try again later.", retry_after_s=wait_s)
