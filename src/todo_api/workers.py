"""Background loops: webhook and broker delivery, retention. Started by the app's lifespan
(`RUN_WORKERS=true`, the default) or alone by `python -m todo_api worker`; several replicas share
the work through leases in the database, so running them everywhere is safe.

A loop calls its job's `run_once()`; a pass that did something runs again at once, an idle one
waits its interval (or until asked to stop). Stopping lets a pass in flight finish its current
send, then cancels what is left after a grace period: a lease it still held simply expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from todo_api.adapters.http.schemas import event_data
from todo_api.adapters.outbound.dapr import DaprPublisher
from todo_api.adapters.outbound.webhooks import StandardWebhookSender, guarded_client
from todo_api.adapters.sql.delivery_queues import SqlPublisherQueue, SqlWebhookQueue
from todo_api.adapters.sql.engine import ConnectionPool
from todo_api.adapters.sql.retention import SqlRetentionStore
from todo_api.adapters.sql.unit_of_work import Announce, SqlUnitsOfWork
from todo_api.config import Settings
from todo_api.domain.webhooks import DAY_OF_RETRIES, RetryPolicy
from todo_api.use_cases.delivery import DeliverEvents, DeliveryOptions, PruneExpired, RetentionOptions
from todo_api.use_cases.reminders import FireReminders

log = logging.getLogger("todo_api.workers")

BROKER_RETRIES = (1.0, 5.0, 15.0, 30.0, 60.0)
"""The broker is retried for ever (an outage must not lose events), at most a minute apart."""
RETENTION_INTERVAL_S = 60.0


class Job(Protocol):
    name: str

    async def run_once(self) -> int: ...


@dataclass
class Loop:
    job: Job
    interval_s: float


@dataclass
class Workers:
    loops: Sequence[Loop]
    grace_s: float = 15.0
    closers: Sequence[Callable[[], Awaitable[None]]] = ()
    announce: bool = True
    """Log starting and stopping (the API's own upkeep loops do not: they run in every process)."""
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self._stopping.clear()
        self._tasks = [asyncio.create_task(self._run(loop), name=f"worker:{loop.job.name}") for loop in self.loops]
        if self.announce:
            log.info("workers_started", extra={"jobs": [loop.job.name for loop in self.loops]})

    async def _run(self, loop: Loop) -> None:
        while not self._stopping.is_set():
            try:
                busy = await loop.job.run_once() > 0
            except Exception:
                log.exception("worker_pass_failed", extra={"job": loop.job.name})
                busy = False
            if busy:
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), loop.interval_s)

    async def stop(self) -> None:
        self._stopping.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=self.grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._tasks = []
        for close in self.closers:
            await close()
        if self.announce:
            log.info("workers_stopped")


REMINDER_INTERVAL_S = 1.0
"""How often an idle scheduler looks for due reminders: the most a reminder waits, under normal load."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def build_workers(settings: Settings, pool: ConnectionPool, announce: Announce) -> Workers:
    """`announce`: what tells the streams of the fired reminders' owners (unit_of_work.py)."""
    options = DeliveryOptions(
        lease_s=settings.worker_lease_s,
        send_timeout_s=settings.webhook_timeout_s,
        disable_on_gone=settings.webhook_disable_on_gone,
    )
    sender = StandardWebhookSender(
        guarded_client(timeout_s=settings.webhook_timeout_s, allow_private=settings.webhook_allow_private_targets)
    )
    webhooks = DeliverEvents(
        "webhooks",
        SqlWebhookQueue(pool),
        sender,
        RetryPolicy(settings.webhook_retry_schedule_s or DAY_OF_RETRIES),
        options,
    )
    loops = [Loop(webhooks, settings.worker_poll_interval_s)]
    closers: list[Callable[[], Awaitable[None]]] = [sender.close]
    if settings.event_publisher == "dapr":
        publisher = DaprPublisher(
            settings.dapr_endpoint, settings.dapr_pubsub_name, settings.dapr_topic, timeout_s=settings.webhook_timeout_s
        )
        broker = DeliverEvents(
            "dapr",
            SqlPublisherQueue(pool),
            publisher,
            RetryPolicy(BROKER_RETRIES, give_up=False),
            DeliveryOptions(
                lease_s=settings.worker_lease_s, send_timeout_s=settings.webhook_timeout_s, log_attempts=False
            ),
        )
        loops.append(Loop(broker, settings.worker_poll_interval_s))
        closers.append(publisher.close)
    retention = PruneExpired(SqlRetentionStore(pool), RetentionOptions(days=settings.change_retention_days))
    loops.append(Loop(retention, RETENTION_INTERVAL_S))
    loops.append(Loop(FireReminders(SqlUnitsOfWork(pool, event_data, announce), SystemClock()), REMINDER_INTERVAL_S))
    return Workers(loops, grace_s=settings.webhook_timeout_s + 5, closers=closers)
