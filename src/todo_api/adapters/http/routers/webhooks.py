"""/api/{user_id}/webhooks: push the change feed to an endpoint of yours (Standard Webhooks).

Each delivery is a POST of one CloudEvent, signed with the secret shown once at creation
(`webhook-id`, `webhook-timestamp`, `webhook-signature`); docs/operations.md shows how to verify it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from todo_api.adapters.http.deps import TaskOwner
from todo_api.adapters.http.paging import Cursor, RowPaging
from todo_api.adapters.http.problems import problem_responses
from todo_api.adapters.http.schemas import MAX_ID
from todo_api.adapters.http.webhook_schemas import (
    DeliveryPageOut,
    WebhookCreate,
    WebhookCreatedOut,
    WebhookListOut,
    WebhookOut,
)
from todo_api.domain.webhooks import MAX_DELIVERIES_PAGE, MAX_WEBHOOKS

WebhookId = Annotated[int, Path(ge=1, le=MAX_ID)]
_DELIVERIES = "deliveries"

router = APIRouter(prefix="/api/{user_id}/webhooks", tags=["webhooks"])


@router.get(
    "",
    operation_id="listWebhooks",
    summary="Your webhooks",
    description="Their secrets are never shown again after creation.",
    responses=problem_responses(401, 403, 422),
)
async def list_webhooks(caller: TaskOwner) -> WebhookListOut:
    found = await caller.use_cases.list_webhooks.execute(caller.user_id)
    return WebhookListOut(data=[WebhookOut.of(webhook) for webhook in found])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    operation_id="createWebhook",
    summary="Register a webhook: every change after now is POSTed to it",
    description="The answer carries the signing `secret`, **once**. Deliveries are ordered, retried with "
    "backoff for about a day (then the webhook is disabled), and at least once: de-duplicate by `webhook-id`. "
    f"422 `unsafe_webhook_url` for a target on a private, loopback, link-local or metadata address; "
    f"`too_many_webhooks` past {MAX_WEBHOOKS}.",
    responses=problem_responses(401, 403, 422),
)
async def create_webhook(body: WebhookCreate, caller: TaskOwner, response: Response) -> WebhookCreatedOut:
    created = await caller.use_cases.create_webhook.execute(
        caller.user_id, body.url, body.event_types, body.description
    )
    response.headers["Location"] = f"/api/{caller.user_id}/webhooks/{created.webhook.id}"
    return WebhookCreatedOut.model_validate({**WebhookOut.of(created.webhook).model_dump(), "secret": created.secret})


@router.delete(
    "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="deleteWebhook",
    summary="Remove a webhook (a delivery in flight may still arrive)",
    responses=problem_responses(401, 403, 404, 422),
)
async def delete_webhook(webhook_id: WebhookId, caller: TaskOwner) -> Response:
    await caller.use_cases.delete_webhook.execute(caller.user_id, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{webhook_id}/deliveries",
    operation_id="listWebhookDeliveries",
    summary="A webhook's delivery log, newest first",
    description="One entry per attempt (kept for the retention window). Follow `meta.next_cursor` "
    '(or `Link: rel="next"`).',
    responses=problem_responses(400, 401, 403, 404, 422),
)
async def list_deliveries(
    webhook_id: WebhookId,
    caller: TaskOwner,
    request: Request,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=MAX_DELIVERIES_PAGE)] = 50,
    cursor: Cursor = None,
) -> DeliveryPageOut:
    paging = RowPaging(caller.services.cursors, _DELIVERIES, request, response)
    page = await caller.use_cases.list_deliveries.execute(caller.user_id, webhook_id, limit, paging.position(cursor))
    return DeliveryPageOut.of(page.deliveries, next_cursor=paging.next_cursor(page.next_before), limit=limit)
