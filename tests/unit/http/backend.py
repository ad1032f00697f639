"""The real use cases over the in-memory fakes: what the HTTP tests run the app on, no database needed.

`use_cases_over(backend)` is the one place the registry is assembled for these tests, so a change to
a use case's constructor is a one-line fix here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from tests.unit.chat_fakes import FakeAgentTools, ScriptedChatModel
from tests.unit.fakes import (
    FakeAccessTokens,
    FakeChangeSignals,
    FakeClock,
    FakePasswordHasher,
    FakeRevokedSessions,
    FakeStore,
    FakeTokenVerifier,
    FakeUnitOfWorkFactory,
)
from tests.unit.webhook_fakes import FakeTargetGuard
from todo_api.adapters.calendar.rrule import RruleRecurrences
from todo_api.domain.errors import ServiceUnavailable
from todo_api.domain.tasks import Task, TaskDraft
from todo_api.domain.users import PasswordPolicy, Principal, User
from todo_api.use_cases.auth import ThrottleLimits
from todo_api.use_cases.registry import Ports, UseCases, build_use_cases

COMMON_PASSWORDS = frozenset({"password", "12345678", "qwertyuiop"})


class FakeDatabaseProbe:
    """Answers while `up`; otherwise what the SQL probe raises when the database is gone."""

    def __init__(self) -> None:
        self.up = True
        self.retry_after_s = 2

    async def ping(self) -> None:
        if not self.up:
            raise ServiceUnavailable("The database is not answering.", retry_after_s=self.retry_after_s)


@dataclass
class FakeBackend:
    """Everything behind the use cases, in memory; tests arrange state here and look at it after."""

    clock: FakeClock = field(default_factory=FakeClock)
    hasher: FakePasswordHasher = field(default_factory=FakePasswordHasher)
    verifier: FakeTokenVerifier = field(default_factory=FakeTokenVerifier)
    probe: FakeDatabaseProbe = field(default_factory=FakeDatabaseProbe)
    limits: ThrottleLimits = field(default_factory=ThrottleLimits)
    signals: FakeChangeSignals = field(default_factory=FakeChangeSignals)
    uow: FakeUnitOfWorkFactory = field(init=False)

    use_cases: UseCases = field(init=False)

    def __post_init__(self) -> None:
        self.uow = FakeUnitOfWorkFactory(clock=self.clock)
        self.use_cases = use_cases_over(self)

    @property
    def store(self) -> FakeStore:
        return self.uow.store

    def add_user(self, user_id: str, *, token: str, email: str | None = None, password: str | None = None) -> User:
        """A stored account whose bearer token is `token` (and, with `password`, that can log in)."""
        now = self.clock.now()
        password_hash = f"hashed:{password}" if password is not None else None  # as FakePasswordHasher hashes
        user = User(user_id, email or f"{user_id[:8].lower()}@example.com", None, password_hash, now, now)
        self.store.users[user_id] = user
        self.verifier.principals[token] = Principal(user_id, session_id=f"session-of-{user_id}")
        return user

    async def add_task(self, user_id: str, title: str = "Buy oat milk") -> Task:
        """A task of `user_id`'s, created as the API creates one."""
        created = await self.use_cases.create_task.execute(user_id, TaskDraft(title))
        return created.task


def use_cases_over(backend: FakeBackend) -> UseCases:
    """The real `UseCases` registry, every use case built on the fakes."""
    return build_use_cases(
        Ports(
            uow=backend.uow,
            clock=backend.clock,
            hasher=backend.hasher,
            access_tokens=FakeAccessTokens(),
            verifier=backend.verifier,
            probe=backend.probe,
            password_policy=PasswordPolicy(COMMON_PASSWORDS),
            limits=backend.limits,
            refresh_lifetime=timedelta(days=30),
            change_signals=backend.signals,
            webhook_guard=FakeTargetGuard(),
            recurrences=RruleRecurrences(),
            chat_model=ScriptedChatModel(final="Nothing is due today."),
            agent_tools=FakeAgentTools(),
            revoked_sessions=FakeRevokedSessions(backend.uow.store),
        )
    )
