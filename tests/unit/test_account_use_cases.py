"""Account self-service and ended sessions, over the in-memory fakes."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.unit.fakes import (
    FakeAccessTokens,
    FakeClock,
    FakePasswordHasher,
    FakeRevokedSessions,
    FakeTokenVerifier,
    FakeUnitOfWorkFactory,
)
from todo_api.adapters.calendar.rrule import RruleRecurrences
from todo_api.domain.errors import AuthenticationFailed, Conflict, Forbidden, NotFound, ServiceUnavailable
from todo_api.domain.tasks import TaskDraft
from todo_api.domain.users import PasswordPolicy, Principal
from todo_api.use_cases.account import DeleteAccount, EndSession, ExportAccount, ListSessions, UpdateProfile
from todo_api.use_cases.auth import (
    Authenticate,
    LogIn,
    LogInInput,
    LogOut,
    SessionIssuer,
    SignUp,
    SignUpInput,
    ThrottleLimits,
)
from todo_api.use_cases.revocations import RevokedSessionCache
from todo_api.use_cases.tasks import CreateTask

RULES = RruleRecurrences()

PASSWORD = "correct horse battery staple"
LIMITS = ThrottleLimits()
HORIZON = timedelta(seconds=970)


@pytest.fixture
def uow() -> FakeUnitOfWorkFactory:
    return FakeUnitOfWorkFactory()


@pytest.fixture
def clock(uow: FakeUnitOfWorkFactory) -> FakeClock:
    return uow.clock


@pytest.fixture
def hasher() -> FakePasswordHasher:
    return FakePasswordHasher()


@pytest.fixture
def revocations(uow: FakeUnitOfWorkFactory, clock: FakeClock) -> RevokedSessionCache:
    return RevokedSessionCache(FakeRevokedSessions(uow.store), clock, horizon=HORIZON)


@pytest.fixture
def sessions(clock: FakeClock) -> SessionIssuer:
    return SessionIssuer(FakeAccessTokens(), clock)


async def sign_up(
    uow: FakeUnitOfWorkFactory, hasher: FakePasswordHasher, sessions: SessionIssuer, agent: str
) -> Principal:
    result = await SignUp(uow, hasher, PasswordPolicy(frozenset()), sessions, LIMITS).execute(
        SignUpInput("ada@example.com", PASSWORD, "Ada", user_agent=agent)
    )
    return Principal(result.user.id, session_id=result.session.access_token.split(":")[2])


async def log_in(
    uow: FakeUnitOfWorkFactory, hasher: FakePasswordHasher, sessions: SessionIssuer, agent: str
) -> tuple[Principal, str]:
    result = await LogIn(uow, hasher, sessions, LIMITS).execute(
        LogInInput("ada@example.com", PASSWORD, user_agent=agent)
    )
    return Principal(result.user.id, session_id=result.session.access_token.split(":")[2]), result.session.refresh_token


async def test_each_login_is_a_session_with_its_device_and_the_callers_is_marked_current(
    uow: FakeUnitOfWorkFactory, hasher: FakePasswordHasher, sessions: SessionIssuer, clock: FakeClock
) -> None:
    laptop = await sign_up(uow, hasher, sessions, "Firefox on a laptop")
    clock.advance(60)
    phone, _ = await log_in(uow, hasher, sessions, "  Safari   on a phone ")

    listed = await ListSessions(uow, clock).execute(laptop)

    assert [(view.session.user_agent, view.current) for view in listed] == [
        ("Safari on a phone", False),
        ("Firefox on a laptop", True),
    ]
    assert listed[0].session.id == phone.session_id


async def test_ending_a_session_refuses_its_access_tokens_here_at_once_and_elsewhere_after_a_refresh(
    uow: FakeUnitOfWorkFactory,
    hasher: FakePasswordHasher,
    sessions: SessionIssuer,
    clock: FakeClock,
    revocations: RevokedSessionCache,
) -> None:
    me = await sign_up(uow, hasher, sessions, "laptop")
    phone, _ = await log_in(uow, hasher, sessions, "phone")
    token = f"access:{phone.user_id}:{phone.session_id}"
    verifier = FakeTokenVerifier({token: phone})
    here = Authenticate(verifier, uow, clock, revocations)
    elsewhere_cache = RevokedSessionCache(FakeRevokedSessions(uow.store), clock, horizon=HORIZON)
    elsewhere = Authenticate(verifier, uow, clock, elsewhere_cache)
    assert await elsewhere.execute(token) == phone

    assert phone.session_id is not None
    await EndSession(uow, clock, revocations).execute(me, phone.session_id)

    units = len(uow.units)
    with pytest.raises(AuthenticationFailed) as refused:
        await here.execute(token)
    assert len(uow.units) == units  # the check is in memory: no unit of work, no query
    assert refused.value.code == "session_revoked"
    assert await elsewhere.execute(token) == phone  # until its next refresh
    await elsewhere_cache.run_once()
    with pytest.raises(AuthenticationFailed):
        await elsewhere.execute(token)
    assert [view.session.id for view in await ListSessions(uow, clock).execute(me)] == [me.session_id]


async def test_a_process_that_has_not_read_the_ended_sessions_yet_reads_them_before_it_accepts_a_token(
    uow: FakeUnitOfWorkFactory, hasher: FakePasswordHasher, sessions: SessionIssuer, clock: FakeClock
) -> None:
    me = await sign_up(uow, hasher, sessions, "laptop")
    phone, _ = await log_in(uow, hasher, sessions, "phone")
    assert phone.session_id is not None
    await EndSession(uow, clock, RevokedSessionCache(FakeRevokedSessions(uow.store), clock, horizon=HORIZON)).execute(
        me, phone.session_id
    )
    token = f"access:{phone.user_id}:{phone.session_id}"
    fresh_replica = RevokedSessionCache(FakeRevokedSessions(uow.store), clock, horizon=HORIZON)  # never refreshed

    with pytest.raises(AuthenticationFailed) as refused:
        await Authenticate(FakeTokenVerifier({token: phone}), uow, clock, fresh_replica).execute(token)

    assert refused.value.code == "session_revoked"
    assert fresh_replica.loaded_at == clock.now()


async def test_while_the_ended_sessions_cannot_be_read_no_token_is_accepted(
    uow: FakeUnitOfWorkFactory, hasher: FakePasswordHasher, sessions: SessionIssuer, clock: FakeClock
) -> None:
    class Unreachable:
        async def revoked_since(self, since: datetime) -> list[str]:
            raise ServiceUnavailable("The database does not answer.")

    me = await sign_up(uow, hasher, sessions, "laptop")
    token = f"access:{me.user_id}:{me.session_id}"
    cache = RevokedSessionCache(Unreachable(), clock, horizon=HORIZON)
    authenticate = Authenticate(FakeTokenVerifier({token: me}), uow, clock, cache)

    with pytest.raises(ServiceUnavailable):
        await authenticate.execute(token)
    assert cache.loaded_at is None  # the next request tries again


async def test_an_ended_session_is_forgotten_once_no_token_of_it_can_be_valid(
    uow: FakeUnitOfWorkFactory,
    hasher: FakePasswordHasher,
    sessions: SessionIssuer,
    clock: FakeClock,
    revocations: RevokedSessionCache,
) -> None:
    me = await sign_up(uow, hasher, sessions, "laptop")
    _, refresh_token = await log_in(uow, hasher, sessions, "phone")
    await LogOut(uow, clock, revocations).execute(refresh_token=refresh_token)
    await revocations.run_once()
    ended = next(iter(uow.store.revoked_sessions))
    assert await revocations.is_revoked(ended)
    clock.advance(HORIZON.total_seconds() + 1)
    await revocations.run_once()
    assert not await revocations.is_revoked(ended)
    assert me.session_id is not None
    assert not await revocations.is_revoked(me.session_id)


async def test_a_session_that_is_not_yours_is_not_found_and_not_ended(
    uow: FakeUnitOfWorkFactory,
    hasher: FakePasswordHasher,
    sessions: SessionIssuer,
    clock: FakeClock,
    revocations: RevokedSessionCache,
) -> None:
    me = await sign_up(uow, hasher, sessions, "laptop")
    assert me.session_id is not None
    with pytest.raises(NotFound):
        await EndSession(uow, clock, revocations).execute(Principal("someone-else", session_id="s"), me.session_id)
    assert uow.store.revoked_sessions == {}
    assert not await revocations.is_revoked(me.session_id)


async def test_the_name_can_be_changed_and_cleared(
    uow: FakeUnitOfWorkFactory, hasher: FakePasswordHasher, sessions: SessionIssuer, clock: FakeClock
) -> None:
    me = await sign_up(uow, hasher, sessions, "laptop")
    assert (await UpdateProfile(uow, clock).execute(me, "  Ada   King ")).name == "Ada King"
    assert (await UpdateProfile(uow, clock).execute(me, "   ")).name is None


async def test_deleting_the_account_needs_the_password_then_removes_everything_and_ends_every_session(
    uow: FakeUnitOfWorkFactory,
    hasher: FakePasswordHasher,
    sessions: SessionIssuer,
    clock: FakeClock,
    revocations: RevokedSessionCache,
) -> None:
    me = await sign_up(uow, hasher, sessions, "laptop")
    phone, _ = await log_in(uow, hasher, sessions, "phone")
    await CreateTask(uow, clock, RULES).execute(me.user_id, TaskDraft(title="Mine"))
    delete = DeleteAccount(uow, hasher, clock, LIMITS, revocations)

    with pytest.raises(Forbidden):
        await delete.execute(me, "not my password")
    assert me.user_id in uow.store.users

    await delete.execute(me, PASSWORD)

    assert uow.store.users == {}
    assert (uow.store.tasks, uow.store.lists, uow.store.sessions, uow.store.refresh_tokens) == ({}, {}, {}, {})
    assert me.session_id is not None
    assert phone.session_id is not None
    assert await revocations.is_revoked(me.session_id)
    assert await revocations.is_revoked(phone.session_id)
    assert set(uow.store.revoked_sessions) == {me.session_id, phone.session_id}


async def test_an_external_account_cannot_be_deleted_here(
    uow: FakeUnitOfWorkFactory, hasher: FakePasswordHasher, clock: FakeClock, revocations: RevokedSessionCache
) -> None:
    verifier = FakeTokenVerifier({"t": Principal("x" * 32, external=True)})
    principal = await Authenticate(verifier, uow, clock, revocations).execute("t")
    with pytest.raises(Conflict):
        await DeleteAccount(uow, hasher, clock, LIMITS, revocations).execute(principal, "anything")


async def test_the_export_holds_the_user_lists_tasks_trash_and_sessions(
    uow: FakeUnitOfWorkFactory, hasher: FakePasswordHasher, sessions: SessionIssuer, clock: FakeClock
) -> None:
    me = await sign_up(uow, hasher, sessions, "laptop")
    create = CreateTask(uow, clock, RULES)
    created = [(await create.execute(me.user_id, TaskDraft(title=f"Task {n}"))).task for n in range(250)]

    export = await ExportAccount(uow, clock).execute(me)

    assert export.user.id == me.user_id
    assert [task.id for task in export.tasks] == [task.id for task in created]  # every page
    assert [task_list.name for task_list in export.lists] == ["Inbox"]
    assert [session.user_agent for session in export.sessions] == ["laptop"]
    assert export.deleted_tasks == []
