"""Webhooks: register, list, remove, and read what was delivered to each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from todo_api.domain.errors import InvalidInput, NotFound
from todo_api.domain.ports import Clock, TargetGuard, UnitOfWorkFactory
from todo_api.domain.webhooks import (
    MAX_DELIVERIES_PAGE,
    MAX_WEBHOOKS,
    CreatedWebhook,
    Delivery,
    NewWebhook,
    Webhook,
    new_secret,
    new_webhook,
)
from todo_api.use_cases.lists import take_turn
from todo_api.use_cases.retries import retry_transient


def _not_found(webhook_id: int) -> NotFound:
    return NotFound(f"Webhook {webhook_id} was not found.", code="webhook_not_found")


class CreateWebhook:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, guard: TargetGuard, *, allow_http: bool) -> None:
        self._uow, self._clock, self._guard, self._allow_http = uow, clock, guard, allow_http

    async def execute(
        self, user_id: str, url: str, event_types: Sequence[str] = (), description: str = ""
    ) -> CreatedWebhook:
        """The webhook follows the changes committed after it; its secret is in this answer only."""
        new = new_webhook(url, event_types, description, allow_http=self._allow_http)
        await self._guard.check(new.url)  # DNS before the transaction: no lock waits on a resolver
        return await self._store(user_id, new)

    @retry_transient
    async def _store(self, user_id: str, new: NewWebhook) -> CreatedWebhook:
        at = self._clock.now()
        secret = new_secret()
        async with self._uow() as uow:
            await take_turn(uow, user_id, at)  # two creations at the cap cannot both pass the count
            if await uow.webhooks.count(user_id) >= MAX_WEBHOOKS:
                raise InvalidInput(f"You can have at most {MAX_WEBHOOKS} webhooks.", code="too_many_webhooks")
            webhook = await uow.webhooks.add(user_id, new, secret, at, after=await uow.changes.position(user_id))
            await uow.commit()
        return CreatedWebhook(webhook, secret)


class ListWebhooks:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def execute(self, user_id: str) -> list[Webhook]:
        async with self._uow(read_only=True) as uow:
            return list(await uow.webhooks.all(user_id))


class GetWebhook:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def execute(self, user_id: str, webhook_id: int) -> Webhook:
        async with self._uow(read_only=True) as uow:
            found = await uow.webhooks.get(user_id, webhook_id)
        if found is None:
            raise _not_found(webhook_id)
        return found


class DeleteWebhook:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def execute(self, user_id: str, webhook_id: int) -> None:
        """A delivery in flight may still arrive; nothing is sent after it."""
        async with self._uow() as uow:
            if not await uow.webhooks.delete(user_id, webhook_id):
                raise _not_found(webhook_id)
            await uow.commit()


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    deliveries: Sequence[Delivery]
    next_before: int | None
    """The id to page on from (`before`), None on the last page."""


class ListDeliveries:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def execute(self, user_id: str, webhook_id: int, limit: int = 50, before: int | None = None) -> DeliveryPage:
        """The webhook's attempts, newest first, a keyset page at a time."""
        if not 1 <= limit <= MAX_DELIVERIES_PAGE:
            raise InvalidInput(f"`limit` is between 1 and {MAX_DELIVERIES_PAGE}.", code="invalid_limit", field="limit")
        async with self._uow(read_only=True) as uow:
            if await uow.webhooks.get(user_id, webhook_id) is None:
                raise _not_found(webhook_id)
            found = await uow.webhooks.deliveries(user_id, webhook_id, limit, before)
        page = found[:limit]
        return DeliveryPage(page, page[-1].id if len(found) > limit else None)
