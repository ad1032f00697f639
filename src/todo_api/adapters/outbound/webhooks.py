"""Webhook deliveries as Standard Webhooks (standardwebhooks.com): the CloudEvent as the JSON
body, `webhook-id` (the event's id: receivers de-duplicate by it), `webhook-timestamp` and
`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import httpcore
import httpx
import orjson

from todo_api.adapters.outbound.addresses import GuardedNetwork
from todo_api.domain.changes import FeedEvent
from todo_api.domain.webhooks import SECRET_PREFIX, Lease, SendOutcome

USER_AGENT = "todo-api-webhooks/1"


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.digest(key, signed, hashlib.sha256)).decode()


def guarded_client(*, timeout_s: float, allow_private: bool) -> httpx.AsyncClient:
    """A client that never follows redirects, ignores proxy settings from the environment (a proxy
    would make the guard check the proxy) and connects only through the guard."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    transport._pool = httpcore.AsyncConnectionPool(  # httpx takes no network backend of its own
        ssl_context=httpx.create_ssl_context(),
        max_connections=100,
        max_keepalive_connections=20,
        keepalive_expiry=30,
        network_backend=GuardedNetwork(allow_private=allow_private),
    )
    return httpx.AsyncClient(transport=transport, timeout=timeout_s, follow_redirects=False, trust_env=False)


async def post(client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]) -> SendOutcome:
    """One POST, its answer's status only (the body is never read: a receiver cannot make us
    download much); any failure becomes an outcome, never an exception."""
    started = time.monotonic()
    try:
        async with client.stream("POST", url, content=body, headers=headers) as response:
            status: int | None = response.status_code
        error = None if status is not None and 200 <= status < 300 else f"HTTP {status}"
    except httpx.TimeoutException:
        status, error = None, f"timed out after {client.timeout.read}s"
    except httpx.HTTPError as failure:
        status, error = None, f"{type(failure).__name__}: {failure}"[:500]
    return SendOutcome(status, error, int((time.monotonic() - started) * 1000))


class StandardWebhookSender:
    """The `EventSender` port for webhooks."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def send(self, lease: Lease, event: FeedEvent) -> SendOutcome:
        body = orjson.dumps(event.payload)
        message_id = str(event.payload["id"])
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(lease.secret, message_id, timestamp, body),
        }
        return await post(self._client, lease.target, body, headers)

    async def close(self) -> None:
        await self._client.aclose()
