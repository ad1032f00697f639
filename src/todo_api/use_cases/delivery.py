"""Delivering the change feed (webhooks, the broker) and pruning what retention no longer keeps.

Each job is one pass, `run_once()`, which a test calls directly and `workers.py` calls in a loop.
A delivery pass leases due followers (a short transaction, rows other workers hold are skipped),
sends their next events outside any transaction, and moves each cursor only while its lease is
still ours. A worker that dies mid-delivery leaves its lease to expire; the next one sends the
same event again, with the same id: at least once, never lost.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from todo_api.domain.changes import FeedEvent
from todo_api.domain.ports import DeliveryQueue, EventSender, RetentionStore
from todo_api.domain.webhooks import Attempt, Lease, RetryPolicy, SendOutcome, wants

log = logging.getLogger("todo_api.workers")


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    lease_s: float = 60.0
    """How long a worker holds a follower; more than a batch of sends takes (see `_budget`)."""
    send_timeout_s: float = 10.0
    batch: int = 50
    """Events read per lease."""
    followers: int = 20
    """Followers leased per pass (each drained concurrently)."""
    disable_on_gone: bool = True
    """A 410 from a receiver disables its webhook at once."""
    log_attempts: bool = True


class DeliverEvents:
    """One kind of follower (webhooks, or the publisher's cursors) and how to send to it."""

    def __init__(
        self,
        name: str,
        queue: DeliveryQueue,
        sender: EventSender,
        policy: RetryPolicy,
        options: DeliveryOptions,
        *,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.name = name
        self._queue, self._sender, self._policy, self._options, self._jitter = queue, sender, policy, options, jitter

    async def run_once(self) -> int:
        """Lease what is due, send; how many events were dealt with (sent, skipped or failed)."""
        leases = await self._queue.lease(self._options.followers, self._options.lease_s)
        if not leases:
            return 0
        done = await asyncio.gather(*(self._drain(lease) for lease in leases))
        return sum(done)

    def _budget(self) -> float:
        """Until when this worker may start a send and still record it inside its lease."""
        return time.monotonic() + self._options.lease_s - self._options.send_timeout_s - 2.0

    async def _drain(self, lease: Lease) -> int:
        deadline = self._budget()
        position, failures = lease.position, lease.attempts
        if position < lease.horizon:
            log.warning(
                "delivery_skipped_pruned_events",
                extra={"follower": self.name, "follower_id": lease.follower_id, "from": position, "to": lease.horizon},
            )
            position, failures = lease.horizon, 0
        events = await self._queue.events(lease.user_id, position, self._options.batch)
        dealt = 0
        for event in events:
            if time.monotonic() > deadline:
                break
            dealt += 1
            if not wants(lease.event_types, str(event.payload.get("type", ""))):
                position, failures = event.position, 0
                continue
            outcome = await self._sender.send(lease, event)
            attempt = _attempt(event, failures + 1, outcome)
            if not outcome.delivered:
                await self._failed(lease, position, attempt)
                return dealt
            position, failures = event.position, 0
            if not await self._queue.advance(lease, position, attempt if self._options.log_attempts else None):
                return dealt  # the lease expired under us: its new holder goes on from the cursor
        await self._queue.release(lease, position, attempts=failures, retry_in_s=0)
        return dealt

    async def _failed(self, lease: Lease, position: int, attempt: Attempt) -> None:
        failures = attempt.attempt
        pause = self._policy.pause(failures, self._jitter())
        reason = None
        if attempt.outcome.gone and self._options.disable_on_gone and self._policy.give_up:
            reason = "The receiver answered 410 Gone."
        elif pause is None:
            reason = f"{failures} attempts failed over about a day; the last: {_what_failed(attempt)}."
        await self._queue.release(
            lease,
            position,
            attempts=failures,
            retry_in_s=pause or 0,
            attempt=attempt if self._options.log_attempts else None,
            disabled_reason=reason,
        )
        if reason is not None:
            log.warning(
                "webhook_disabled",
                extra={"webhook_id": lease.follower_id, "user_id": lease.user_id, "reason": reason},
            )
            return
        log.info(
            "delivery_failed",
            extra={
                "follower": self.name,
                "follower_id": lease.follower_id,
                "event_id": attempt.event_id,
                "position": attempt.position,
                "attempt": failures,
                "retry_in_s": round(pause or 0, 1),
                "error": _what_failed(attempt),
            },
        )


def _attempt(event: FeedEvent, number: int, outcome: SendOutcome) -> Attempt:
    return Attempt(
        str(event.payload.get("id", "")), str(event.payload.get("type", "")), event.position, number, outcome
    )


def _what_failed(attempt: Attempt) -> str:
    if attempt.outcome.error:
        return attempt.outcome.error
    return f"HTTP {attempt.outcome.status_code}"


@dataclass(frozen=True, slots=True)
class RetentionOptions:
    days: int = 30
    batch: int = 1000
    max_batches: int = 100
    """Per pass and kind: a long backlog is worked off over several passes, never in one long run."""


class PruneExpired:
    """Retention: events (raising `pruned_through`, so older sync tokens answer 410), deleted tasks
    and lists past restoring, old delivery log rows, the record of sessions ended long ago, and
    sessions and refresh tokens that expired long ago."""

    name = "retention"

    def __init__(self, store: RetentionStore, options: RetentionOptions) -> None:
        self._store, self._options = store, options

    async def run_once(self) -> int:
        removed = 0
        store = self._store
        prunes = (store.prune_events, store.prune_trash, store.prune_deliveries, store.prune_ended_sessions)
        for prune in (*prunes, store.prune_expired_sessions):
            for _ in range(self._options.max_batches):
                count = await prune(self._options.days, self._options.batch)
                removed += count
                if count < self._options.batch:
                    break
        if removed:
            log.info("retention_pruned", extra={"rows": removed, "older_than_days": self._options.days})
        return removed
