"""Following a person's change feed live (GET /api/{user_id}/events), and the stream tickets that let
a browser's EventSource, which cannot send an Authorization header, open such a stream.

A stream starts at a position (the resume point the client names, else the feed's position now),
reads what follows from the feed, then sleeps until a `ChangeSignal` says the feed may have grown
and reads again. The feed is the truth, a signal only a wake-up: a signal that is lost, doubled or
spurious (a reconnected listener wakes everyone) costs at most a read, never an event.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import math
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Generic, Literal, TypeVar

from todo_api.domain.changes import FeedEvent
from todo_api.domain.errors import AuthenticationFailed, RateLimited, ServiceUnavailable
from todo_api.domain.ports import ChangeSignal, ChangeSignals, Clock, UnitOfWorkFactory
from todo_api.domain.users import Principal
from todo_api.use_cases.changes import changes_after
from todo_api.use_cases.retries import retry_transient

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class StreamOptions:
    heartbeat_s: float = 15.0
    """A comment line this often keeps proxies from closing an idle stream."""
    session_check_s: float = 20.0
    """How often a stream asks whether its session was logged out."""
    max_per_user: int = 5
    """Open streams per person, per process (see `FollowChanges`)."""
    retry_after_s: int = 10
    """What a person over the cap is told to wait."""
    batch: int = 100
    """Events per read while catching up."""


class Heartbeat:
    """Nothing happened; say so, so that idle connections stay open."""

    __slots__ = ()


HEARTBEAT: Final = Heartbeat()

EndReason = Literal["token_expired", "session_ended", "shutdown", "fell_behind"]


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last item of a stream: why it ends. `fell_behind`: retention removed events the stream
    had not sent yet (a resume from its last position then answers 410)."""

    reason: EndReason


StreamItem = FeedEvent | Heartbeat | StreamEnd


class StreamSlots:
    """Open streams per person in this process."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: dict[str, int] = {}

    def take(self, user_id: str, retry_after_s: int) -> None:
        count = self._open.get(user_id, 0)
        if count >= self._limit:
            raise RateLimited(
                f"You have {count} event streams open; close one (or wait) before opening another.",
                retry_after_s=retry_after_s,
            )
        self._open[user_id] = count + 1

    def give_back(self, user_id: str) -> None:
        count = self._open.get(user_id, 0) - 1
        if count > 0:
            self._open[user_id] = count
        else:
            self._open.pop(user_id, None)

    def open(self, user_id: str) -> int:
        return self._open.get(user_id, 0)


class SharedCalls(Generic[K, V]):
    """Concurrent calls with one key share one run: a commit that wakes a person's 1,000 streams
    costs one read of the feed, not 1,000. A waiter that is cancelled (its client left) does not
    cancel the run the others wait for."""

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[V]] = {}

    async def run(self, key: K, call: Callable[[], Awaitable[V]]) -> V:
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(call())
            self._running[key] = running
            running.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(running)

    def _finished(self, key: K, done: asyncio.Future[V]) -> None:
        if self._running.get(key) is done:
            del self._running[key]
        if not done.cancelled():
            done.exception()  # retrieved: no "never retrieved" warning when every waiter left


class FollowChanges:
    """Opens live streams of a person's feed.

    The cap on open streams (`StreamOptions.max_per_user`) is counted per process: with W workers
    on R replicas a person may hold up to W x R x cap streams. Counting across replicas would need
    a shared counter that a crashed process cannot leave taken (leases renewed by every stream);
    the cap exists to stop one client from exhausting one worker's memory and sockets, which a
    per-process count does.
    """

    def __init__(self, uow: UnitOfWorkFactory, signals: ChangeSignals | None, clock: Clock, options: StreamOptions):
        self._uow, self._signals, self._clock, self.options = uow, signals, clock, options
        self.slots = StreamSlots(options.max_per_user)
        self._reads: SharedCalls[tuple[str, int], list[FeedEvent]] = SharedCalls()
        self._checks: SharedCalls[str, bool] = SharedCalls()

    async def open(self, principal: Principal, since: int | None) -> ChangeStream:
        """A stream after `since` (None: after the feed's position now). Every refusal happens
        here, before a byte is streamed: 401 for an expired token or a logged-out session, 410 for
        a resume point retention has passed, 429 past the cap, 503 while the process shuts down."""
        if self._signals is None:
            raise ServiceUnavailable("Live events are not available on this server.", code="events_unavailable")
        user_id = principal.user_id
        if principal.expires_at is not None and principal.expires_at <= self._clock.now():
            raise AuthenticationFailed("The access token has expired.", code="invalid_token")
        self.slots.take(user_id, self.options.retry_after_s)
        try:
            signal = self._signals.subscribe(user_id)  # before reading: a commit after the read wakes it
            try:
                if signal.closing:
                    raise ServiceUnavailable("The server is shutting down; reconnect.", retry_after_s=1)
                position = await self._start(principal, since)
            except BaseException:
                signal.cancel()
                raise
        except BaseException:
            self.slots.give_back(user_id)
            raise
        return ChangeStream(self, principal, position, signal)

    async def _start(self, principal: Principal, since: int | None) -> int:
        async with self._uow(read_only=True) as uow:
            if principal.session_id is not None and not await uow.refresh_tokens.family_live(
                principal.session_id, self._clock.now()
            ):
                raise AuthenticationFailed("This session has ended; log in again.", code="session_ended")
            if since is None:
                return await uow.changes.position(principal.user_id)
            await changes_after(uow, principal.user_id, since, 1)  # 410 sync_token_expired when retention passed it
            return since

    async def read(self, user_id: str, after: int) -> list[FeedEvent]:
        return await self._reads.run((user_id, after), lambda: self._read(user_id, after))

    async def _read(self, user_id: str, after: int) -> list[FeedEvent]:
        async with self._uow(read_only=True) as uow:
            return await uow.changes.read(user_id, after, self.options.batch)

    async def session_live(self, session_id: str) -> bool:
        return await self._checks.run(session_id, lambda: self._session_live(session_id))

    async def _session_live(self, session_id: str) -> bool:
        async with self._uow(read_only=True) as uow:
            return await uow.refresh_tokens.family_live(session_id, self._clock.now())

    def now(self) -> datetime:
        return self._clock.now()


class ChangeStream:
    """One open stream: iterate it for events, heartbeats and, last, why it ended; `close()` frees
    its slot (the HTTP adapter calls it however the response ends)."""

    def __init__(self, owner: FollowChanges, principal: Principal, position: int, signal: ChangeSignal) -> None:
        self._owner, self.principal, self.position, self._signal = owner, principal, position, signal
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._signal.cancel()
            self._owner.slots.give_back(self.principal.user_id)

    def __aiter__(self) -> AsyncIterator[StreamItem]:
        return self._follow()

    async def _follow(self) -> AsyncIterator[StreamItem]:
        options, principal, signal = self._owner.options, self.principal, self._signal
        loop = asyncio.get_running_loop()
        next_heartbeat = loop.time() + options.heartbeat_s
        next_check = loop.time() + options.session_check_s
        woken = True
        try:
            while True:
                while woken:  # catch up: read until a short page
                    events = await self._owner.read(principal.user_id, self.position)
                    if events and events[0].position != self.position + 1:
                        yield StreamEnd("fell_behind")
                        return
                    for event in events:
                        yield event
                        self.position = event.position
                    if events:
                        next_heartbeat = loop.time() + options.heartbeat_s
                    woken = len(events) >= options.batch
                if signal.closing:
                    yield StreamEnd("shutdown")
                    return
                left_s = math.inf
                if principal.expires_at is not None:
                    left_s = (principal.expires_at - self._owner.now()).total_seconds()
                    if left_s <= 0:
                        yield StreamEnd("token_expired")
                        return
                now = loop.time()
                if principal.session_id is not None and now >= next_check:
                    if not await self._owner.session_live(principal.session_id):
                        yield StreamEnd("session_ended")
                        return
                    next_check = loop.time() + options.session_check_s
                if now >= next_heartbeat:
                    yield HEARTBEAT
                    next_heartbeat = loop.time() + options.heartbeat_s
                wait_s = min(next_heartbeat, next_check if principal.session_id else math.inf) - loop.time()
                woken = await _woken(signal, max(0.0, min(wait_s, left_s)))
        finally:
            self.close()


async def _woken(signal: ChangeSignal, timeout_s: float) -> bool:
    try:
        async with asyncio.timeout(timeout_s):
            await signal.wait()
    except TimeoutError:
        return False
    return True


# --- Stream tickets ----------------------------------------------------------------------------------

_TICKET_PREFIX: Final = "st1"
_TICKET_KEY_PURPOSE: Final = b"todo-api stream tickets v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class StreamTicket:
    value: str
    expires_at: datetime


class StreamTicketCodec:
    """Signs what a ticket vouches for (HMAC-SHA256 under a key derived from the app's secret, so
    any replica can check it) and reads it back; anything altered or malformed is None."""

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, _TICKET_KEY_PURPOSE, hashlib.sha256).digest()

    def encode(self, claims: dict[str, Any]) -> str:
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{_TICKET_PREFIX}.{body}.{self._sign(body)}"

    def decode(self, ticket: str) -> dict[str, Any] | None:
        prefix, _, rest = ticket.partition(".")
        body, _, signature = rest.partition(".")
        if prefix != _TICKET_PREFIX or not body or not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            claims = json.loads(_unb64(body))
        except (ValueError, binascii.Error):
            return None
        return claims if isinstance(claims, dict) else None

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())


class IssueStreamTicket:
    """A ticket for one stream: valid `lifetime_s` (at most until the access token expires), bound
    to the person, their session and their token's expiry, so a stream opened with it ends when
    the token would have."""

    def __init__(self, codec: StreamTicketCodec, clock: Clock, lifetime_s: int = 30) -> None:
        self._codec, self._clock, self._lifetime = codec, clock, timedelta(seconds=lifetime_s)

    def execute(self, principal: Principal) -> StreamTicket:
        now = self._clock.now()
        expires_at = now + self._lifetime
        if principal.expires_at is not None:
            expires_at = min(expires_at, principal.expires_at)
        claims = {
            "u": principal.user_id,
            "s": principal.session_id,
            "x": principal.expires_at.timestamp() if principal.expires_at is not None else None,
            "e": expires_at.timestamp(),
            "n": secrets.token_urlsafe(16),
            "ext": principal.external,
        }
        return StreamTicket(self._codec.encode(claims), expires_at)


class RedeemStreamTicket:
    """The principal a ticket vouches for, once. The ticket is spent in the database (a counter in
    the shared throttling table, keyed by the ticket's nonce), so a second use fails on any replica."""

    def __init__(self, codec: StreamTicketCodec, uow: UnitOfWorkFactory, clock: Clock, lifetime_s: int = 30) -> None:
        self._codec, self._uow, self._clock, self._lifetime_s = codec, uow, clock, lifetime_s

    async def execute(self, ticket: str) -> Principal:
        claims = self._codec.decode(ticket)
        if claims is None or not _well_formed(claims):
            raise AuthenticationFailed("The stream ticket is invalid.", code="invalid_ticket")
        if claims["e"] <= self._clock.now().timestamp():
            raise AuthenticationFailed("The stream ticket has expired; ask for another.", code="ticket_expired")
        if not await self._spend(claims["n"]):
            raise AuthenticationFailed("The stream ticket was already used; ask for another.", code="ticket_used")
        return Principal(
            user_id=claims["u"],
            session_id=claims["s"],
            external=claims["ext"],
            expires_at=datetime.fromtimestamp(claims["x"], UTC) if claims["x"] is not None else None,
        )

    @retry_transient
    async def _spend(self, nonce: str) -> bool:
        async with self._uow() as uow:
            # The window outlives the ticket, so the mark is still there for as long as the ticket could be shown.
            wait = await uow.rate_limits.acquire(f"stream-ticket:{nonce}", limit=1, window_s=self._lifetime_s + 60)
            await uow.commit()
        return wait is None


def _well_formed(claims: dict[str, Any]) -> bool:
    number = (int, float)
    return (
        isinstance(claims.get("u"), str)
        and isinstance(claims.get("s"), str | None)
        and isinstance(claims.get("x"), (*number, type(None)))
        and isinstance(claims.get("e"), number)
        and isinstance(claims.get("n"), str)
        and isinstance(claims.get("ext"), bool)
    )
