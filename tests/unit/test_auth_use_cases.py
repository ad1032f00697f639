"""Accounts and sessions, use case by use case, against the in-memory fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.unit.fakes import (
    FakeAccessTokens,
    FakeClock,
    FakePasswordHasher,
    FakeRevokedSessions,
    FakeStore,
    FakeTokenVerifier,
    FakeUnitOfWorkFactory,
    FixedWindow,
)
from todo_api.domain.errors import (
    AuthenticationFailed,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    TransientConflict,
)
from todo_api.domain.sessions import IssuedSession, RefreshToken, hash_refresh_token
from todo_api.domain.users import PasswordPolicy, Principal, User
from todo_api.use_cases.auth import (
    Authenticate,
    ChangePassword,
    ChangePasswordInput,
    GetCurrentUser,
    LogIn,
    LogInInput,
    LogOut,
    RefreshSession,
    SessionIssuer,
    SignUp,
    SignUpInput,
    ThrottleLimits,
)
from todo_api.use_cases.revocations import RevokedSessionCache

EMAIL = "ada@example.com"
PASSWORD = "analytical engine"
NEW_PASSWORD = "difference engine"
ADDRESS = "203.0.113.7"
REFRESH_LIFETIME = timedelta(days=30)
LIMITS = ThrottleLimits(
    login_per_account=3, login_per_address=5, login_window_s=900, signup_per_address=3, signup_window_s=3600
)


class SigningKeyUnavailable(Exception):
    pass


class BrokenAccessTokens:
    """Access tokens that cannot be signed: the failure comes after the refresh token is written."""

    @property
    def lifetime_s(self) -> int:
        return 900

    def issue(self, user_id: str, session_id: str) -> str:
        raise SigningKeyUnavailable


# --- Fixtures ----------------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def uow(clock: FakeClock) -> FakeUnitOfWorkFactory:
    return FakeUnitOfWorkFactory(clock=clock)


@pytest.fixture
def store(uow: FakeUnitOfWorkFactory) -> FakeStore:
    return uow.store


@pytest.fixture
def hasher() -> FakePasswordHasher:
    return FakePasswordHasher()


@pytest.fixture
def policy() -> PasswordPolicy:
    return PasswordPolicy(frozenset({"password", "12345678"}))


@pytest.fixture
def sessions(clock: FakeClock) -> SessionIssuer:
    return SessionIssuer(FakeAccessTokens(lifetime_s=900), clock, REFRESH_LIFETIME)


@pytest.fixture
def sign_up(
    uow: FakeUnitOfWorkFactory, hasher: FakePasswordHasher, policy: PasswordPolicy, sessions: SessionIssuer
) -> SignUp:
    return SignUp(uow, hasher, policy, sessions, LIMITS)


@pytest.fixture
def log_in(uow: FakeUnitOfWorkFactory, hasher: FakePasswordHasher, sessions: SessionIssuer) -> LogIn:
    return LogIn(uow, hasher, sessions, LIMITS)


@pytest.fixture
def revocations(uow: FakeUnitOfWorkFactory, clock: FakeClock) -> RevokedSessionCache:
    return RevokedSessionCache(FakeRevokedSessions(uow.store), clock, horizon=timedelta(seconds=970))


@pytest.fixture
def refresh(uow: FakeUnitOfWorkFactory, sessions: SessionIssuer, revocations: RevokedSessionCache) -> RefreshSession:
    return RefreshSession(uow, sessions, revocations)


@pytest.fixture
def log_out(uow: FakeUnitOfWorkFactory, clock: FakeClock, revocations: RevokedSessionCache) -> LogOut:
    return LogOut(uow, clock, revocations)


@pytest.fixture
def change_password(
    uow: FakeUnitOfWorkFactory,
    hasher: FakePasswordHasher,
    policy: PasswordPolicy,
    clock: FakeClock,
    revocations: RevokedSessionCache,
) -> ChangePassword:
    return ChangePassword(uow, hasher, policy, clock, LIMITS, revocations)


@pytest.fixture
def verifier() -> FakeTokenVerifier:
    return FakeTokenVerifier()


@pytest.fixture
def authenticate(
    verifier: FakeTokenVerifier, uow: FakeUnitOfWorkFactory, clock: FakeClock, revocations: RevokedSessionCache
) -> Authenticate:
    return Authenticate(verifier, uow, clock, revocations)


@pytest.fixture
def ada(store: FakeStore, clock: FakeClock) -> User:
    """An account with a password, stored directly."""
    user = User("a" * 32, EMAIL, "Ada", f"hashed:{PASSWORD}", created_at=clock.now(), updated_at=clock.now())
    store.users[user.id] = user
    return user


@pytest.fixture
def external_user(store: FakeStore, clock: FakeClock) -> User:
    """An account created from an external issuer's token: it has no password."""
    user = User("e" * 32, "grace@example.com", "Grace", None, created_at=clock.now(), updated_at=clock.now())
    store.users[user.id] = user
    return user


# --- Helpers -----------------------------------------------------------------------------------------


def stored(store: FakeStore, session: IssuedSession) -> RefreshToken:
    return store.refresh_tokens[hash_refresh_token(session.refresh_token)]


def family_of(store: FakeStore, session: IssuedSession) -> str:
    return stored(store, session).family_id


async def new_session(log_in: LogIn, email: str = EMAIL, password: str = PASSWORD) -> IssuedSession:
    return (await log_in.execute(LogInInput(email, password, client_address=ADDRESS))).session


async def fail_logins(log_in: LogIn, times: int, *, email: str = EMAIL, address: str = ADDRESS) -> None:
    for _ in range(times):
        with pytest.raises(AuthenticationFailed):
            await log_in.execute(LogInInput(email, "wrong password", client_address=address))


async def refused_refresh(refresh: RefreshSession, token: str) -> str:
    with pytest.raises(AuthenticationFailed) as refused:
        await refresh.execute(token)
    return refused.value.code


# --- The fake unit of work: rollback is the default, and a forgotten commit fails -------------------


async def test_changes_a_unit_of_work_does_not_commit_are_rolled_back_when_an_error_leaves_it(
    uow: FakeUnitOfWorkFactory, ada: User
) -> None:
    async def write_then_refuse() -> None:
        async with uow() as unit:
            await unit.users.set_password_hash(ada.id, "hashed:other", ada.updated_at)
            await unit.rate_limits.hit("some-key", window_s=60)
            raise NotFound("a domain decision after the writes")

    with pytest.raises(NotFound):
        await write_then_refuse()
    assert uow.store.users[ada.id] == ada
    assert uow.store.rate_limits == {}
    assert not uow.units[-1].committed


async def test_a_unit_that_wrote_and_ends_without_commit_or_rollback_fails_the_test(
    uow: FakeUnitOfWorkFactory, ada: User
) -> None:
    with pytest.raises(AssertionError, match="without commit"):
        async with uow() as unit:
            await unit.users.set_password_hash(ada.id, "hashed:other", ada.updated_at)
    assert uow.store.users[ada.id] == ada


async def test_an_explicit_rollback_undoes_the_writes_and_ends_the_unit_cleanly(
    uow: FakeUnitOfWorkFactory, ada: User
) -> None:
    async with uow() as unit:
        await unit.users.set_password_hash(ada.id, "hashed:other", ada.updated_at)
        await unit.rollback()
    assert uow.store.users[ada.id] == ada
    assert unit.rolled_back


async def test_a_read_only_unit_refuses_a_commit(uow: FakeUnitOfWorkFactory) -> None:
    with pytest.raises(RuntimeError, match="read-only"):
        async with uow(read_only=True) as unit:
            await unit.commit()


async def test_a_read_only_unit_that_is_written_to_fails_the_test(uow: FakeUnitOfWorkFactory, ada: User) -> None:
    with pytest.raises(AssertionError, match="read-only"):
        async with uow(read_only=True) as unit:
            await unit.users.set_password_hash(ada.id, "hashed:other", ada.updated_at)
    assert uow.store.users[ada.id] == ada


async def test_committed_changes_stay_and_later_uncommitted_ones_do_not(
    uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    async with uow() as unit:
        await unit.rate_limits.hit("kept", window_s=60)
        await unit.commit()
        await unit.rate_limits.hit("dropped", window_s=60)
        await unit.rollback()
    assert uow.store.rate_limits == {"kept": FixedWindow(hits=1, started_at=clock.now())}
    assert unit.committed


# --- SignUp ------------------------------------------------------------------------------------------


def aborted(store: FakeStore) -> None:
    """The database aborting the transaction as a serialisation failure or deadlock."""
    raise TransientConflict("Too many concurrent writes; try again.", retry_after_s=1)


async def test_a_sign_up_aborted_once_is_retried_without_counting_or_hashing_again(
    sign_up: SignUp, uow: FakeUnitOfWorkFactory, store: FakeStore, hasher: FakePasswordHasher
) -> None:
    uow.others.before_user_add.append(aborted)
    result = await sign_up.execute(SignUpInput(EMAIL, PASSWORD))
    assert list(store.users.values()) == [result.user]
    assert [window.hits for window in store.rate_limits.values()] == [1]
    assert hasher.hashes == 1


async def test_a_sign_up_aborted_on_every_attempt_gives_up_and_stores_no_account(
    sign_up: SignUp, uow: FakeUnitOfWorkFactory, store: FakeStore, hasher: FakePasswordHasher
) -> None:
    uow.others.before_user_add.extend([aborted] * 3)
    with pytest.raises(TransientConflict):
        await sign_up.execute(SignUpInput(EMAIL, PASSWORD))
    assert store.users == {}
    assert store.refresh_tokens == {}
    assert [window.hits for window in store.rate_limits.values()] == [1]
    assert hasher.hashes == 1


async def test_sign_up_stores_the_user_with_the_normalised_email_and_name(
    sign_up: SignUp, store: FakeStore, clock: FakeClock
) -> None:
    result = await sign_up.execute(SignUpInput("  Ada@Example.COM ", PASSWORD, name="  Ada   Lovelace "))
    assert store.users == {result.user.id: result.user}
    assert result.user.email == EMAIL
    assert result.user.name == "Ada Lovelace"
    assert result.user.created_at == result.user.updated_at == clock.now()


async def test_sign_up_stores_a_hash_of_the_password_not_the_password(sign_up: SignUp, store: FakeStore) -> None:
    result = await sign_up.execute(SignUpInput(EMAIL, PASSWORD))
    assert store.users[result.user.id].password_hash == f"hashed:{PASSWORD}"


async def test_sign_up_issues_a_session_for_the_new_user(sign_up: SignUp, clock: FakeClock) -> None:
    result = await sign_up.execute(SignUpInput(EMAIL, PASSWORD))
    assert result.session.user_id == result.user.id
    assert result.session.access_token.startswith(f"access:{result.user.id}:")
    assert result.session.expires_in == 900
    assert result.session.refresh_expires_at == clock.now() + REFRESH_LIFETIME


async def test_sign_up_stores_the_refresh_token_only_as_its_hash(sign_up: SignUp, store: FakeStore) -> None:
    result = await sign_up.execute(SignUpInput(EMAIL, PASSWORD))
    token = result.session.refresh_token
    assert list(store.refresh_tokens) == [hash_refresh_token(token)]
    assert token not in str(store)
    assert stored(store, result.session).user_id == result.user.id


async def test_signing_up_with_an_email_in_use_is_a_conflict_email_taken(sign_up: SignUp) -> None:
    await sign_up.execute(SignUpInput(EMAIL, PASSWORD))
    with pytest.raises(Conflict) as refused:
        await sign_up.execute(SignUpInput(EMAIL.upper(), NEW_PASSWORD))
    assert refused.value.code == "email_taken"


async def test_a_refused_duplicate_signup_leaves_the_first_account_and_its_session_alone(
    sign_up: SignUp, store: FakeStore
) -> None:
    first = await sign_up.execute(SignUpInput(EMAIL, PASSWORD))
    with pytest.raises(Conflict):
        await sign_up.execute(SignUpInput(EMAIL, NEW_PASSWORD))
    assert store.users == {first.user.id: first.user}
    assert list(store.refresh_tokens) == [hash_refresh_token(first.session.refresh_token)]


@pytest.mark.parametrize(
    ("password", "code"),
    [("short", "password_too_short"), ("password", "weak_password"), ("x" * 129, "password_too_long")],
)
async def test_a_weak_password_is_refused_before_anything_is_stored(
    sign_up: SignUp, store: FakeStore, uow: FakeUnitOfWorkFactory, password: str, code: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await sign_up.execute(SignUpInput(EMAIL, password, client_address=ADDRESS))
    assert (refused.value.code, refused.value.field) == (code, "password")
    assert store == FakeStore()
    assert uow.units == []


async def test_an_invalid_email_is_refused_at_signup(sign_up: SignUp, store: FakeStore) -> None:
    with pytest.raises(InvalidInput) as refused:
        await sign_up.execute(SignUpInput("ada.example.com", PASSWORD))
    assert refused.value.code == "invalid_email"
    assert store == FakeStore()


async def test_signups_from_one_address_beyond_the_limit_are_rate_limited(sign_up: SignUp, store: FakeStore) -> None:
    for n in range(LIMITS.signup_per_address):
        await sign_up.execute(SignUpInput(f"user{n}@example.com", PASSWORD, client_address=ADDRESS))
    with pytest.raises(RateLimited) as refused:
        await sign_up.execute(SignUpInput("one.more@example.com", PASSWORD, client_address=ADDRESS))
    assert refused.value.retry_after_s == LIMITS.signup_window_s
    assert store.user_by_email("one.more@example.com") is None


async def test_retry_after_counts_down_to_the_end_of_the_signup_window(sign_up: SignUp, clock: FakeClock) -> None:
    for n in range(LIMITS.signup_per_address):
        await sign_up.execute(SignUpInput(f"user{n}@example.com", PASSWORD, client_address=ADDRESS))
    clock.advance(600)
    with pytest.raises(RateLimited) as refused:
        await sign_up.execute(SignUpInput("one.more@example.com", PASSWORD, client_address=ADDRESS))
    assert refused.value.retry_after_s == LIMITS.signup_window_s - 600


async def test_signups_are_allowed_again_when_the_window_has_passed(sign_up: SignUp, clock: FakeClock) -> None:
    for n in range(LIMITS.signup_per_address):
        await sign_up.execute(SignUpInput(f"user{n}@example.com", PASSWORD, client_address=ADDRESS))
    clock.advance(LIMITS.signup_window_s)
    result = await sign_up.execute(SignUpInput("one.more@example.com", PASSWORD, client_address=ADDRESS))
    assert result.user.email == "one.more@example.com"


async def test_the_signup_limit_is_per_address(sign_up: SignUp) -> None:
    for n in range(LIMITS.signup_per_address):
        await sign_up.execute(SignUpInput(f"user{n}@example.com", PASSWORD, client_address=ADDRESS))
    result = await sign_up.execute(SignUpInput("elsewhere@example.com", PASSWORD, client_address="198.51.100.1"))
    assert result.user.email == "elsewhere@example.com"


async def test_a_signup_with_a_taken_email_still_counts_as_an_attempt(sign_up: SignUp) -> None:
    await sign_up.execute(SignUpInput(EMAIL, PASSWORD, client_address=ADDRESS))
    for _ in range(LIMITS.signup_per_address - 1):
        with pytest.raises(Conflict):
            await sign_up.execute(SignUpInput(EMAIL, PASSWORD, client_address=ADDRESS))
    with pytest.raises(RateLimited):
        await sign_up.execute(SignUpInput("new@example.com", PASSWORD, client_address=ADDRESS))


# --- LogIn -------------------------------------------------------------------------------------------


async def test_logging_in_returns_the_user_and_a_new_session(
    log_in: LogIn, store: FakeStore, ada: User, clock: FakeClock
) -> None:
    result = await log_in.execute(LogInInput(EMAIL, PASSWORD, client_address=ADDRESS))
    assert result.user == ada
    assert result.session.user_id == ada.id
    assert result.session.refresh_expires_at == clock.now() + REFRESH_LIFETIME
    assert stored(store, result.session).user_id == ada.id


async def test_each_login_starts_a_new_session_family(log_in: LogIn, store: FakeStore, ada: User) -> None:
    first, second = await new_session(log_in), await new_session(log_in)
    assert family_of(store, first) != family_of(store, second)


async def test_the_email_at_login_is_matched_whatever_its_case_and_spaces(log_in: LogIn, ada: User) -> None:
    result = await log_in.execute(LogInInput("  ADA@example.Com ", PASSWORD))
    assert result.user == ada


async def test_a_wrong_password_is_refused_with_invalid_credentials(log_in: LogIn, store: FakeStore, ada: User) -> None:
    with pytest.raises(AuthenticationFailed) as refused:
        await log_in.execute(LogInInput(EMAIL, "wrong password"))
    assert refused.value.code == "invalid_credentials"
    assert store.refresh_tokens == {}


async def test_an_unknown_email_gets_the_same_answer_as_a_wrong_password(log_in: LogIn, ada: User) -> None:
    with pytest.raises(AuthenticationFailed) as wrong_password:
        await log_in.execute(LogInInput(EMAIL, "wrong password"))
    with pytest.raises(AuthenticationFailed) as unknown_email:
        await log_in.execute(LogInInput("nobody@example.com", PASSWORD))
    assert unknown_email.value.code == wrong_password.value.code == "invalid_credentials"
    assert unknown_email.value.message == wrong_password.value.message


async def test_an_unknown_email_still_spends_a_password_verification(log_in: LogIn, hasher: FakePasswordHasher) -> None:
    with pytest.raises(AuthenticationFailed):
        await log_in.execute(LogInInput("nobody@example.com", PASSWORD))
    assert hasher.dummy_verifications == 1


async def test_a_malformed_email_is_just_a_failed_login(log_in: LogIn, hasher: FakePasswordHasher) -> None:
    with pytest.raises(AuthenticationFailed) as refused:
        await log_in.execute(LogInInput("not an e-mail", PASSWORD))
    assert refused.value.code == "invalid_credentials"
    assert hasher.dummy_verifications == 1


async def test_an_account_without_a_password_cannot_log_in_with_one(
    log_in: LogIn, hasher: FakePasswordHasher, external_user: User
) -> None:
    with pytest.raises(AuthenticationFailed) as refused:
        await log_in.execute(LogInInput("grace@example.com", ""))
    assert refused.value.code == "invalid_credentials"
    assert hasher.dummy_verifications == 1


async def test_after_too_many_failures_an_account_is_rate_limited_even_with_the_right_password(
    log_in: LogIn, store: FakeStore, ada: User
) -> None:
    await fail_logins(log_in, LIMITS.login_per_account)
    with pytest.raises(RateLimited) as refused:
        await log_in.execute(LogInInput(EMAIL, PASSWORD, client_address="198.51.100.1"))
    assert refused.value.retry_after_s == LIMITS.login_window_s
    assert store.refresh_tokens == {}


async def test_failures_are_counted_per_account_whatever_the_address(log_in: LogIn, ada: User) -> None:
    for n in range(LIMITS.login_per_account):
        await fail_logins(log_in, 1, address=f"198.51.100.{n}")
    with pytest.raises(RateLimited):
        await log_in.execute(LogInInput(EMAIL, PASSWORD, client_address="192.0.2.1"))


async def test_failures_are_counted_per_address_across_accounts(log_in: LogIn, ada: User) -> None:
    for n in range(LIMITS.login_per_address):
        await fail_logins(log_in, 1, email=f"someone{n}@example.com")
    with pytest.raises(RateLimited) as refused:
        await log_in.execute(LogInInput(EMAIL, PASSWORD, client_address=ADDRESS))
    assert refused.value.retry_after_s == LIMITS.login_window_s


async def test_an_address_limit_does_not_lock_out_other_addresses(log_in: LogIn, ada: User) -> None:
    for n in range(LIMITS.login_per_address):
        await fail_logins(log_in, 1, email=f"someone{n}@example.com")
    result = await log_in.execute(LogInInput(EMAIL, PASSWORD, client_address="198.51.100.1"))
    assert result.user == ada


async def test_a_rate_limited_account_may_log_in_when_the_window_has_passed(
    log_in: LogIn, clock: FakeClock, ada: User
) -> None:
    await fail_logins(log_in, LIMITS.login_per_account)
    clock.advance(LIMITS.login_window_s)
    result = await log_in.execute(LogInInput(EMAIL, PASSWORD, client_address="198.51.100.1"))
    assert result.user == ada


async def test_a_successful_login_resets_the_account_failure_count(log_in: LogIn, ada: User) -> None:
    await fail_logins(log_in, LIMITS.login_per_account - 1, address="198.51.100.1")
    await log_in.execute(LogInInput(EMAIL, PASSWORD, client_address="198.51.100.1"))
    await fail_logins(log_in, LIMITS.login_per_account - 1, address="198.51.100.2")
    result = await log_in.execute(LogInInput(EMAIL, PASSWORD, client_address="198.51.100.2"))
    assert result.user == ada


async def test_a_successful_login_does_not_reset_the_address_failure_count(
    log_in: LogIn, store: FakeStore, clock: FakeClock, ada: User
) -> None:
    mallory = User("m" * 32, "mallory@example.com", None, "hashed:mallory's pw", clock.now(), clock.now())
    store.users[mallory.id] = mallory
    for n in range(LIMITS.login_per_address - 1):
        await fail_logins(log_in, 1, email=f"victim{n}@example.com")
    await log_in.execute(LogInInput("mallory@example.com", "mallory's pw", client_address=ADDRESS))
    await fail_logins(log_in, 1, email="victim@example.com")
    with pytest.raises(RateLimited):
        await log_in.execute(LogInInput("mallory@example.com", "mallory's pw", client_address=ADDRESS))


@pytest.mark.parametrize("email", [EMAIL, "nobody@example.com"], ids=["known", "unknown"])
async def test_an_unknown_email_is_throttled_exactly_like_a_known_one(log_in: LogIn, ada: User, email: str) -> None:
    await fail_logins(log_in, LIMITS.login_per_account, email=email)
    with pytest.raises(RateLimited) as refused:
        await log_in.execute(LogInInput(email, "another guess", client_address="198.51.100.1"))
    assert refused.value.retry_after_s == LIMITS.login_window_s


# --- RefreshSession ----------------------------------------------------------------------------------


async def test_refreshing_issues_a_new_refresh_token_for_the_same_user(
    log_in: LogIn, refresh: RefreshSession, ada: User
) -> None:
    first = await new_session(log_in)
    result = await refresh.execute(first.refresh_token)
    assert result.user == ada
    assert result.session.user_id == ada.id
    assert result.session.refresh_token != first.refresh_token


async def test_refreshing_marks_the_presented_token_rotated(
    log_in: LogIn, refresh: RefreshSession, store: FakeStore, clock: FakeClock, ada: User
) -> None:
    first = await new_session(log_in)
    clock.advance(60)
    await refresh.execute(first.refresh_token)
    assert stored(store, first).rotated_at == clock.now()
    assert stored(store, first).revoked_at is None


async def test_the_next_token_stays_in_the_same_family_and_lives_from_the_refresh(
    log_in: LogIn, refresh: RefreshSession, store: FakeStore, clock: FakeClock, ada: User
) -> None:
    first = await new_session(log_in)
    clock.advance(3600)
    result = await refresh.execute(first.refresh_token)
    assert family_of(store, result.session) == family_of(store, first)
    assert stored(store, result.session).rotated_at is None
    assert result.session.refresh_expires_at == clock.now() + REFRESH_LIFETIME


async def test_presenting_a_rotated_token_again_is_refused_as_reuse(
    log_in: LogIn, refresh: RefreshSession, ada: User
) -> None:
    first = await new_session(log_in)
    await refresh.execute(first.refresh_token)
    assert await refused_refresh(refresh, first.refresh_token) == "refresh_token_reused"


async def test_reuse_revokes_the_whole_family_including_the_newest_token(
    log_in: LogIn, refresh: RefreshSession, store: FakeStore, clock: FakeClock, ada: User
) -> None:
    first = await new_session(log_in)
    newest = (await refresh.execute(first.refresh_token)).session
    clock.advance(60)
    await refused_refresh(refresh, first.refresh_token)
    assert all(token.revoked_at == clock.now() for token in store.tokens_of_family(family_of(store, first)))
    assert await refused_refresh(refresh, newest.refresh_token) == "invalid_refresh_token"


async def test_reuse_leaves_the_users_other_sessions_alone(log_in: LogIn, refresh: RefreshSession, ada: User) -> None:
    leaked, other = await new_session(log_in), await new_session(log_in)
    await refresh.execute(leaked.refresh_token)
    await refused_refresh(refresh, leaked.refresh_token)
    result = await refresh.execute(other.refresh_token)
    assert result.user == ada


async def test_a_token_is_valid_until_just_before_it_expires(
    log_in: LogIn, refresh: RefreshSession, clock: FakeClock, ada: User
) -> None:
    session = await new_session(log_in)
    clock.advance(REFRESH_LIFETIME.total_seconds() - 1)
    result = await refresh.execute(session.refresh_token)
    assert result.user == ada


async def test_an_expired_refresh_token_is_invalid(
    log_in: LogIn, refresh: RefreshSession, clock: FakeClock, ada: User
) -> None:
    session = await new_session(log_in)
    clock.advance(REFRESH_LIFETIME.total_seconds())
    assert await refused_refresh(refresh, session.refresh_token) == "invalid_refresh_token"


async def test_a_revoked_refresh_token_is_invalid(
    log_in: LogIn, log_out: LogOut, refresh: RefreshSession, ada: User
) -> None:
    session = await new_session(log_in)
    await log_out.execute(refresh_token=session.refresh_token)
    assert await refused_refresh(refresh, session.refresh_token) == "invalid_refresh_token"


async def test_an_unknown_refresh_token_is_invalid(refresh: RefreshSession, store: FakeStore) -> None:
    assert await refused_refresh(refresh, "made-up-token") == "invalid_refresh_token"
    assert store == FakeStore()


async def test_a_refresh_token_of_a_deleted_account_is_invalid(
    log_in: LogIn, refresh: RefreshSession, store: FakeStore, ada: User
) -> None:
    session = await new_session(log_in)
    del store.users[ada.id]
    assert await refused_refresh(refresh, session.refresh_token) == "invalid_refresh_token"
    assert stored(store, session).rotated_at is None


# --- LogOut ------------------------------------------------------------------------------------------


async def test_logging_out_revokes_the_session_of_the_presented_token(
    log_in: LogIn, log_out: LogOut, store: FakeStore, clock: FakeClock, ada: User
) -> None:
    session = await new_session(log_in)
    await log_out.execute(refresh_token=session.refresh_token)
    assert stored(store, session).revoked_at == clock.now()


async def test_logging_out_revokes_the_earlier_tokens_of_the_family_too(
    log_in: LogIn, log_out: LogOut, refresh: RefreshSession, store: FakeStore, ada: User
) -> None:
    first = await new_session(log_in)
    newest = (await refresh.execute(first.refresh_token)).session
    await log_out.execute(refresh_token=newest.refresh_token)
    assert all(token.revoked_at is not None for token in store.tokens_of_family(family_of(store, first)))


async def test_logging_out_keeps_the_users_other_sessions(
    log_in: LogIn, log_out: LogOut, refresh: RefreshSession, ada: User
) -> None:
    leaving, staying = await new_session(log_in), await new_session(log_in)
    await log_out.execute(refresh_token=leaving.refresh_token)
    result = await refresh.execute(staying.refresh_token)
    assert result.user == ada


@pytest.mark.parametrize("token", ["made-up-token", "", None])
async def test_logging_out_with_an_unknown_or_no_token_changes_nothing(
    log_in: LogIn, log_out: LogOut, store: FakeStore, ada: User, token: str | None
) -> None:
    await new_session(log_in)
    before = store.snapshot()
    await log_out.execute(refresh_token=token)
    assert store == before


async def test_logging_out_twice_is_harmless_and_keeps_the_first_revocation_time(
    log_in: LogIn, log_out: LogOut, store: FakeStore, clock: FakeClock, ada: User
) -> None:
    session = await new_session(log_in)
    await log_out.execute(refresh_token=session.refresh_token)
    revoked_at = clock.now()
    clock.advance(60)
    await log_out.execute(refresh_token=session.refresh_token)
    assert stored(store, session).revoked_at == revoked_at


# --- ChangePassword ----------------------------------------------------------------------------------


def change(store: FakeStore, user: User, session: IssuedSession, current: str, new: str) -> ChangePasswordInput:
    principal = Principal(user.id, session_id=family_of(store, session))
    return ChangePasswordInput(principal, current_password=current, new_password=new)


async def test_changing_the_password_stores_the_hash_of_the_new_one(
    log_in: LogIn, change_password: ChangePassword, store: FakeStore, clock: FakeClock, ada: User
) -> None:
    session = await new_session(log_in)
    clock.advance(60)
    await change_password.execute(change(store, ada, session, PASSWORD, NEW_PASSWORD))
    assert store.users[ada.id].password_hash == f"hashed:{NEW_PASSWORD}"
    assert store.users[ada.id].updated_at == clock.now()


async def test_after_a_change_the_new_password_logs_in_and_the_old_one_does_not(
    log_in: LogIn, change_password: ChangePassword, store: FakeStore, ada: User
) -> None:
    session = await new_session(log_in)
    await change_password.execute(change(store, ada, session, PASSWORD, NEW_PASSWORD))
    assert (await log_in.execute(LogInInput(EMAIL, NEW_PASSWORD))).user.id == ada.id
    with pytest.raises(AuthenticationFailed):
        await log_in.execute(LogInInput(EMAIL, PASSWORD))


async def test_changing_the_password_revokes_every_other_session(
    log_in: LogIn, change_password: ChangePassword, refresh: RefreshSession, store: FakeStore, ada: User
) -> None:
    mine, elsewhere = await new_session(log_in), await new_session(log_in)
    await change_password.execute(change(store, ada, mine, PASSWORD, NEW_PASSWORD))
    assert await refused_refresh(refresh, elsewhere.refresh_token) == "invalid_refresh_token"


async def test_changing_the_password_keeps_the_callers_session(
    log_in: LogIn, change_password: ChangePassword, refresh: RefreshSession, store: FakeStore, ada: User
) -> None:
    mine, _elsewhere = await new_session(log_in), await new_session(log_in)
    await change_password.execute(change(store, ada, mine, PASSWORD, NEW_PASSWORD))
    assert stored(store, mine).revoked_at is None
    result = await refresh.execute(mine.refresh_token)
    assert result.user.id == ada.id


async def test_a_wrong_current_password_is_forbidden_and_changes_nothing(
    log_in: LogIn, change_password: ChangePassword, store: FakeStore, ada: User
) -> None:
    session = await new_session(log_in)
    with pytest.raises(Forbidden) as refused:
        await change_password.execute(change(store, ada, session, "wrong password", NEW_PASSWORD))
    assert refused.value.code == "current_password_incorrect"
    assert store.users[ada.id] == ada
    assert stored(store, session).revoked_at is None


async def test_wrong_current_passwords_are_counted_until_the_account_is_rate_limited(
    log_in: LogIn, change_password: ChangePassword, store: FakeStore, ada: User
) -> None:
    session = await new_session(log_in)
    for _ in range(LIMITS.login_per_account):
        with pytest.raises(Forbidden):
            await change_password.execute(change(store, ada, session, "wrong password", NEW_PASSWORD))
    with pytest.raises(RateLimited) as refused:
        await change_password.execute(change(store, ada, session, PASSWORD, NEW_PASSWORD))
    assert refused.value.retry_after_s == LIMITS.login_window_s
    assert store.users[ada.id].password_hash == f"hashed:{PASSWORD}"


async def test_a_successful_change_resets_the_count_of_wrong_current_passwords(
    log_in: LogIn, change_password: ChangePassword, store: FakeStore, ada: User
) -> None:
    session = await new_session(log_in)
    for current, new in [(PASSWORD, NEW_PASSWORD), (NEW_PASSWORD, PASSWORD)]:
        for _ in range(LIMITS.login_per_account - 1):
            with pytest.raises(Forbidden):
                await change_password.execute(change(store, ada, session, "wrong password", new))
        await change_password.execute(change(store, ada, session, current, new))
    assert store.users[ada.id].password_hash == f"hashed:{PASSWORD}"


@pytest.mark.parametrize(
    ("new_password", "code"),
    [("short", "password_too_short"), ("PASSWORD", "weak_password"), ("x" * 129, "password_too_long")],
)
async def test_a_weak_new_password_is_refused_and_changes_nothing(
    log_in: LogIn, change_password: ChangePassword, store: FakeStore, ada: User, new_password: str, code: str
) -> None:
    session, elsewhere = await new_session(log_in), await new_session(log_in)
    with pytest.raises(InvalidInput) as refused:
        await change_password.execute(change(store, ada, session, PASSWORD, new_password))
    assert (refused.value.code, refused.value.field) == (code, "new_password")
    assert store.users[ada.id] == ada
    assert stored(store, elsewhere).revoked_at is None


async def test_an_account_without_a_password_cannot_change_it(
    change_password: ChangePassword, store: FakeStore, external_user: User
) -> None:
    principal = Principal(external_user.id, external=True)
    with pytest.raises(Conflict) as refused:
        await change_password.execute(ChangePasswordInput(principal, "anything", NEW_PASSWORD))
    assert refused.value.code == "password_not_set"
    assert store.users[external_user.id].password_hash is None


async def test_changing_the_password_of_a_deleted_account_is_not_found(change_password: ChangePassword) -> None:
    principal = Principal("gone" * 8, session_id="family")
    with pytest.raises(NotFound) as refused:
        await change_password.execute(ChangePasswordInput(principal, PASSWORD, NEW_PASSWORD))
    assert refused.value.code == "user_not_found"


# --- GetCurrentUser ----------------------------------------------------------------------------------


async def test_the_current_user_is_the_stored_account_of_the_principal(uow: FakeUnitOfWorkFactory, ada: User) -> None:
    user = await GetCurrentUser(uow).execute(Principal(ada.id, session_id="family"))
    assert user == ada


async def test_a_principal_whose_account_is_gone_is_not_authenticated(uow: FakeUnitOfWorkFactory) -> None:
    with pytest.raises(AuthenticationFailed) as refused:
        await GetCurrentUser(uow).execute(Principal("gone" * 8, session_id="family"))
    assert refused.value.code == "invalid_token"


# --- Authenticate ------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, ""])
async def test_a_request_without_a_bearer_token_is_refused_with_missing_token(
    authenticate: Authenticate, token: str | None
) -> None:
    with pytest.raises(AuthenticationFailed) as refused:
        await authenticate.execute(token)
    assert refused.value.code == "missing_token"


async def test_a_token_that_proves_nothing_is_refused(authenticate: Authenticate) -> None:
    with pytest.raises(AuthenticationFailed) as refused:
        await authenticate.execute("forged")
    assert refused.value.code == "invalid_token"


async def test_our_own_token_gives_its_principal_without_touching_the_store(
    authenticate: Authenticate, verifier: FakeTokenVerifier, uow: FakeUnitOfWorkFactory
) -> None:
    own = Principal("a" * 32, session_id="family")
    verifier.principals["own-token"] = own
    assert await authenticate.execute("own-token") == own
    assert uow.units == []
    assert uow.store == FakeStore()


async def test_an_external_principal_gets_an_account_without_a_password_on_first_sight(
    authenticate: Authenticate, verifier: FakeTokenVerifier, store: FakeStore, clock: FakeClock
) -> None:
    external = Principal("x" * 32, email="grace@example.com", name="Grace", external=True)
    verifier.principals["external-token"] = external
    assert await authenticate.execute("external-token") == external
    assert store.users == {
        external.user_id: User(external.user_id, "grace@example.com", "Grace", None, clock.now(), clock.now())
    }


async def test_an_external_principal_is_stored_only_once(
    authenticate: Authenticate, verifier: FakeTokenVerifier, uow: FakeUnitOfWorkFactory
) -> None:
    verifier.principals["external-token"] = Principal("x" * 32, email="grace@example.com", external=True)
    await authenticate.execute("external-token")
    await authenticate.execute("external-token")
    assert len(uow.units) == 1
    assert list(uow.store.users) == ["x" * 32]


async def test_authenticate_forgets_the_oldest_external_principal_beyond_what_it_remembers(
    verifier: FakeTokenVerifier, uow: FakeUnitOfWorkFactory, clock: FakeClock, revocations: RevokedSessionCache
) -> None:
    authenticate = Authenticate(verifier, uow, clock, revocations, remember=1)
    verifier.principals["a"] = Principal("a" * 32, external=True)
    verifier.principals["b"] = Principal("b" * 32, external=True)
    for token in ["a", "b", "b", "a"]:
        await authenticate.execute(token)
    assert len(uow.units) == 3  # a, b, then a again once b took its place
    assert sorted(uow.store.users) == ["a" * 32, "b" * 32]


# --- Rollback by default: a use case that fails half-way leaves nothing half-written ----------------


async def test_a_signup_that_fails_after_writing_the_user_leaves_no_user_and_no_token(
    uow: FakeUnitOfWorkFactory, hasher: FakePasswordHasher, policy: PasswordPolicy, clock: FakeClock
) -> None:
    sign_up = SignUp(uow, hasher, policy, SessionIssuer(BrokenAccessTokens(), clock), LIMITS)
    with pytest.raises(SigningKeyUnavailable):
        await sign_up.execute(SignUpInput(EMAIL, PASSWORD, client_address=ADDRESS))
    assert uow.store.users == {}
    assert uow.store.refresh_tokens == {}
    assert not uow.units[-1].committed


async def test_the_signup_attempt_counted_in_its_own_transaction_survives_a_later_failure(
    uow: FakeUnitOfWorkFactory, hasher: FakePasswordHasher, policy: PasswordPolicy, clock: FakeClock
) -> None:
    sign_up = SignUp(uow, hasher, policy, SessionIssuer(BrokenAccessTokens(), clock), LIMITS)
    with pytest.raises(SigningKeyUnavailable):
        await sign_up.execute(SignUpInput(EMAIL, PASSWORD, client_address=ADDRESS))
    assert list(uow.store.rate_limits.values()) == [FixedWindow(hits=1, started_at=clock.now())]


async def test_a_refresh_that_fails_after_rotating_leaves_the_presented_token_usable(
    log_in: LogIn,
    refresh: RefreshSession,
    uow: FakeUnitOfWorkFactory,
    clock: FakeClock,
    ada: User,
    revocations: RevokedSessionCache,
) -> None:
    session = await new_session(log_in)
    before = uow.store.snapshot()
    broken = RefreshSession(uow, SessionIssuer(BrokenAccessTokens(), clock), revocations)
    with pytest.raises(SigningKeyUnavailable):
        await broken.execute(session.refresh_token)
    assert uow.store == before
    assert (await refresh.execute(session.refresh_token)).user == ada
