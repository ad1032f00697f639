"""The client address that throttles and logs use: the peer, unless the peer is a proxy we trust, and then
the address that proxy vouches for. `X-Forwarded-For` from anyone else changes nothing."""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping
from ipaddress import ip_network
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI

from tests.unit.http.backend import FakeBackend
from tests.unit.http.conftest import client_of
from todo_api.adapters.http.app import HttpOptions, create_http_app
from todo_api.adapters.http.proxies import TrustedProxies

PROXY = ("10.0.0.5", 41_000)
STRANGER = ("198.51.100.23", 52_000)
PASSWORD = "a-long-passphrase"


def app_trusting(backend: FakeBackend, *networks: str) -> FastAPI:
    options = HttpOptions(cursor_key="k" * 40, trusted_proxies=tuple(ip_network(n) for n in networks))
    return create_http_app(backend.use_cases, options)


async def sign_up(http: httpx.AsyncClient, n: int, forwarded_for: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return await http.post(
        "/api/auth/signup", json={"email": f"u{n}@example.com", "password": PASSWORD}, headers=headers
    )


async def test_without_trusted_proxies_a_spoofed_forwarded_for_does_not_escape_the_signup_limit(
    backend: FakeBackend,
) -> None:
    """The report: 14 sign-ups from one local peer, each with another X-Forwarded-For, were all accepted."""
    limit = backend.limits.signup_per_address
    async with client_of(app_trusting(backend), peer=("127.0.0.1", 50_000)) as http:
        statuses = [(await sign_up(http, n, forwarded_for=f"192.0.2.{n}")).status_code for n in range(limit + 4)]

    assert statuses == [201] * limit + [429] * 4


async def test_a_forwarded_for_from_a_peer_that_is_not_trusted_is_ignored(backend: FakeBackend) -> None:
    limit = backend.limits.signup_per_address
    async with client_of(app_trusting(backend, "10.0.0.0/8"), peer=STRANGER) as http:
        statuses = [(await sign_up(http, n, forwarded_for=f"192.0.2.{n}")).status_code for n in range(limit + 1)]

    assert statuses[-1] == 429


async def test_behind_a_trusted_proxy_each_client_has_its_own_limit(backend: FakeBackend) -> None:
    limit = backend.limits.signup_per_address
    async with client_of(app_trusting(backend, "10.0.0.0/8"), peer=PROXY) as http:
        first = [(await sign_up(http, n, forwarded_for="192.0.2.1")).status_code for n in range(limit + 1)]
        other = await sign_up(http, 100, forwarded_for="192.0.2.2")

    assert first == [201] * limit + [429]
    assert other.status_code == 201


async def test_behind_a_trusted_proxy_what_the_client_prepended_is_not_believed(backend: FakeBackend) -> None:
    """The proxy appends the address it saw; a client varying the entries before it stays one client."""
    limit = backend.limits.signup_per_address
    async with client_of(app_trusting(backend, "10.0.0.0/8"), peer=PROXY) as http:
        statuses = [
            (await sign_up(http, n, forwarded_for=f"203.0.113.{n}, 192.0.2.1")).status_code for n in range(limit + 1)
        ]

    assert statuses[-1] == 429


def as_record_message(
    _: object, __: str, event_dict: MutableMapping[str, Any]
) -> tuple[tuple[MutableMapping[str, Any]], dict[str, Any]]:
    """Hand stdlib logging the event dict itself, as configure_logging's formatter wrapper does."""
    return (event_dict,), {}


class AccessLines(logging.Handler):
    """The event dicts of the access log, whichever of the two configurations produced them."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, dict):
            self.events.append(record.msg)
        elif fields := getattr(record, "access_fields", None):
            self.events.append(fields)


@pytest.fixture
def access_log() -> Iterator[list[dict[str, object]]]:
    structlog.configure(
        processors=[as_record_message],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    logger = logging.getLogger("todo_api.access")
    handler, level = AccessLines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.events
    logger.removeHandler(handler)
    logger.setLevel(level)
    structlog.reset_defaults()


@pytest.mark.parametrize(
    ("peer", "trusted", "expected"),
    [(STRANGER, (), STRANGER[0]), (PROXY, ("10.0.0.0/8",), "192.0.2.1"), (PROXY, (), PROXY[0])],
)
async def test_the_access_log_names_the_client_the_throttles_see(
    backend: FakeBackend,
    access_log: list[dict[str, object]],
    peer: tuple[str, int],
    trusted: tuple[str, ...],
    expected: str,
) -> None:
    async with client_of(app_trusting(backend, *trusted), peer=peer) as http:
        await http.get("/healthz", headers={"X-Forwarded-For": "192.0.2.1"})

    assert [event.get("client") for event in access_log] == [expected]


# --- the rule itself ---------------------------------------------------------------------------------

PROXIES = TrustedProxies([ip_network("10.0.0.0/8"), ip_network("fd00::/8")])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("198.51.100.23", ["192.0.2.1"], "198.51.100.23"),  # not a proxy of ours: the peer
        ("10.0.0.5", [], "10.0.0.5"),  # a proxy that names no one: itself
        ("10.0.0.5", ["192.0.2.1"], "192.0.2.1"),
        ("10.0.0.5", ["203.0.113.9, 192.0.2.1"], "192.0.2.1"),  # the right-most untrusted one
        ("10.0.0.5", ["192.0.2.1, 10.0.0.9"], "192.0.2.1"),  # through two of our proxies
        ("10.0.0.5", ["203.0.113.9", "192.0.2.1"], "192.0.2.1"),  # two field lines are one list
        ("10.0.0.5", ["garbage, 10.0.0.9"], "10.0.0.9"),  # not an address: the last proxy is all we know
        ("10.0.0.5", ["10.0.0.7, 10.0.0.9"], "10.0.0.7"),  # only proxies: the farthest one
        ("fd00::1", ["[2001:db8::7]"], "2001:db8::7"),
        ("::ffff:10.0.0.5", ["192.0.2.1"], "192.0.2.1"),  # an IPv4-mapped peer is its IPv4 address
    ],
)
def test_the_client_is_the_right_most_address_not_ours(peer: str, forwarded_for: list[str], client: str) -> None:
    assert PROXIES.client(peer, forwarded_for) == client


def test_the_scheme_comes_only_from_a_trusted_proxy() -> None:
    assert PROXIES.scheme("10.0.0.5", ["https"], "http") == "https"
    assert PROXIES.scheme("198.51.100.23", ["https"], "http") == "http"
    assert PROXIES.scheme("10.0.0.5", ["gopher"], "http") == "http"
