"""Which addresses a webhook may reach, and how long it waits between attempts."""

from __future__ import annotations

import base64
import ipaddress

import pytest

from todo_api.adapters.outbound.addresses import refusal
from todo_api.adapters.outbound.webhooks import sign
from todo_api.domain.errors import InvalidInput
from todo_api.domain.webhooks import DAY_OF_RETRIES, RetryPolicy, new_secret, new_webhook


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::1",
        "10.0.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "169.254.1.1",
        "fe80::1",
        "fd00:ec2::254",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
        "0.0.0.0",  # noqa: S104 - an address refused, not bound
        "::",
        "224.0.0.1",
        "ff02::1",
        "240.0.0.1",
    ],
)
def test_internal_addresses_are_refused(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def test_the_default_schedule_spans_about_a_day_then_gives_up() -> None:
    policy = RetryPolicy()

    total = sum(policy.pause(n, 0.5) or 0 for n in range(1, len(DAY_OF_RETRIES) + 1))

    assert 20 * 3600 < total < 26 * 3600
    assert policy.pause(len(DAY_OF_RETRIES) + 1, 0.5) is None


def test_pauses_grow_and_jitter_stays_within_ten_percent() -> None:
    policy = RetryPolicy((5, 30, 120))

    assert [policy.pause(n, 0.5) for n in (1, 2, 3)] == [5, 30, 120]
    assert policy.pause(1, 0.0) == pytest.approx(4.5)
    assert policy.pause(1, 0.999) == pytest.approx(5.5, abs=0.01)


def test_a_policy_that_never_gives_up_keeps_its_last_pause() -> None:
    assert RetryPolicy((1, 60), give_up=False).pause(50, 0.5) == 60


def test_the_signature_is_the_standard_webhooks_one() -> None:
    """The example of the Standard Webhooks specification."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'

    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_a_secret_is_whsec_and_base64_of_32_random_bytes() -> None:
    first, second = new_secret(), new_secret()

    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert first != second


@pytest.mark.parametrize("url", ["http://example.com/", "https://u:p@example.com/", "https:///x", "https://a.b/#f"])
def test_urls_must_be_https_with_a_host_and_no_credentials(url: str) -> None:
    with pytest.raises(InvalidInput):
        new_webhook(url, (), "", allow_http=False)


def test_http_is_allowed_only_where_development_allows_it() -> None:
    assert new_webhook("http://localhost:8080/hook", (), "", allow_http=True).url == "http://localhost:8080/hook"
