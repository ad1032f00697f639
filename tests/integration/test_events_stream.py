"""GET /api/{user_id}/events on a real uvicorn and PostgreSQL: live events, resuming without loss,
410 past retention, stream tickets, the per-person cap, and the ends (logout, token expiry)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from jose import jwt

from tests.integration.conftest import TEST_SECRET, make_settings
from tests.integration.sse_support import open_stream, served, stream_refused
from tests.integration.tasks_support import PASSWORD, User, assert_problem, create_task, sign_up
from todo_api.adapters.security.tokens import JwtAccessTokens
from todo_api.domain.users import Principal
from todo_api.main import create_app
from todo_api.use_cases.streams import IssueStreamTicket, StreamTicketCodec

EVENTS = "/api/me/events"
TICKETS = "/api/me/events/tickets"
MAX_STREAMS = 3
HEARTBEAT_S = 0.3
SESSION_CHECK_S = 0.3


@pytest.fixture(scope="module")
async def base_url(database_url: str) -> AsyncIterator[str]:
    settings = make_settings(
        events_heartbeat_s=HEARTBEAT_S,
        events_session_check_s=SESSION_CHECK_S,
        events_max_streams_per_user=MAX_STREAMS,
    )
    app: FastAPI = create_app(settings, database_url=database_url)
    async with served(app) as url:
        yield url


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        yield client


async def signed_up(http: httpx.AsyncClient) -> tuple[User, str]:
    """A new user and their refresh token."""
    response = await http.post(
        "/api/auth/signup", json={"email": f"{time.time_ns()}@example.com", "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return User(body["user"]["id"], {"Authorization": f"Bearer {body['access_token']}"}), body["refresh_token"]


async def position_now(http: httpx.AsyncClient, user: User) -> int:
    """The user's feed position (signing up already recorded their Inbox's creation)."""
    response = await http.get("/api/me/changes", headers=user.headers)
    assert response.status_code == 200, response.text
    return int(response.json()["meta"]["sync_token"])


async def test_a_stream_receives_a_task_created_through_the_api(http: httpx.AsyncClient) -> None:
    user = await sign_up(http)
    start = await position_now(http, user)
    async with open_stream(http, EVENTS, headers=user.headers) as stream:
        task = await create_task(http, user, title="Buy oat milk")

        frame = await stream.next_event(timeout_s=2)

    event = frame.json()
    assert frame.event == "task.created"
    assert frame.id == str(event["position"]) == str(start + 1)
    assert event["specversion"] == "1.0"
    assert event["subject"] == f"tasks/{task['id']}"
    assert event["data"]["title"] == "Buy oat milk"


async def test_without_a_resume_point_the_stream_starts_at_the_current_position(http: httpx.AsyncClient) -> None:
    user = await sign_up(http)
    await create_task(http, user, title="Before")
    start = await position_now(http, user)
    async with open_stream(http, EVENTS, headers=user.headers) as stream:
        await create_task(http, user, title="After")
        frame = await stream.next_event()
    assert (frame.id, frame.json()["data"]["title"]) == (str(start + 1), "After")


async def test_last_event_id_replays_exactly_the_missed_events_in_order_then_live_ones(
    http: httpx.AsyncClient,
) -> None:
    user = await sign_up(http)
    await create_task(http, user, title="one")
    seen = await position_now(http, user)
    for title in ("two", "three", "four"):
        await create_task(http, user, title=title)

    async with open_stream(http, EVENTS, headers={**user.headers, "Last-Event-ID": str(seen)}) as stream:
        replayed = [await stream.next_event() for _ in range(3)]
        await stream.no_event_within(0.3)
        await create_task(http, user, title="five")
        live = await stream.next_event()

    assert [(frame.id, frame.json()["data"]["title"]) for frame in replayed] == [
        (str(seen + 1), "two"),
        (str(seen + 2), "three"),
        (str(seen + 3), "four"),
    ]
    assert (live.id, live.json()["data"]["title"]) == (str(seen + 4), "five")


@pytest.mark.parametrize("parameter", ["last_event_id", "since"])
async def test_a_client_that_cannot_set_headers_resumes_with_a_query(http: httpx.AsyncClient, parameter: str) -> None:
    user = await sign_up(http)
    for title in ("one", "two"):
        await create_task(http, user, title=title)
    async with open_stream(http, EVENTS, headers=user.headers, params={parameter: "1"}) as stream:
        frame = await stream.next_event()
    assert frame.id == "2"


async def test_a_position_older_than_retention_is_410_before_the_stream_starts(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = await sign_up(http)
    for _ in range(3):
        await create_task(http, user)
    await db.execute("UPDATE change_feeds SET pruned_through = 2 WHERE user_id = $1", user.id)
    await db.execute("DELETE FROM events WHERE user_id = $1 AND position <= 2", user.id)

    response = await stream_refused(http, EVENTS, headers={**user.headers, "Last-Event-ID": "1"})

    assert_problem(response, 410, "sync_token_expired")
    async with open_stream(http, EVENTS, headers={**user.headers, "Last-Event-ID": "2"}) as stream:
        assert (await stream.next_event()).id == "3"


async def test_a_position_the_feed_never_reached_is_410(http: httpx.AsyncClient) -> None:
    user = await sign_up(http)
    response = await stream_refused(http, EVENTS, headers={**user.headers, "Last-Event-ID": "99"})
    assert_problem(response, 410, "sync_token_expired")


async def test_a_malformed_last_event_id_is_422(http: httpx.AsyncClient) -> None:
    user = await sign_up(http)
    response = await stream_refused(http, EVENTS, headers={**user.headers, "Last-Event-ID": "abc"})
    assert_problem(response, 422)


async def test_heartbeats_keep_an_idle_stream_open(http: httpx.AsyncClient) -> None:
    user = await sign_up(http)
    async with open_stream(http, EVENTS, headers=user.headers) as stream:
        frame = await stream.next_frame(timeout_s=HEARTBEAT_S * 5)
    assert frame.comments == ["keep-alive"]
    assert frame.event is None


# --- Tickets -------------------------------------------------------------------------------------


async def test_a_ticket_opens_a_stream_without_an_authorization_header(http: httpx.AsyncClient) -> None:
    user = await sign_up(http)
    issued = await http.post(TICKETS, headers=user.headers)
    assert issued.status_code == 201, issued.text
    assert issued.headers["cache-control"] == "no-store"
    body = issued.json()
    assert 0 < body["expires_in"] <= 60

    async with open_stream(http, f"/api/{user.id}/events", params={"ticket": body["ticket"]}) as stream:
        await create_task(http, user, title="Seen through a ticket")
        frame = await stream.next_event()

    assert frame.json()["data"]["title"] == "Seen through a ticket"


async def test_a_ticket_works_once(http: httpx.AsyncClient) -> None:
    user = await sign_up(http)
    ticket = (await http.post(TICKETS, headers=user.headers)).json()["ticket"]
    async with open_stream(http, EVENTS, params={"ticket": ticket}):
        pass

    response = await stream_refused(http, EVENTS, params={"ticket": ticket})

    assert_problem(response, 401, "ticket_used")


async def test_a_forged_ticket_is_401(http: httpx.AsyncClient) -> None:
    user = await sign_up(http)
    ticket: str = (await http.post(TICKETS, headers=user.headers)).json()["ticket"]
    prefix, body, signature = ticket.split(".")
    other = await sign_up(http)
    # Another user's id under the first one's signature.
    forged_body = StreamTicketCodec(b"not the key").encode({"u": other.id}).split(".")[1]

    for forged in (
        f"{prefix}.{forged_body}.{signature}",
        f"{prefix}.{body}.{signature[:-2]}AA",
        "st1.e30.",
        "nonsense",
    ):
        assert_problem(await stream_refused(http, EVENTS, params={"ticket": forged}), 401, "invalid_ticket")


async def test_an_expired_ticket_is_401(http: httpx.AsyncClient) -> None:
    user = await sign_up(http)

    class LongAgo:
        def now(self) -> datetime:
            return datetime.now(UTC) - timedelta(minutes=5)

    expired = IssueStreamTicket(StreamTicketCodec(TEST_SECRET.encode()), LongAgo(), 30).execute(Principal(user.id))

    assert_problem(await stream_refused(http, EVENTS, params={"ticket": expired.value}), 401, "ticket_expired")


async def test_a_ticket_opens_only_its_owners_stream(http: httpx.AsyncClient) -> None:
    ada, bob = await sign_up(http), await sign_up(http)
    ticket = (await http.post(TICKETS, headers=ada.headers)).json()["ticket"]
    response = await stream_refused(http, f"/api/{bob.id}/events", params={"ticket": ticket})
    assert_problem(response, 403, "not_your_tasks")


async def test_an_access_token_in_the_url_is_not_accepted(http: httpx.AsyncClient) -> None:
    user = await sign_up(http)
    token = user.headers["Authorization"].removeprefix("Bearer ")
    for name in ("access_token", "token"):
        response = await stream_refused(http, EVENTS, params={name: token})
        assert_problem(response, 401, "missing_token")
    assert_problem(await stream_refused(http, EVENTS, params={"ticket": token}), 401, "invalid_ticket")


# --- The cap and the ends -----------------------------------------------------------------------


async def test_past_the_cap_a_stream_is_429_and_a_closed_one_frees_its_slot(http: httpx.AsyncClient) -> None:
    user = await sign_up(http)
    async with open_stream(http, EVENTS, headers=user.headers), open_stream(http, EVENTS, headers=user.headers):
        async with open_stream(http, EVENTS, headers=user.headers):
            response = await stream_refused(http, EVENTS, headers=user.headers)
            body = assert_problem(response, 429, "rate_limited")
            assert int(response.headers["retry-after"]) > 0
            assert str(MAX_STREAMS) in body["detail"]
        # The client left: its slot is free at once, not at the next heartbeat.
        deadline = time.monotonic() + 2
        while True:
            try:
                async with open_stream(http, EVENTS, headers=user.headers):
                    break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)


async def test_logging_out_ends_the_stream(http: httpx.AsyncClient) -> None:
    user, refresh_token = await signed_up(http)
    async with open_stream(http, EVENTS, headers=user.headers) as stream:
        logged_out = await http.post("/api/auth/logout", json={"refresh_token": refresh_token})
        assert logged_out.status_code == 204, logged_out.text

        end = await stream.next_event(timeout_s=SESSION_CHECK_S * 5)
        assert (end.event, end.json()) == ("end", {"reason": "session_ended"})
        with pytest.raises(EOFError):
            await stream.next_frame()

    # The access token is still unexpired, but its session is gone: no new stream.
    assert_problem(await stream_refused(http, EVENTS, headers=user.headers), 401, "session_revoked")  # its tokens, too


async def test_the_stream_ends_when_its_access_token_expires(http: httpx.AsyncClient) -> None:
    user, _ = await signed_up(http)
    claims = jwt.get_unverified_claims(user.headers["Authorization"].removeprefix("Bearer "))
    short = JwtAccessTokens(key=TEST_SECRET, issuer="todo-api", audience="todo-api", lifetime_s=2)
    token = short.issue(user.id, claims["sid"])

    started = time.monotonic()
    async with open_stream(http, EVENTS, headers={"Authorization": f"Bearer {token}"}) as stream:
        end = await stream.next_event(timeout_s=5)
        assert (end.event, end.json()) == ("end", {"reason": "token_expired"})
        with pytest.raises(EOFError):
            await stream.next_frame()
    assert 1 <= time.monotonic() - started < 4


async def test_a_ticket_stream_ends_when_the_token_that_asked_for_it_expires(http: httpx.AsyncClient) -> None:
    user, _ = await signed_up(http)
    claims = jwt.get_unverified_claims(user.headers["Authorization"].removeprefix("Bearer "))
    token = JwtAccessTokens(key=TEST_SECRET, issuer="todo-api", audience="todo-api", lifetime_s=2).issue(
        user.id, claims["sid"]
    )
    ticket = (await http.post(TICKETS, headers={"Authorization": f"Bearer {token}"})).json()["ticket"]

    async with open_stream(http, EVENTS, params={"ticket": ticket}) as stream:
        end = await stream.next_event(timeout_s=5)
    assert end.json() == {"reason": "token_expired"}
