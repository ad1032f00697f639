"""The Dapr publisher: each event, as the CloudEvent it is, to the sidecar's pub/sub API
(`POST /v1.0/publish/{pubsub}/{topic}`, `application/cloudevents+json`, so Dapr forwards it as is
rather than wrapping it). `metadata.partitionKey` is the person's id: on Kafka, one person's
events share a partition and keep their order."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import orjson

from todo_api.adapters.outbound.webhooks import post
from todo_api.domain.changes import FeedEvent
from todo_api.domain.webhooks import Lease, SendOutcome

CLOUDEVENTS_JSON = "application/cloudevents+json"


class DaprPublisher:
    """The `EventSender` port for the broker."""

    def __init__(self, endpoint: str, pubsub: str, topic: str, *, timeout_s: float) -> None:
        self._url = f"{endpoint.rstrip('/')}/v1.0/publish/{quote(pubsub, safe='')}/{quote(topic, safe='')}"
        self._client = httpx.AsyncClient(timeout=timeout_s, trust_env=False)

    @property
    def url(self) -> str:
        return self._url

    async def send(self, lease: Lease, event: FeedEvent) -> SendOutcome:
        return await post(
            self._client,
            f"{self._url}?{httpx.QueryParams({'metadata.partitionKey': lease.user_id})}",
            orjson.dumps(event.payload),
            {"content-type": CLOUDEVENTS_JSON},
        )

    async def close(self) -> None:
        await self._client.aclose()
