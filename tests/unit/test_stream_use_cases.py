"""Following the feed live (use_cases/streams.py) over the fakes: where a stream starts, what it
sends, when it ends, the per-person cap, shared reads, and stream tickets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from tests.unit.fakes import FakeChangeSignals, FakeClock, FakeUnitOfWorkFactory
from tests.unit.http.backend import FakeBackend
from todo_api.domain.changes import FeedEvent
from todo_api.domain.errors import AuthenticationFailed, Gone, RateLimited, ServiceUnavailable
from todo_api.domain.sessions import RefreshToken
from todo_api.domain.users import Principal
from todo_api.logging import _scrub_text
from todo_api.use_cases.streams import (
    HEARTBEAT,
    ChangeStream,
    FollowChanges,
    IssueStreamTicket,
    RedeemStreamTicket,
    SharedCalls,
    StreamEnd,
    StreamItem,
    StreamOptions,
    StreamTicketCodec,
)

ADA = "a" * 32
FAMILY = "family-of-ada"
FAST = StreamOptions(heartbeat_s=0.05, session_check_s=0.05, max_per_user=2, batch=2)


@pytest.fixture
def backend() -> FakeBackend:
    backend = FakeBackend()
    backend.add_user(ADA, token="ada-token")
    now = backend.clock.now()
    backend.store.refresh_tokens["h"] = RefreshToken("h", FAMILY, ADA, now, now + timedelta(days=1))
    return backend


def feed_position(backend: FakeBackend) -> int:
    feed = backend.store.events.get(ADA, [])
    return feed[-1].position if feed else 0


def follow(backend: FakeBackend, options: StreamOptions = FAST) -> FollowChanges:
    return FollowChanges(backend.uow, backend.signals, backend.clock, options)


def ada(**changes: object) -> Principal:
    return Principal(ADA, session_id=FAMILY, **changes)  # type: ignore[arg-type]


async def items(stream: ChangeStream, count: int, timeout_s: float = 1.0) -> list[StreamItem]:
    """The next `count` items that are not heartbeats."""
    got: list[StreamItem] = []
    iterator: AsyncIterator[StreamItem] = aiter(stream)
    async with asyncio.timeout(timeout_s):
        while len(got) < count:
            item = await anext(iterator)
            if item is not HEARTBEAT:
                got.append(item)
            if isinstance(item, StreamEnd):  # the last item: the stream is over (and lets go of its slot)
                with pytest.raises(StopAsyncIteration):
                    await anext(iterator)
    return got


def positions(found: list[StreamItem]) -> list[int]:
    return [item.position for item in found if isinstance(item, FeedEvent)]


async def test_without_a_resume_point_a_stream_starts_at_the_feed_position_now(backend: FakeBackend) -> None:
    await backend.add_task(ADA, "before")
    stream = await follow(backend).open(ada(), None)
    start = feed_position(backend)
    assert stream.position == start > 0

    await backend.add_task(ADA, "after")
    backend.signals.wake(ADA)

    assert positions(await items(stream, 1)) == [start + 1]


async def test_a_resume_point_replays_what_followed_it_in_pages_then_follows_live(backend: FakeBackend) -> None:
    await backend.add_task(ADA, "one")
    start = feed_position(backend)
    for title in ("two", "three", "four", "five"):
        await backend.add_task(ADA, title)
    stream = await follow(backend).open(ada(), start)
    iterator = aiter(stream)

    replayed = [await anext(iterator) for _ in range(4)]  # batches of 2: no wake-up needed between them
    await backend.add_task(ADA, "six")
    backend.signals.wake(ADA)

    assert positions(replayed) == [start + 1, start + 2, start + 3, start + 4]
    assert positions([await anext(iterator)]) == [start + 5]


async def test_a_resume_point_past_retention_is_gone_and_frees_the_slot(backend: FakeBackend) -> None:
    for _ in range(3):
        await backend.add_task(ADA)
    backend.store.pruned_through[ADA] = feed_position(backend) - 1
    follower = follow(backend)

    with pytest.raises(Gone) as raised:
        await follower.open(ada(), feed_position(backend) - 2)

    assert raised.value.code == "sync_token_expired"
    assert follower.slots.open(ADA) == 0
    assert backend.signals.subscribed == []


async def test_past_the_cap_opening_is_rate_limited_until_a_stream_closes(backend: FakeBackend) -> None:
    follower = follow(backend)
    first = await follower.open(ada(), None)
    await follower.open(ada(), None)

    with pytest.raises(RateLimited) as raised:
        await follower.open(ada(), None)
    assert raised.value.retry_after_s == FAST.retry_after_s

    first.close()
    first.close()  # twice is harmless
    await follower.open(ada(), None)
    assert follower.slots.open(ADA) == 2


async def test_an_idle_stream_sends_heartbeats(backend: FakeBackend) -> None:
    stream = await follow(backend).open(Principal(ADA), None)
    async with asyncio.timeout(1):
        assert await anext(aiter(stream)) is HEARTBEAT


async def test_the_stream_ends_when_the_token_expires(backend: FakeBackend) -> None:
    stream = await follow(backend).open(ada(expires_at=backend.clock.now() + timedelta(minutes=1)), None)
    backend.clock.advance(61)
    backend.signals.wake(ADA)

    assert await items(stream, 1) == [StreamEnd("token_expired")]
    assert backend.signals.subscribed == []


async def test_an_expired_token_opens_nothing(backend: FakeBackend) -> None:
    with pytest.raises(AuthenticationFailed):
        await follow(backend).open(ada(expires_at=backend.clock.now()), None)


async def test_the_stream_ends_when_its_session_is_logged_out(backend: FakeBackend) -> None:
    follower = follow(backend)
    stream = await follower.open(ada(), None)
    backend.store.refresh_tokens["h"] = RefreshToken("h", FAMILY, ADA, backend.clock.now(), backend.clock.now())

    assert await items(stream, 1) == [StreamEnd("session_ended")]
    assert follower.slots.open(ADA) == 0


async def test_a_logged_out_session_opens_nothing(backend: FakeBackend) -> None:
    with pytest.raises(AuthenticationFailed) as raised:
        await follow(backend).open(Principal(ADA, session_id="gone"), None)
    assert raised.value.code == "session_ended"


async def test_shutdown_ends_streams_and_refuses_new_ones(backend: FakeBackend) -> None:
    follower = follow(backend)
    stream = await follower.open(ada(), None)
    backend.signals.close()

    assert await items(stream, 1) == [StreamEnd("shutdown")]
    with pytest.raises(ServiceUnavailable):
        await follower.open(ada(), None)


async def test_a_stream_that_fell_behind_retention_ends_rather_than_skip_events(backend: FakeBackend) -> None:
    await backend.add_task(ADA)
    stream = await follow(backend).open(ada(), None)
    for _ in range(3):
        await backend.add_task(ADA)
    sent = stream.position
    # Retention took the first two events after the stream's position before they were sent.
    backend.store.events[ADA] = [event for event in backend.store.events[ADA] if event.position > sent + 2]
    backend.signals.wake(ADA)

    assert await items(stream, 1) == [StreamEnd("fell_behind")]


async def test_without_change_signals_streams_are_unavailable() -> None:
    uow = FakeUnitOfWorkFactory()
    with pytest.raises(ServiceUnavailable):
        await FollowChanges(uow, None, FakeClock(), FAST).open(Principal(ADA), None)


async def test_concurrent_reads_of_one_feed_at_one_position_share_one_query() -> None:
    calls = 0

    async def read() -> list[int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return [1, 2]

    shared: SharedCalls[str, list[int]] = SharedCalls()
    results = await asyncio.gather(*(shared.run("ada@0", read) for _ in range(1000)))

    assert calls == 1
    assert all(result == [1, 2] for result in results)
    await shared.run("ada@0", read)
    assert calls == 2  # finished runs are not cached


async def test_a_waiter_that_leaves_does_not_cancel_the_shared_read() -> None:
    release = asyncio.Event()

    async def read() -> str:
        await release.wait()
        return "events"

    shared: SharedCalls[str, str] = SharedCalls()
    leaving = asyncio.ensure_future(shared.run("k", read))
    staying = asyncio.ensure_future(shared.run("k", read))
    await asyncio.sleep(0)
    leaving.cancel()
    release.set()

    assert await staying == "events"


# --- Tickets -------------------------------------------------------------------------------------


def tickets(backend: FakeBackend, key: bytes = b"k" * 32) -> tuple[IssueStreamTicket, RedeemStreamTicket]:
    codec = StreamTicketCodec(key)
    return IssueStreamTicket(codec, backend.clock, 30), RedeemStreamTicket(codec, backend.uow, backend.clock, 30)


async def test_a_ticket_carries_user_session_and_token_expiry_once(backend: FakeBackend) -> None:
    issue, redeem = tickets(backend)
    expires = backend.clock.now() + timedelta(minutes=10)
    ticket = issue.execute(ada(expires_at=expires))

    assert ticket.expires_at == backend.clock.now() + timedelta(seconds=30)
    assert await redeem.execute(ticket.value) == ada(expires_at=expires)
    with pytest.raises(AuthenticationFailed) as reused:
        await redeem.execute(ticket.value)
    assert reused.value.code == "ticket_used"


async def test_a_ticket_lives_no_longer_than_its_token(backend: FakeBackend) -> None:
    issue, redeem = tickets(backend)
    ticket = issue.execute(ada(expires_at=backend.clock.now() + timedelta(seconds=5)))
    backend.clock.advance(6)

    with pytest.raises(AuthenticationFailed) as raised:
        await redeem.execute(ticket.value)
    assert raised.value.code == "ticket_expired"


@pytest.mark.parametrize("tamper", ["other key", "edited", "garbage"])
async def test_a_ticket_not_signed_by_us_is_invalid(backend: FakeBackend, tamper: str) -> None:
    issue, redeem = tickets(backend)
    value = issue.execute(ada()).value
    if tamper == "other key":
        value = tickets(backend, b"x" * 32)[0].execute(ada()).value
    elif tamper == "edited":
        prefix, body, signature = value.split(".")
        value = f"{prefix}.{body[:-1]}{'A' if body[-1] != 'A' else 'B'}.{signature}"
    else:
        value = "st1.not.base64!"

    with pytest.raises(AuthenticationFailed) as raised:
        await redeem.execute(value)
    assert raised.value.code == "invalid_ticket"


def test_tickets_are_redacted_from_logged_text() -> None:
    line = "GET /api/me/events?ticket=st1.eyJ1IjoiYWRhIn0.c2lnbmF0dXJlc2lnbmF0dXJl HTTP/1.1"
    scrubbed = _scrub_text(line)
    assert "st1." not in scrubbed
    assert "c2lnbmF0dXJl" not in scrubbed


def test_fake_change_signals_wake_only_the_person_notified() -> None:
    signals = FakeChangeSignals()
    ada_signal, bob_signal = signals.subscribe(ADA), signals.subscribe("b" * 32)
    signals.wake(ADA)
    assert ada_signal.woken.is_set()
    assert not bob_signal.woken.is_set()
