"""Ports: what the core needs from the outside world, as Protocols the adapters satisfy.

Repositories are read-only properties of the unit of work, so one transaction spans them all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from todo_api.domain.bulk import BulkOutcome
from todo_api.domain.changes import Change, FeedEvent
from todo_api.domain.chat import ChatMessage, Conversation, ModelReply, ToolDefinition, ToolOutcome
from todo_api.domain.lists import TaskList
from todo_api.domain.overview import Day, TagCount, TaskSummary
from todo_api.domain.recurrence import Recurrence, ReminderPosition, ScheduledReminder
from todo_api.domain.sessions import RefreshToken, Session
from todo_api.domain.tasks import DeletedTask, Position, Task, TaskDraft, TaskFilter, TaskQuery
from todo_api.domain.users import Principal, User
from todo_api.domain.webhooks import Attempt, Delivery, Lease, NewWebhook, SendOutcome, Webhook


class DatabaseProbe(Protocol):
    async def ping(self) -> None:
        """Return when the database answers; raise ServiceUnavailable when it does not."""


class UserRepository(Protocol):
    async def get(self, user_id: str) -> User | None: ...
    async def get_by_email(self, email: str) -> User | None: ...
    async def add(self, user: User) -> None:
        """Raise Conflict(code="email_taken") when the e-mail is in use."""

    async def add_external(self, user: User) -> None:
        """Insert unless the id exists; an e-mail already in use is stored as no e-mail."""

    async def set_password_hash(self, user_id: str, password_hash: str, at: datetime) -> None: ...
    async def set_name(self, user_id: str, name: str | None, at: datetime) -> User | None: ...
    async def delete(self, user_id: str) -> bool:
        """Delete the person and, by the foreign keys' cascades, every row of theirs in every table;
        False if gone already."""


class RefreshTokenRepository(Protocol):
    async def add(self, token: RefreshToken) -> None: ...
    async def get_for_update(self, token_hash: str) -> RefreshToken | None:
        """The token, locked until commit, so concurrent refreshes with it are serialised."""

    async def mark_rotated(self, token_hash: str, at: datetime) -> None: ...
    async def revoke_family(self, family_id: str, at: datetime) -> None: ...
    async def revoke_user_families(self, user_id: str, at: datetime, *, keep_family: str | None) -> None: ...
    async def family_live(self, family_id: str, at: datetime) -> bool:
        """Whether the session (family) still has a token neither revoked nor expired: a logout,
        a detected reuse or a password change ends it."""


class SessionRepository(Protocol):
    """A person's sessions (one per login), and the record of ended ones that every replica's
    access-token check reads (`RevokedSessions`)."""

    async def start(self, session: Session) -> None: ...
    async def touch(self, session_id: str, at: datetime, expires_at: datetime) -> None:
        """The session refreshed its access token at `at`; its refresh token now lives until `expires_at`."""

    async def live(self, user_id: str, now: datetime) -> Sequence[Session]:
        """The person's sessions not ended nor expired, latest first."""

    async def end(
        self, user_id: str, at: datetime, *, session_id: str | None = None, keep: str | None = None
    ) -> Sequence[str]:
        """End one session (`session_id`), or all but `keep`: their refresh tokens are revoked and
        they are recorded as ended at `at`, so their access tokens stop working everywhere. The ids
        ended (none for a session that is not the person's or is over already)."""


class RevokedSessions(Protocol):
    async def revoked_since(self, since: datetime) -> Sequence[str]:
        """The ids of the sessions ended after `since`, on any replica."""


class RateLimiter(Protocol):
    """Fixed-window attempt counters shared by every worker and replica."""

    async def acquire(self, key: str, *, limit: int, window_s: int) -> int | None:
        """Count one attempt, atomically; the seconds to wait if it is over `limit`, else None.

        Counting before the attempt (not after it failed) is what keeps a burst of concurrent
        attempts from all slipping under the limit.
        """

    async def release(self, key: str) -> None:
        """Give back one attempt that should not count (a login that succeeded)."""

    async def reset(self, key: str) -> None: ...


class TaskRepository(Protocol):
    """Every method filters by owner: another user's task is indistinguishable from no task."""

    async def add(self, user_id: str, draft: TaskDraft, at: datetime, *, list_id: int, position: str) -> Task:
        """Store a task in `list_id` (resolved by the use case) under `draft.parent_id`."""

    async def get(self, user_id: str, task_id: int, *, for_update: bool = False) -> Task | None:
        """`for_update` locks the task until commit, so a read-modify-write cannot lose a change."""

    async def add_and_record(
        self, user_id: str, draft: TaskDraft, at: datetime, *, list_id: int, position: str
    ) -> Task:
        """`add`, recording its `task.created` on the unit's change log, for a unit's last write:
        the feed may be written with the row (one round trip fewer), so nothing is recorded after it,
        and in a unit that wrote nothing before it the write may commit as it runs: nothing may be
        written after it, nor rolled back."""

    async def save(self, task: Task, *, expected_version: int) -> Task | None:
        """Write `task` if its stored version is still `expected_version`; None when it is not (or gone)."""

    async def save_and_record(self, task: Task, *, before: Task) -> Task | None:
        """`save` over `before.version`, recording `task_change(before, saved)`, for a unit's last
        write, as `add_and_record`; None (and nothing recorded) when the version moved on."""

    async def trash(self, user_id: str, root_ids: Sequence[int], at: datetime) -> list[int]:
        """Delete the tasks and everything under them, keeping them restorable; the ids deleted."""

    async def trashed(self, user_id: str, task_id: int) -> DeletedTask | None: ...
    async def trashed_page(self, user_id: str, limit: int, after: Position | None) -> list[Task]:
        """Up to `limit + 1` tasks deleted on their own (not with a parent or list), latest first;
        `after` is the last one's `deleted_at` and id."""

    async def restore(
        self, user_id: str, root_id: int, *, list_id: int, parent_id: int | None, position: str, at: datetime
    ) -> list[Task]:
        """Bring back a task deleted on its own and what was deleted with it, each as a new
        version: the task at the given place, the rest under it as they were."""

    async def list(self, user_id: str, query: TaskQuery, now: datetime) -> list[Task]:
        """Up to `query.limit + 1` tasks after `query.after`, so the caller knows if there is more."""

    async def count(self, user_id: str, task_filter: TaskFilter, now: datetime) -> int: ...
    async def last_position(self, user_id: str, list_id: int, parent_id: int | None) -> str | None:
        """The greatest order key among the tasks of a list directly under `parent_id` (None: top level)."""

    async def depth(self, user_id: str, task_id: int) -> int | None:
        """How many levels down `task_id` is (1: a top-level task), None when it is not the user's."""

    async def descendants(self, user_id: str, task_id: int) -> dict[int, int]:
        """Every task under `task_id`, with how many levels below it (1: its subtasks)."""

    async def subtrees(self, user_id: str, root_ids: Sequence[int]) -> dict[int, int]:
        """Every task under the roots, with its parent's id."""

    async def complete_descendants(
        self, user_id: str, root_ids: Sequence[int], at: datetime, *, keep: Sequence[int] = ()
    ) -> Sequence[Task]:
        """Complete every open task under the roots, each as a new version; `keep` (tasks the
        caller writes itself) are left alone, though their subtasks are not."""

    async def neighbour(self, sibling: Task, *, after: bool) -> str | None:
        """The order key of the task right after (or before) `sibling` among its siblings."""

    async def place(self, task: Task, *, list_id: int, parent_id: int | None, position: str, at: datetime) -> Task:
        """Put a task (locked by the caller) in a list, under a parent, at an order key: a new version."""

    async def move_descendants_to(
        self, user_id: str, root_ids: Sequence[int], list_id: int, at: datetime, *, keep: Sequence[int] = ()
    ) -> Sequence[Task]:
        """Every task under the roots follows them to another list, each as a new version (but
        `keep`, which the caller writes itself)."""

    async def get_many(self, user_id: str, task_ids: Sequence[int]) -> dict[int, Task]:
        """The user's tasks among `task_ids`, locked in id order (so overlapping bulk changes queue)
        and so that no task can be put under them until the unit ends (bulk.py relies on it)."""

    async def save_many(self, changed: Sequence[Task], before: Mapping[int, Task]) -> Sequence[Task]:
        """Write many tasks in one statement, each only over the version it had `before` (read in
        this unit, by id); those written. Only what some task changed needs writing."""

    async def sibling_ids(self, user_id: str, list_id: int, parent_id: int | None) -> Sequence[int]:
        """A group's tasks in the person's order: what a rebalance walks."""

    async def set_positions(self, user_id: str, positions: dict[int, str], at: datetime) -> Sequence[Task]:
        """New order keys for many tasks at once (a rebalance), each as a new version."""

    async def add_successor(self, successor: Task, at: datetime) -> Task | None:
        """Store the next occurrence of a series (`successor.previous_id` names the completed one);
        None when that occurrence already has one (a retried or concurrent completion)."""

    async def remove_successor(self, user_id: str, previous_id: int) -> int | None:
        """Delete the next occurrence created by completing `previous_id` if nobody touched it since
        (version 1, no subtasks); its id, or None when there is none or it was edited."""

    async def summary(self, user_id: str, now: datetime, day: Day) -> TaskSummary:
        """Counts of the person's tasks (all, per priority, per list) in one statement."""

    async def tag_counts(self, user_id: str) -> Sequence[TagCount]:
        """Every tag the person uses, by name, with its open and total tasks, in one statement."""

    async def complete_matching(self, user_id: str, task_filter: TaskFilter, at: datetime) -> Sequence[Task]:
        """Complete every open task the filter matches and every open task under one, in one
        statement, each as a new version; the tasks written."""

    async def trash_matching(self, user_id: str, task_filter: TaskFilter, at: datetime) -> Sequence[int]:
        """Delete, restorably, every task the filter matches with everything under it, in one
        statement (as `trash`: each matched task is the root its subtree comes back with); the ids deleted."""


class RecurrenceRules(Protocol):
    """RFC 5545 recurrence rules on the wall clock of IANA time zones (the calendar adapter)."""

    def normalised(self, rule: str, timezone: str) -> str:
        """The rule as stored: parts checked, ordered, upper-case; InvalidInput(code=
        "invalid_recurrence") naming the offending part, or an unknown zone."""

    def next_after(self, recurrence: Recurrence, after: datetime) -> datetime | None:
        """The series' first occurrence strictly after `after`; None when COUNT or UNTIL ended it."""

    def rebased(self, recurrence: Recurrence, start: datetime, current: datetime | None) -> Recurrence:
        """The series restarted at `start` (its time of day follows), a COUNT reduced to what was
        left of it from the `current` occurrence."""


class ReminderRepository(Protocol):
    """The reminders' schedule: one row per armed reminder, found by time through an index."""

    async def arm(self, tasks: Sequence[Task], now: datetime) -> None:
        """Replace each task's schedule with its reminders as they stand: none for a completed
        task; one in the past is kept as already fired (it never fires)."""

    async def upcoming(
        self, user_id: str, start: datetime, end: datetime, limit: int, after: ReminderPosition | None
    ) -> list[ScheduledReminder]:
        """Up to `limit + 1` armed reminders of open tasks firing in [start, end), by time and id."""

    async def snooze(self, user_id: str, task_id: int, reminder_id: int, until: datetime) -> ScheduledReminder | None:
        """Arm one reminder again, to fire at `until`; None when the task has no such reminder."""

    async def claim_due(self, now: datetime, limit: int) -> list[tuple[ScheduledReminder, Task]]:
        """Mark up to `limit` reminders due by `now` as fired, skipping rows another replica holds,
        each with its task: those of completed tasks are marked too but left out. Until the unit
        commits, the rows are held; a rollback (or a killed process) leaves them due."""


@dataclass(frozen=True, slots=True)
class ListPosition:
    """Where a page of lists ended: the last list's order key and id."""

    position: str
    id: int


class ListRepository(Protocol):
    """Every method filters by owner; lists come with `open_count` and `total_count` filled in."""

    async def add(
        self, user_id: str, name: str, color: str | None, position: str, at: datetime, *, is_inbox: bool = False
    ) -> TaskList:
        """Raise Conflict(code="list_name_taken") when the user has a list of that name (any case)."""

    async def get(self, user_id: str, list_id: int, *, for_update: bool = False) -> TaskList | None:
        """With `for_update`, the list is locked first and its counts read after the lock: a task
        added while we waited is counted (a plain delete must see it)."""

    async def inbox(self, user_id: str) -> TaskList | None: ...
    async def take_turn(self, user_id: str) -> bool:
        """Wait for, and hold until the transaction ends, the person's turn at changing the shape
        of their lists and task trees (creating or moving a list, re-parenting or moving a task,
        creating a subtask). False when the person has no Inbox to take it on yet."""

    async def append_point(self, user_id: str, list_id: int | None) -> tuple[int, str | None] | None:
        """Where a new top-level task goes: the list's id (the Inbox's for None) and its last
        top-level task's order key; None when the user has no such list. One cheap read: no counts."""

    async def page(self, user_id: str, limit: int, after: ListPosition | None) -> list[TaskList]:
        """Up to `limit + 1` lists in the person's order after `after`."""

    async def count(self, user_id: str) -> int: ...
    async def last_position(self, user_id: str) -> str | None: ...
    async def save(self, task_list: TaskList, *, expected_version: int) -> TaskList | None:
        """Write name, colour and position if the stored version is still `expected_version`;
        Conflict on a taken name."""

    async def order(self, user_id: str) -> list[tuple[int, str]]:
        """Every list's id and order key, in the person's order (a person has at most 1,000)."""

    async def set_positions(self, user_id: str, positions: dict[int, str], at: datetime) -> list[int]:
        """Give these lists these keys (a rebalance), each as a new version; the ids written."""

    async def many(self, user_id: str, list_ids: Sequence[int]) -> list[TaskList]: ...
    async def trash(self, user_id: str, list_id: int, at: datetime) -> list[int]:
        """Delete the list and every task in it, keeping them restorable; the tasks' ids."""

    async def trashed(self, user_id: str, list_id: int) -> TaskList | None: ...
    async def restore(self, user_id: str, list_id: int, at: datetime) -> tuple[TaskList, list[Task]] | None:
        """Bring back a deleted list with the tasks deleted with it, each as a new version;
        Conflict(code="list_name_taken") when the person has a list of its name by now."""


@dataclass(frozen=True, slots=True)
class IdempotentOutcome:
    """The first answer to a request sent with an `Idempotency-Key`: a created task or a bulk change."""

    request_hash: str
    result: Task | BulkOutcome


class IdempotencyKeys(Protocol):
    async def find(self, user_id: str, key: str, since: datetime) -> IdempotentOutcome | None: ...
    async def claim(self, user_id: str, key: str, outcome: IdempotentOutcome, at: datetime, since: datetime) -> bool:
        """Record the outcome for the key; False when a concurrent request with the key got there first."""


class ChangeLog(Protocol):
    """A person's change feed. Recorded changes are written when the unit commits, numbered
    after every event already committed for that person, and vanish with a rollback."""

    def record(self, user_id: str, changes: Sequence[Change]) -> None: ...
    async def position(self, user_id: str) -> int:
        """The position of the person's last committed event (0: none yet)."""

    async def horizon(self, user_id: str) -> int:
        """Events at or below this position were removed by retention (0: none were)."""

    async def read(self, user_id: str, after: int, limit: int) -> list[FeedEvent]:
        """Up to `limit` events after position `after`, in order."""


class ChangeSignal(Protocol):
    """One follower's wake-up call for one person's feed. A wake-up says only that the feed may
    have grown (a commit, or a lost notification channel that came back): the feed is the truth."""

    @property
    def closing(self) -> bool:
        """The process is shutting down: followers should end."""

    async def wait(self) -> None:
        """Return once woken (at once if woken since the last return) or when closing."""

    def cancel(self) -> None:
        """Stop waking this follower."""


class ChangeSignals(Protocol):
    """Wakes the followers of a person's feed when a write of theirs commits, on any replica."""

    def subscribe(self, user_id: str) -> ChangeSignal: ...


class UnitOfWork(Protocol):
    @property
    def tasks(self) -> TaskRepository: ...
    @property
    def changes(self) -> ChangeLog: ...
    @property
    def lists(self) -> ListRepository: ...
    @property
    def idempotency_keys(self) -> IdempotencyKeys: ...
    @property
    def users(self) -> UserRepository: ...
    @property
    def refresh_tokens(self) -> RefreshTokenRepository: ...
    @property
    def rate_limits(self) -> RateLimiter: ...
    @property
    def webhooks(self) -> WebhookRepository: ...
    @property
    def reminders(self) -> ReminderRepository: ...
    @property
    def conversations(self) -> ConversationRepository: ...
    @property
    def sessions(self) -> SessionRepository: ...

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    async def commit(self) -> None:
        """Make the unit's writes durable. A read-only unit refuses: it has nothing to commit."""

    async def rollback(self) -> None:
        """Undo the unit's writes now, on purpose (leaving without a commit does the same)."""


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False) -> UnitOfWork:
        """A new unit; `read_only` when the use case only reads (cheaper, and it cannot write)."""


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...
    async def verify(self, password: str, password_hash: str | None) -> bool:
        """False for a wrong password; with no hash, spend the same time on a dummy and return False."""


class AccessTokens(Protocol):
    @property
    def lifetime_s(self) -> int: ...

    def issue(self, user_id: str, session_id: str) -> str: ...


class TokenVerifier(Protocol):
    async def verify(self, token: str) -> Principal:
        """The principal a bearer token proves; AuthenticationFailed for any token that proves nothing."""


class Clock(Protocol):
    def now(self) -> datetime: ...


class WebhookRepository(Protocol):
    """Every method filters by owner: another person's webhook is indistinguishable from none."""

    async def add(self, user_id: str, new: NewWebhook, secret: str, at: datetime, *, after: int) -> Webhook:
        """Store a webhook that follows the person's feed from after position `after`."""

    async def count(self, user_id: str) -> int: ...
    async def all(self, user_id: str) -> Sequence[Webhook]: ...
    async def get(self, user_id: str, webhook_id: int) -> Webhook | None: ...
    async def delete(self, user_id: str, webhook_id: int) -> bool: ...
    async def deliveries(self, user_id: str, webhook_id: int, limit: int, before: int | None) -> Sequence[Delivery]:
        """Up to `limit + 1` attempts, newest first, with ids below `before`."""


class ConversationRepository(Protocol):
    """Every method filters by owner: another person's conversation is indistinguishable from none."""

    async def add(self, user_id: str, title: str, at: datetime) -> Conversation: ...
    async def get(self, user_id: str, conversation_id: int, *, for_update: bool = False) -> Conversation | None: ...
    async def page(self, user_id: str, limit: int, before: int | None) -> Sequence[Conversation]:
        """Up to `limit + 1` conversations, newest first, with ids below `before`."""

    async def delete(self, user_id: str, conversation_id: int) -> bool:
        """Remove it with its messages; False when there was none."""

    async def append(self, user_id: str, conversation_id: int, messages: Sequence[ChatMessage], at: datetime) -> None:
        """Add the messages in order and mark the conversation updated at `at`."""

    async def messages(
        self, user_id: str, conversation_id: int, limit: int, after: int | None
    ) -> Sequence[ChatMessage]:
        """Up to `limit + 1` messages, oldest first, with ids above `after`."""

    async def recent(self, user_id: str, conversation_id: int, limit: int) -> Sequence[ChatMessage]:
        """The last `limit` messages, oldest first."""


class ChatModel(Protocol):
    """A chat-completions model with tool calling."""

    async def complete(self, messages: Sequence[ChatMessage], tools: Sequence[ToolDefinition]) -> ModelReply:
        """The model's next reply; ServiceUnavailable when the model cannot be reached or fails."""


class AgentTools(Protocol):
    """The tools the assistant may call: the MCP server's, run in process for one person."""

    async def definitions(self) -> Sequence[ToolDefinition]: ...
    async def call(self, user_id: str, name: str, arguments: str) -> ToolOutcome:
        """Run one call; an unknown tool, malformed arguments or a crash is an error outcome, never an exception."""


class TargetGuard(Protocol):
    async def check(self, url: str) -> None:
        """Raise InvalidInput(code="unsafe_webhook_url", field="url") when the URL's host is, or resolves to, an
        address a webhook may not reach (loopback, private, link-local, metadata...)."""


class EventSender(Protocol):
    """Sends one event to where a leased follower points (a webhook's URL, the broker)."""

    async def send(self, lease: Lease, event: FeedEvent) -> SendOutcome: ...


class DeliveryQueue(Protocol):
    """The followers of change feeds (webhooks, or the publisher's per-person cursors) and their
    leases. Each call is a short transaction of its own; nothing is held while sending."""

    async def lease(self, limit: int, lease_s: float) -> list[Lease]:
        """Up to `limit` followers that are due and have events to send, leased for `lease_s`;
        rows another worker holds are skipped, not waited for."""

    async def events(self, user_id: str, after: int, limit: int) -> list[FeedEvent]: ...
    async def advance(self, lease: Lease, position: int, attempt: Attempt | None) -> bool:
        """Move the cursor to `position` (and log `attempt`), keeping the lease; False when the
        lease is no longer ours (it expired and another worker took it)."""

    async def release(
        self,
        lease: Lease,
        position: int,
        *,
        attempts: int,
        retry_in_s: float,
        attempt: Attempt | None = None,
        disabled_reason: str | None = None,
    ) -> bool:
        """End the lease: the cursor at `position`, due again in `retry_in_s`, or disabled."""


class RetentionStore(Protocol):
    """Removes what is older than the retention window, one batch per call; a batch another
    replica is removing is skipped (0), not waited for."""

    async def prune_events(self, older_than_days: int, batch: int) -> int:
        """Delete a batch of old events and raise each person's `pruned_through` over them."""

    async def prune_trash(self, older_than_days: int, batch: int) -> int:
        """Delete a batch of deleted tasks and lists past restoring."""

    async def prune_deliveries(self, older_than_days: int, batch: int) -> int: ...
    async def prune_ended_sessions(self, older_than_days: int, batch: int) -> int:
        """Forget sessions ended before the window (no access token of theirs can still be valid)."""

    async def prune_expired_sessions(self, older_than_days: int, batch: int) -> int:
        """Delete a batch of sessions and refresh tokens that expired before the window."""
