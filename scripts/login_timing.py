"""Does a login for an unknown e-mail take as long as one for a known e-mail? (user enumeration by timing)

Starts the app in-process on a fresh database (the tests' PostgreSQL: TEST_DATABASE_URL, else Docker,
else the embedded server), signs up one user at the default bcrypt cost of 12, then times, interleaved
and in a rotating order, N logins each with the known e-mail and a wrong password, the known e-mail
and the right password, and an e-mail that has no account. Prints the medians and the ratio
unknown / known (goal: 0.8 to 1.25). Throttling is set high enough never to interfere.

    .venv/bin/python -m scripts.login_timing
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx
from tests.integration.database import create_database, drop_database, migrate, postgres_server

from todo_api.config import Settings
from todo_api.main import create_app

N = 30
WARM_UP = 3
BCRYPT_COST = 12
EMAIL = "timing@example.com"
PASSWORD = "correct-horse-battery-staple-42"  # noqa: S105 - a throwaway account in a throwaway database
WRONG_PASSWORD = "not-the-right-password-at-all-42"  # noqa: S105 - deliberately wrong
GOAL = (0.8, 1.25)
NO_THROTTLE = 1_000_000


def settings() -> Settings:
    return Settings.model_validate(
        {
            "secret_key": "login-timing-secret-key-that-is-long-enough-0123456789",
            "bcrypt_cost": BCRYPT_COST,
            "throttle_login_per_account": NO_THROTTLE,
            "throttle_login_per_address": NO_THROTTLE,
            "throttle_signup_per_address": NO_THROTTLE,
            "log_level": "WARNING",
            "log_format": "json",
        }
    )


async def timed(call: Callable[[], Awaitable[httpx.Response]], expected: int) -> float:
    started = time.perf_counter()
    response = await call()
    elapsed = time.perf_counter() - started
    if response.status_code != expected:
        raise RuntimeError(f"expected {expected}, got {response.status_code}: {response.text}")
    return elapsed


async def measure(database_url: str) -> dict[str, list[float]]:
    app = create_app(settings(), database_url=database_url)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        signup = await client.post("/api/auth/signup", json={"email": EMAIL, "password": PASSWORD})
        if signup.status_code != 201:
            raise RuntimeError(f"signup failed: {signup.status_code} {signup.text}")

        counter = 0

        def unknown_email() -> str:
            nonlocal counter
            counter += 1
            return f"nobody-{counter}@example.com"

        kinds: dict[str, tuple[Callable[[], Awaitable[httpx.Response]], int]] = {
            "known e-mail, wrong password": (
                lambda: client.post("/api/auth/login", json={"email": EMAIL, "password": WRONG_PASSWORD}),
                401,
            ),
            "known e-mail, right password": (
                lambda: client.post("/api/auth/login", json={"email": EMAIL, "password": PASSWORD}),
                200,
            ),
            "unknown e-mail": (
                lambda: client.post("/api/auth/login", json={"email": unknown_email(), "password": WRONG_PASSWORD}),
                401,
            ),
        }
        names = list(kinds)
        for _ in range(WARM_UP):
            for call, expected in kinds.values():
                await timed(call, expected)

        samples: dict[str, list[float]] = {name: [] for name in names}
        for round_number in range(N):
            shift = round_number % len(names)  # rotate the order so no kind always goes first
            for name in names[shift:] + names[:shift]:
                call, expected = kinds[name]
                samples[name].append(await timed(call, expected))
        return samples


def ms(seconds: float) -> float:
    return seconds * 1000


def report(samples: dict[str, list[float]], source: str) -> None:
    print(f"PostgreSQL from {source}; bcrypt cost {BCRYPT_COST}; N={N} per kind, interleaved, {WARM_UP} warm-up rounds")
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, values in samples.items():
        q1, _, q3 = (ms(value) for value in statistics.quantiles(values, n=4))
        spread = f"q1 {q1:7.1f}, q3 {q3:7.1f}, min {ms(min(values)):7.1f}, max {ms(max(values)):7.1f}"
        print(f"  {name:<30} median {ms(medians[name]):7.1f} ms   ({spread})")
    unknown = medians["unknown e-mail"]
    ratio_wrong = unknown / medians["known e-mail, wrong password"]
    ratio_right = unknown / medians["known e-mail, right password"]
    low, high = GOAL
    verdict = "within" if low <= ratio_wrong <= high else "OUTSIDE"
    print(f"  ratio unknown / known (wrong password) = {ratio_wrong:.3f}   {verdict} the goal {low}-{high}")
    print(f"  ratio unknown / known (right password) = {ratio_right:.3f}")


def main() -> None:
    with postgres_server() as (server_url, source):
        database_url = create_database(server_url)
        try:
            migrate(database_url)
            samples = asyncio.run(measure(database_url))
        finally:
            drop_database(server_url, database_url)
    report(samples, source)


if __name__ == "__main__":
    main()
