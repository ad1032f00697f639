"""`Idempotency-Key`: a retry of the same request within 24 hours gets the first outcome back.

The outcome is recorded in the transaction that produced it, so it exists exactly when the change
does. Two requests racing with one key: the second's claim fails, its transaction rolls back, and
it answers with the first's outcome once that one has committed.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from todo_api.domain.errors import InvalidInput, ServiceUnavailable
from todo_api.domain.ports import IdempotentOutcome, UnitOfWorkFactory

IDEMPOTENCY_WINDOW = timedelta(hours=24)


def fingerprint(request: Any) -> str:
    """A request's identity: the same JSON-able values give the same hash."""
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


def check_same_request(earlier: IdempotentOutcome, request_hash: str) -> None:
    if earlier.request_hash != request_hash:
        raise InvalidInput(
            "This Idempotency-Key was used with a different request body.", code="idempotency_key_reused"
        )


async def committed_outcome(
    uow: UnitOfWorkFactory, user_id: str, key: str, since: datetime, request_hash: str
) -> IdempotentOutcome:
    """The outcome a concurrent request with the same key committed, once our claim lost to it."""
    async with uow(read_only=True) as unit:
        earlier = await unit.idempotency_keys.find(user_id, key, since)
    if earlier is None:
        raise ServiceUnavailable("A request with this Idempotency-Key is in progress.", retry_after_s=1)
    check_same_request(earlier, request_hash)
    return earlier
