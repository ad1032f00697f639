"""In-memory fakes of the webhook ports: the repository on the fake store, and a target guard."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from todo_api.domain.errors import InvalidInput
from todo_api.domain.webhooks import Delivery, NewWebhook, Webhook

if TYPE_CHECKING:
    from tests.unit.fakes import FakeStore


@dataclass
class StoredWebhook:
    webhook: Webhook
    secret: str
    position: int
    deliveries: list[Delivery] = field(default_factory=list)


class FakeWebhookRepository:
    def __init__(self, store: FakeStore) -> None:
        self._store = store

    async def add(self, user_id: str, new: NewWebhook, secret: str, at: datetime, *, after: int) -> Webhook:
        self._store.last_webhook_id += 1
        webhook = Webhook(
            self._store.last_webhook_id, user_id, new.url, new.event_types, new.description, "active", None, at
        )
        self._store.webhooks[webhook.id] = StoredWebhook(webhook, secret, after)
        return webhook

    async def count(self, user_id: str) -> int:
        return len(await self.all(user_id))

    async def all(self, user_id: str) -> Sequence[Webhook]:
        return [row.webhook for row in self._store.webhooks.values() if row.webhook.user_id == user_id]

    async def get(self, user_id: str, webhook_id: int) -> Webhook | None:
        row = self._store.webhooks.get(webhook_id)
        return row.webhook if row is not None and row.webhook.user_id == user_id else None

    async def delete(self, user_id: str, webhook_id: int) -> bool:
        if await self.get(user_id, webhook_id) is None:
            return False
        del self._store.webhooks[webhook_id]
        return True

    async def deliveries(self, user_id: str, webhook_id: int, limit: int, before: int | None) -> Sequence[Delivery]:
        if await self.get(user_id, webhook_id) is None:
            return []
        newest_first = sorted(self._store.webhooks[webhook_id].deliveries, key=lambda d: d.id, reverse=True)
        return [d for d in newest_first if before is None or d.id < before][: limit + 1]


class FakeTargetGuard:
    """Refuses the hosts in `unsafe`, as the real guard refuses private addresses."""

    def __init__(self, unsafe: frozenset[str] = frozenset({"127.0.0.1", "localhost", "169.254.169.254"})) -> None:
        self.unsafe = unsafe

    async def check(self, url: str) -> None:
        if urlsplit(url).hostname in self.unsafe:
            raise InvalidInput("Webhooks may not target private addresses.", code="unsafe_webhook_url")
