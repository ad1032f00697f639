"""Webhooks' shapes: what registering one takes, what the API shows of it, its delivery log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import Field

from todo_api.adapters.http.schemas import Output, StrictInput
from todo_api.domain.changes import EVENT_TYPES, EventType
from todo_api.domain.webhooks import MAX_DESCRIPTION_CHARS, MAX_URL_CHARS, Delivery, Webhook


class WebhookCreate(StrictInput):
    url: str = Field(
        min_length=1,
        max_length=MAX_URL_CHARS,
        description="Where to POST each event: an https URL on a public address (no credentials in it).",
        examples=["https://hooks.example.com/todo"],
    )
    event_types: list[EventType] = Field(
        default_factory=list,
        max_length=len(EVENT_TYPES),
        description="Only these types are delivered; empty (the default): every type.",
        examples=[["task.created", "task.completed"]],
    )
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS, examples=["Sync to the team board"])


class WebhookOut(Output):
    id: int = Field(examples=[7])
    url: str = Field(examples=["https://hooks.example.com/todo"])
    event_types: list[str] = Field(description="Empty: every type.", examples=[["task.created", "task.completed"]])
    description: str = Field(examples=["Sync to the team board"])
    state: Literal["active", "disabled"] = Field(
        description="`disabled` after about a day of failed deliveries, or a 410 from the receiver; "
        "`disabled_reason` says which. Delete it and register it again to resume."
    )
    disabled_reason: str | None = Field(examples=[None])
    created_at: datetime

    @classmethod
    def of(cls, webhook: Webhook) -> WebhookOut:
        return cls.model_validate(
            {
                "id": webhook.id,
                "url": webhook.url,
                "event_types": list(webhook.event_types),
                "description": webhook.description,
                "state": webhook.state,
                "disabled_reason": webhook.disabled_reason,
                "created_at": webhook.created_at,
            }
        )


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(
        description="The signing secret (Standard Webhooks): shown in this answer only, never again. "
        "Verify each delivery's `webhook-signature` with it.",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class WebhookListOut(Output):
    data: list[WebhookOut]


class DeliveryOut(Output):
    id: int = Field(examples=[1042])
    event_id: str = Field(
        description="The event's id, sent as `webhook-id`.", examples=["9b0c5e1e-8a6b-4c1e-9f43-0f6f1f7c2d11"]
    )
    event_type: str = Field(examples=["task.created"])
    position: int = Field(description="The event's position in your change feed.", examples=[17])
    attempt: int = Field(description="1 for the first attempt at this event, 2 for its first retry...", examples=[1])
    status_code: int | None = Field(description="The receiver's status; null when none came.", examples=[200])
    error: str | None = Field(
        description="Why the attempt failed (a timeout, a refused connection...).", examples=[None]
    )
    duration_ms: int = Field(examples=[84])
    delivered: bool
    at: datetime

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryOut:
        return cls.model_validate(
            {
                "id": delivery.id,
                "event_id": delivery.event_id,
                "event_type": delivery.event_type,
                "position": delivery.position,
                "attempt": delivery.attempt,
                "status_code": delivery.status_code,
                "error": delivery.error,
                "duration_ms": delivery.duration_ms,
                "delivered": delivery.delivered,
                "at": delivery.at,
            }
        )


class DeliveryPageMeta(Output):
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    limit: int


class DeliveryPageOut(Output):
    data: list[DeliveryOut]
    meta: DeliveryPageMeta

    @classmethod
    def of(cls, deliveries: Sequence[Delivery], *, next_cursor: str | None, limit: int) -> DeliveryPageOut:
        return cls(
            data=[DeliveryOut.of(delivery) for delivery in deliveries],
            meta=DeliveryPageMeta(next_cursor=next_cursor, limit=limit),
        )
