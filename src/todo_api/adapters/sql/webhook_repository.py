"""Webhooks and their delivery log, for the routes: Core statements and rows mapped by hand."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Text, bindparam, delete, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY

from todo_api.adapters.sql.engine import Connection, Row, Statement
from todo_api.adapters.sql.tables import webhook_deliveries, webhooks
from todo_api.domain.webhooks import Delivery, NewWebhook, Webhook

_SHOWN = (
    webhooks.c.id,
    webhooks.c.user_id,
    webhooks.c.url,
    webhooks.c.event_types,
    webhooks.c.description,
    webhooks.c.state,
    webhooks.c.disabled_reason,
    webhooks.c.created_at,
)
_owner = webhooks.c.user_id == bindparam("owner")
_this = webhooks.c.id == bindparam("webhook_id", type_=BigInteger)

_ADD = Statement(
    insert(webhooks)
    .values(
        user_id=bindparam("owner"),
        url=bindparam("url"),
        event_types=bindparam("event_types", type_=ARRAY(Text)),
        description=bindparam("description"),
        secret=bindparam("secret"),
        created_at=bindparam("created_at"),
        position=bindparam("after", type_=BigInteger),
    )
    .returning(*_SHOWN)
)
_COUNT = Statement(select(func.count()).select_from(webhooks).where(_owner))
_LIST = Statement(select(*_SHOWN).where(_owner).order_by(webhooks.c.id))
_GET = Statement(select(*_SHOWN).where(_owner, _this))
_DELETE = Statement(delete(webhooks).where(_owner, _this).returning(webhooks.c.id))
_DELIVERIES = Statement(
    select(webhook_deliveries)
    .join(webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id)
    .where(
        _owner,
        webhook_deliveries.c.webhook_id == bindparam("webhook_id", type_=BigInteger),
        webhook_deliveries.c.id < func.coalesce(bindparam("before", type_=BigInteger), 2**63 - 1),
    )
    .order_by(webhook_deliveries.c.id.desc())
    .limit(bindparam("limit"))
)


def webhook_of(row: Row) -> Webhook:
    return Webhook(
        id=row["id"],
        user_id=row["user_id"],
        url=row["url"],
        event_types=tuple(row["event_types"]),
        description=row["description"],
        state=row["state"],
        disabled_reason=row["disabled_reason"],
        created_at=row["created_at"],
    )


def _delivery_of(row: Row) -> Delivery:
    return Delivery(
        id=row["id"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        position=row["position"],
        attempt=row["attempt"],
        status_code=row["status_code"],
        error=row["error"],
        duration_ms=row["duration_ms"],
        delivered=row["delivered"],
        at=row["at"],
    )


class SqlWebhookRepository:
    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def add(self, user_id: str, new: NewWebhook, secret: str, at: datetime, *, after: int) -> Webhook:
        values: dict[str, Any] = {
            "owner": user_id,
            "url": new.url,
            "event_types": list(new.event_types),
            "description": new.description,
            "secret": secret,
            "created_at": at,
            "after": after,
        }
        return webhook_of((await _ADD.fetch(self._db, **values))[0])

    async def count(self, user_id: str) -> int:
        return int(await _COUNT.fetchval(self._db, owner=user_id))

    async def all(self, user_id: str) -> list[Webhook]:
        return [webhook_of(row) for row in await _LIST.fetch(self._db, owner=user_id)]

    async def get(self, user_id: str, webhook_id: int) -> Webhook | None:
        row = await _GET.fetchrow(self._db, owner=user_id, webhook_id=webhook_id)
        return None if row is None else webhook_of(row)

    async def delete(self, user_id: str, webhook_id: int) -> bool:
        return await _DELETE.fetchval(self._db, owner=user_id, webhook_id=webhook_id) is not None

    async def deliveries(self, user_id: str, webhook_id: int, limit: int, before: int | None) -> list[Delivery]:
        rows = await _DELIVERIES.fetch(self._db, owner=user_id, webhook_id=webhook_id, before=before, limit=limit + 1)
        return [_delivery_of(row) for row in rows]
