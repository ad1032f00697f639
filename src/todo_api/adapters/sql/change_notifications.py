"""Waking live streams when a person's feed grows, on any replica: the `ChangeSignals` port.

A unit of work that wrote events announces each person's last position once it has committed
(unit_of_work.py): the streams of this process wake at once. Other replicas hear of it in one of
two ways, chosen by EVENTS_WAKEUP:

- `listen` (default unless the pool goes through a transaction-mode pooler): the `ChangeAnnouncer`
  sends `pg_notify('todo_changes', '<user id>:<position>')` in a short transaction of its own, at
  most one batch per 100 ms (`SPACING_S`), and one direct connection per process LISTENs
  (engine/listener.py) and wakes the streams of the person notified. Not in
  the write's own transaction: PostgreSQL serialises the commits of notifying transactions
  cluster-wide (change_log.py). When the connection drops it reconnects with backoff, then wakes
  every stream: each re-reads from its last position, so nothing notified meanwhile is lost. A
  hint never sent (the process died between its COMMIT and the batch) is made up by a slow poll.
- `poll` (default behind PgBouncer in transaction mode, where LISTEN cannot work): one query per
  interval for all people with open streams in this process reads `change_feeds.position` and
  wakes those whose position moved. Nothing is notified.

Either way the stream reads the events from the table (the truth); a wake-up only says "look".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Final

import structlog
from sqlalchemy import String, Text, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY

from todo_api.adapters.sql.change_log import NOTIFY_CHANNEL
from todo_api.adapters.sql.engine import ChannelListener, Connection, ConnectionPool, ListenerOptions, Statement
from todo_api.adapters.sql.tables import change_feeds
from todo_api.domain.errors import DomainError

log = structlog.get_logger("todo_api.events")

_POSITIONS: Final = Statement(
    select(change_feeds.c.user_id, change_feeds.c.position).where(
        change_feeds.c.user_id == any_(bindparam("owners", type_=ARRAY(String)))
    )
)
_payloads = func.unnest(bindparam("payloads", type_=ARRAY(Text))).table_valued("payload").render_derived()
_NOTIFY: Final = Statement(select(func.pg_notify(NOTIFY_CHANNEL, _payloads.c.payload)).select_from(_payloads))
RECONCILE_S: Final = 10.0
"""How often a listening process also polls, for hints another process never sent."""
SPACING_S: Final = 0.1
"""At most one batch per process this often. After a quiet spell an announcement leaves at once;
under load one NOTIFY carries the writes of 100 ms, since each is a transaction PostgreSQL commits
and flushes (sent every 10 ms, they cost a create 3-5% of its throughput), at the cost of up to
100 ms on another replica."""


class _Signal:
    """One stream's wake-up: an event set by the hub, cleared when the stream wakes."""

    __slots__ = ("_event", "_hub", "user_id")

    def __init__(self, hub: ChangeSignalHub, user_id: str) -> None:
        self._hub, self.user_id, self._event = hub, user_id, asyncio.Event()

    @property
    def closing(self) -> bool:
        return self._hub.closing

    async def wait(self) -> None:
        await self._event.wait()
        self._event.clear()

    def cancel(self) -> None:
        self._hub.unsubscribe(self)

    def wake(self) -> None:
        self._event.set()


class ChangeSignalHub:
    """The streams of this process by person; what a notification or a poll wakes."""

    def __init__(self) -> None:
        self._by_user: dict[str, set[_Signal]] = {}
        self.closing = False

    def subscribe(self, user_id: str) -> _Signal:
        signal = _Signal(self, user_id)
        self._by_user.setdefault(user_id, set()).add(signal)
        if self.closing:
            signal.wake()
        return signal

    def unsubscribe(self, signal: _Signal) -> None:
        signals = self._by_user.get(signal.user_id)
        if signals is not None:
            signals.discard(signal)
            if not signals:
                del self._by_user[signal.user_id]

    def wake(self, user_id: str) -> None:
        for signal in self._by_user.get(user_id, ()):
            signal.wake()

    def wake_all(self) -> None:
        for signals in self._by_user.values():
            for signal in signals:
                signal.wake()

    def users(self) -> list[str]:
        return list(self._by_user)

    @property
    def watched(self) -> Mapping[str, object]:
        """The people with a stream open here."""
        return self._by_user

    def streams(self) -> int:
        return sum(len(signals) for signals in self._by_user.values())

    def close(self) -> None:
        """Every stream ends (shutdown): they see `closing` when they wake."""
        self.closing = True
        self.wake_all()


class ChangeAnnouncer:
    """NOTIFYs other processes of committed writes, one statement per batch and at most one batch
    per `spacing_s`: what is announced until the next may leave goes in one, so a busy process
    takes the cluster-wide NOTIFY lock once for many writes. A batch that failed, for whatever
    reason, is merged back and retried with backoff."""

    def __init__(
        self, pool: ConnectionPool, local: ChangeSignalHub | None = None, spacing_s: float = SPACING_S
    ) -> None:
        self._pool, self._local, self._spacing_s = pool, local, spacing_s
        self._next_at = 0.0  # the event loop's clock: when the next batch may leave
        self._pending: dict[str, int] = {}
        self._sending: asyncio.Task[None] | None = None
        self._closed = False
        self.batches = 0

    def announce(self, positions: Mapping[str, int]) -> None:
        if self._local is not None:
            for user_id in positions:
                self._local.wake(user_id)
        if self._closed:  # shutting down: the other processes' slow polls will see these
            return
        self._merge(positions)
        if self._sending is None:
            self._sending = asyncio.get_running_loop().create_task(self._send(), name="change-announcer")

    def _merge(self, positions: Mapping[str, int]) -> None:
        pending = self._pending
        for user_id, position in positions.items():
            if pending.get(user_id, 0) < position:
                pending[user_id] = position

    async def _send(self) -> None:
        loop, failures = asyncio.get_running_loop(), 0
        try:
            while self._pending:
                if (wait := self._next_at - loop.time()) > 0:
                    await asyncio.sleep(wait)
                batch, self._pending = self._pending, {}
                self._next_at = loop.time() + self._spacing_s
                try:
                    # Read-only in the engine's sense: autocommit, so one round trip (NOTIFY writes no row).
                    async with Connection(self._pool, read_only=True) as connection:
                        await _NOTIFY.execute(connection, payloads=[f"{u}:{p}" for u, p in batch.items()])
                except Exception as error:  # keep them for the next try; the streams' slow poll covers the rest
                    self._merge(batch)
                    failures += 1
                    if failures == 1 and isinstance(error, DomainError):  # the database is away
                        log.warning("announce_failed", code=error.code, people=len(batch))
                    elif failures == 1:  # a bug, or a server this statement cannot run on: never the sender's end
                        log.exception("announce_failed", people=len(batch))
                    await asyncio.sleep(min(5.0, 0.05 * 2**failures))
                    continue
                failures = 0
                self.batches += 1
        finally:
            self._sending = None

    async def close(self, timeout_s: float = 5.0) -> None:
        """Send what is pending (for at most `timeout_s`), then stop."""
        self._closed = True
        if (task := self._sending) is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), timeout_s)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class ListeningSignals:
    """`ChangeSignals` over LISTEN on one direct connection, NOTIFY after the commit, and a slow
    poll for what was never notified (see the module's docstring)."""

    def __init__(self, options: ListenerOptions, pool: ConnectionPool, reconcile_s: float = RECONCILE_S) -> None:
        self.hub = ChangeSignalHub()
        self.listener = ChannelListener(options, self._notified, self._reconnected)
        self.announcer = ChangeAnnouncer(pool, self.hub)
        self._reconcile = PollingSignals(pool, reconcile_s, self.hub)
        self._own: dict[str, int] = {}
        """Positions this process announced, woken already: their NOTIFY's echo wakes nobody again."""

    def subscribe(self, user_id: str) -> _Signal:
        return self.hub.subscribe(user_id)

    def announce(self, positions: Mapping[str, int]) -> None:
        for user_id, position in positions.items():
            if user_id in self.hub.watched:
                self._own[user_id] = max(position, self._own.get(user_id, 0))
        self.announcer.announce(positions)

    def _notified(self, payload: str) -> None:
        user_id, _, position = payload.rpartition(":")
        own = self._own.get(user_id)
        if own is not None and position.isdigit() and int(position) <= own:
            if int(position) == own:
                del self._own[user_id]
            return
        self.hub.wake(user_id)

    def _reconnected(self) -> None:
        self._own.clear()
        self.hub.wake_all()

    async def start(self) -> None:
        self.listener.start()
        await self._reconcile.start()

    def begin_shutdown(self) -> None:
        self.hub.close()

    async def close(self) -> None:
        self.hub.close()
        await self.announcer.close()
        await self._reconcile.close()
        await self.listener.close()


class PollingSignals:
    """`ChangeSignals` by polling `change_feeds` once per interval for every person with a stream
    open in this process: one indexed query (primary key lookups) whatever the number of streams."""

    def __init__(self, pool: ConnectionPool, interval_s: float, hub: ChangeSignalHub | None = None) -> None:
        self.hub = hub or ChangeSignalHub()
        self._pool, self._interval_s = pool, interval_s
        self._seen: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self.polls = 0

    def subscribe(self, user_id: str) -> _Signal:
        return self.hub.subscribe(user_id)

    def announce(self, positions: Mapping[str, int]) -> None:
        """This process's own writes: its streams wake at once; the others' find them by polling."""
        for user_id in positions:
            self.hub.wake(user_id)

    async def poll_once(self) -> None:
        """Wake the people whose feed moved since the last poll (and those seen for the first
        time: their streams may have read just before a commit this poll is the first to see)."""
        users = self.hub.users()
        self._seen = {user_id: self._seen.get(user_id, -1) for user_id in users}
        if not users:
            return
        async with Connection(self._pool, read_only=True) as connection:
            rows = await _POSITIONS.fetch(connection, owners=users)
        self.polls += 1
        for row in rows:
            user_id, position = row["user_id"], int(row["position"])
            if self._seen.get(user_id) != position:
                if user_id in self._seen:
                    self._seen[user_id] = position
                self.hub.wake(user_id)

    async def _run(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.poll_once()
            except DomainError as error:  # the database is unavailable: try again next interval
                if not failing:
                    log.warning("poll_failed", code=error.code)
                failing = True
                continue
            if failing:  # back: whatever committed meanwhile may be unseen by some stream
                failing = False
                self.hub.wake_all()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="change-poller")

    def begin_shutdown(self) -> None:
        self.hub.close()

    async def close(self) -> None:
        self.hub.close()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
