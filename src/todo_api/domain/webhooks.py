"""Push: webhooks that receive a person's change feed, and the rules of delivering it.

Each webhook (and the broker publisher, per person) follows the feed with a cursor of its own, so
deliveries are ordered and at least once: a failed event is retried, with growing pauses, before
anything after it is sent. Receivers de-duplicate by the event's id (`webhook-id`).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal
from urllib.parse import urlsplit

from todo_api.domain.changes import EVENT_TYPES
from todo_api.domain.errors import InvalidInput

MAX_WEBHOOKS: Final = 10
MAX_URL_CHARS: Final = 2048
MAX_DESCRIPTION_CHARS: Final = 500
MAX_DELIVERIES_PAGE: Final = 100
SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES: Final = 32

DAY_OF_RETRIES: Final[tuple[float, ...]] = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800)
"""Pauses after each failed attempt: about 23 hours from the first failure to the last attempt."""

WebhookState = Literal["active", "disabled"]


@dataclass(frozen=True, slots=True)
class Webhook:
    id: int
    user_id: str
    url: str
    event_types: tuple[str, ...]
    """Empty: every type."""
    description: str
    state: WebhookState
    disabled_reason: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewWebhook:
    url: str
    event_types: tuple[str, ...]
    description: str


@dataclass(frozen=True, slots=True)
class CreatedWebhook:
    webhook: Webhook
    secret: str
    """Shown once, in the answer to the creation; never readable again."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt at sending one event to one webhook, as its delivery log shows it."""

    id: int
    event_id: str
    event_type: str
    position: int
    attempt: int
    status_code: int | None
    error: str | None
    duration_ms: int
    delivered: bool
    at: datetime


def new_webhook(url: str, event_types: Sequence[str], description: str, *, allow_http: bool) -> NewWebhook:
    """A webhook's settings, checked: an absolute https URL (http only where allowed) with no
    credentials in it (a secret in a URL ends up in logs), and known event types."""
    url = url.strip()
    parts = urlsplit(url)
    if len(url) > MAX_URL_CHARS or parts.scheme not in (("https", "http") if allow_http else ("https",)):
        raise InvalidInput(
            "The target must be an absolute https URL" + (" (or http, in development)." if allow_http else "."),
            code="invalid_webhook_url",
            field="url",
        )
    if not parts.hostname or parts.username is not None or parts.password is not None or parts.fragment:
        raise InvalidInput(
            "The target URL needs a host, and no user, password or fragment.", code="invalid_webhook_url", field="url"
        )
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        raise InvalidInput(
            f"Unknown event types: {', '.join(unknown)}; known are {', '.join(EVENT_TYPES)}.",
            code="unknown_event_type",
            field="event_types",
        )
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise InvalidInput(
            f"A description has at most {MAX_DESCRIPTION_CHARS} characters.",
            code="invalid_description",
            field="description",
        )
    return NewWebhook(url, tuple(sorted(set(event_types))), description)


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and the base64 of random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def wants(event_types: Sequence[str], event_type: str) -> bool:
    return not event_types or event_type in event_types


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to wait after the n-th failed attempt of an event, with +-10% jitter (so endpoints
    that failed together do not all retry in the same second). Past the schedule: give up (a
    webhook is disabled) or, with `give_up=False`, keep waiting the last pause (the broker)."""

    schedule: tuple[float, ...] = DAY_OF_RETRIES
    give_up: bool = True

    def pause(self, failures: int, jitter: float) -> float | None:
        """Seconds before the next attempt; None: stop trying. `jitter` is uniform in [0, 1)."""
        if failures > len(self.schedule):
            if self.give_up:
                return None
            failures = len(self.schedule)
        return self.schedule[failures - 1] * (0.9 + 0.2 * jitter)


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What one HTTP attempt came to."""

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        """410: the receiver says the endpoint is gone for good (Standard Webhooks: stop sending)."""
        return self.status_code == 410


@dataclass(frozen=True, slots=True)
class Lease:
    """A follower of one person's feed (a webhook, or the publisher), leased to one worker until
    the lease expires: only the holder (`token`) may move its cursor."""

    follower_id: int
    """The webhook's id; 0 for the publisher."""
    user_id: str
    position: int
    attempts: int
    """Failed attempts so far at the event after `position`."""
    horizon: int
    """Retention removed every event up to here."""
    token: str
    target: str = ""
    secret: str = ""
    event_types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt to record in the delivery log."""

    event_id: str
    event_type: str
    position: int
    attempt: int
    outcome: SendOutcome
