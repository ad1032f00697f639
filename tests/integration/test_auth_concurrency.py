"""Accounts and sessions under concurrent requests, over the in-process ASGI client and a real
PostgreSQL: uniqueness and rotation races are decided by the database, and no request ends in a 5xx."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import Any

import asyncpg
import httpx

from tests.integration.conftest import two_instances

SIGNUP = "/api/auth/signup"
LOGIN = "/api/auth/login"
REFRESH = "/api/auth/refresh"
EMAIL = "ada@example.com"
PASSWORD = "correct-horse-battery-staple-42"
PROBLEM = "application/problem+json"


def statuses(responses: Sequence[httpx.Response]) -> Counter[int]:
    return Counter(response.status_code for response in responses)


def assert_no_server_error(responses: Sequence[httpx.Response]) -> None:
    failed = [(response.status_code, response.text) for response in responses if response.status_code >= 500]
    assert not failed, failed


def codes(responses: Sequence[httpx.Response]) -> Counter[str]:
    return Counter(response.json()["code"] for response in responses if response.status_code >= 400)


async def sign_up(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post(SIGNUP, json={"email": EMAIL, "password": PASSWORD})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_100_concurrent_signups_with_one_email_give_exactly_one_201_and_99_409(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    # The same address in different cases: normalisation must not open a way around uniqueness.
    emails = [EMAIL if number % 2 else EMAIL.upper() for number in range(100)]
    responses = await asyncio.gather(
        *(client.post(SIGNUP, json={"email": email, "password": PASSWORD}) for email in emails)
    )
    assert_no_server_error(responses)
    assert statuses(responses) == {201: 1, 409: 99}
    assert codes(responses) == {"email_taken": 99}
    assert all(r.headers["content-type"] == PROBLEM for r in responses if r.status_code == 409)
    assert await db.fetchval("SELECT count(*) FROM users WHERE email = $1", EMAIL) == 1
    assert await db.fetchval("SELECT count(*) FROM refresh_tokens") == 1


async def test_20_concurrent_refreshes_of_one_token_have_exactly_one_winner(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    token = (await sign_up(client))["refresh_token"]
    responses = await asyncio.gather(*(client.post(REFRESH, json={"refresh_token": token}) for _ in range(20)))
    assert_no_server_error(responses)
    assert statuses(responses) == {200: 1, 401: 19}
    assert set(codes(responses)) <= {"refresh_token_reused", "invalid_refresh_token"}
    # One rotation only: the original token and exactly one successor.
    assert await db.fetchval("SELECT count(*) FROM refresh_tokens") == 2
    original = hashlib.sha256(token.encode()).hexdigest()
    assert await db.fetchval("SELECT rotated_at FROM refresh_tokens WHERE token_hash = $1", original) is not None


async def test_20_concurrent_logins_of_one_account_each_get_their_own_session(
    database_url: str, db: asyncpg.Connection
) -> None:
    # A limit above the burst: this test is about sessions, the throttle has its own test below.
    async with two_instances(database_url, throttle_login_per_account=1_000) as (first, second):
        await sign_up(first)
        responses = await asyncio.gather(
            *(
                (first if number % 2 else second).post(LOGIN, json={"email": EMAIL, "password": PASSWORD})
                for number in range(20)
            )
        )
    assert_no_server_error(responses)
    assert statuses(responses) == {200: 20}
    assert len({response.json()["refresh_token"] for response in responses}) == 20
    assert await db.fetchval("SELECT count(DISTINCT family_id) FROM refresh_tokens") == 21


async def test_concurrent_wrong_passwords_across_two_instances_are_verified_at_most_the_limit_times(
    database_url: str,
) -> None:
    """A burst must not buy more guesses than the limit: the per-account throttle holds under concurrency."""
    limit = 3
    async with two_instances(database_url, throttle_login_per_account=limit) as (first, second):
        await sign_up(first)
        responses = await asyncio.gather(
            *(
                (first if number % 2 else second).post(LOGIN, json={"email": EMAIL, "password": f"wrong-{number}"})
                for number in range(20)
            )
        )
    assert_no_server_error(responses)
    assert statuses(responses)[401] <= limit, statuses(responses)
    assert statuses(responses) == {401: limit, 429: 20 - limit}
