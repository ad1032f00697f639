"""Webhooks over real PostgreSQL and a real local receiver: registration (secret once, filters, the
cap, the SSRF guard), signed ordered deliveries verified with the `standardwebhooks` library,
retries with backoff, disabling, the delivery log, leases shared by two workers, the Dapr publish
API, and retention."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from standardwebhooks.webhooks import Webhook as Verifier

from tests.integration.conftest import make_settings
from tests.integration.tasks_support import User, assert_problem, create_task, sign_up
from tests.integration.webhook_receiver import receiver
from todo_api.adapters.sql.delivery_queues import SqlWebhookQueue
from todo_api.adapters.sql.engine import ConnectionPool
from todo_api.main import create_app, pool_options
from todo_api.use_cases.delivery import DeliverEvents
from todo_api.workers import Workers, build_workers

HOOKS = "/api/me/webhooks"
PUBLIC_TARGET = "https://93.184.215.14/hooks/todo"  # a public address: no DNS needed to check it
FAST = {"webhook_allow_private_targets": True, "webhook_retry_schedule_s": (0.2, 0.2, 0.2)}


@asynccontextmanager
async def api(database_url: str, **overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(**overrides), database_url=database_url)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        yield client


@asynccontextmanager
async def workers(database_url: str, **overrides: object) -> AsyncIterator[Workers]:
    """The workers a replica would run, built from settings, never started: tests call their passes."""
    settings = make_settings(**{**FAST, **overrides})
    pool = ConnectionPool(pool_options(settings, database_url))
    built = build_workers(settings, pool, lambda _: None)
    try:
        yield built
    finally:
        await built.stop()
        await pool.close()


class WorkerLog(logging.Handler):
    """What the workers logged (the app's logging setup replaces the root's handlers, pytest's too)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def worker_log() -> Iterator[WorkerLog]:
    handler, logger = WorkerLog(), logging.getLogger("todo_api.workers")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def job(built: Workers, name: str) -> Any:
    return next(loop.job for loop in built.loops if loop.job.name == name)


def webhooks_job(built: Workers) -> DeliverEvents:
    found: DeliverEvents = job(built, "webhooks")
    return found


async def register(client: httpx.AsyncClient, user: User, url: str, **fields: Any) -> dict[str, Any]:
    response = await client.post(HOOKS, json={"url": url, **fields}, headers=user.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def event_ids(client: httpx.AsyncClient, user: User) -> list[str]:
    response = await client.get("/api/me/changes", params={"since": "0"}, headers=user.headers)
    return [event["id"] for event in response.json()["data"]]


# --- Registration ---------------------------------------------------------------------------------


async def test_the_secret_is_shown_once_at_creation_and_never_again(client: httpx.AsyncClient) -> None:
    user = await sign_up(client)

    created = await register(client, user, PUBLIC_TARGET, description="Board sync")
    listed = (await client.get(HOOKS, headers=user.headers)).json()["data"]

    assert created["secret"].startswith("whsec_")
    assert len(base64.b64decode(created["secret"].removeprefix("whsec_"))) >= 24
    assert created["state"] == "active"
    assert created["event_types"] == []
    assert created["description"] == "Board sync"
    assert [hook["id"] for hook in listed] == [created["id"]]
    assert "secret" not in listed[0]


async def test_event_types_filter_is_kept_and_unknown_types_are_refused(client: httpx.AsyncClient) -> None:
    user = await sign_up(client)

    created = await register(client, user, PUBLIC_TARGET, event_types=["task.deleted", "task.created"])
    unknown = await client.post(
        HOOKS, json={"url": PUBLIC_TARGET, "event_types": ["task.exploded"]}, headers=user.headers
    )

    assert created["event_types"] == ["task.created", "task.deleted"]
    assert_problem(unknown, 422)


async def test_past_ten_webhooks_creation_is_refused(client: httpx.AsyncClient) -> None:
    user = await sign_up(client)
    for _ in range(10):
        await register(client, user, PUBLIC_TARGET)

    response = await client.post(HOOKS, json={"url": PUBLIC_TARGET}, headers=user.headers)

    assert_problem(response, 422, "too_many_webhooks")


async def test_a_deleted_webhook_is_gone_and_another_persons_is_not_found(client: httpx.AsyncClient) -> None:
    ada, bob = await sign_up(client), await sign_up(client)
    created = await register(client, ada, PUBLIC_TARGET)

    bobs_try = await client.delete(f"{HOOKS}/{created['id']}", headers=bob.headers)
    deleted = await client.delete(f"{HOOKS}/{created['id']}", headers=ada.headers)
    again = await client.delete(f"{HOOKS}/{created['id']}", headers=ada.headers)

    assert_problem(bobs_try, 404, "webhook_not_found")
    assert deleted.status_code == 204
    assert_problem(again, 404, "webhook_not_found")


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://[::1]/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://172.16.5.4/hook",
        "https://100.64.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://0.0.0.0/hook",
        "https://224.0.0.1/hook",
    ],
)
async def test_targets_on_internal_addresses_are_refused_at_creation(client: httpx.AsyncClient, url: str) -> None:
    user = await sign_up(client)

    response = await client.post(HOOKS, json={"url": url}, headers=user.headers)

    assert_problem(response, 422, "unsafe_webhook_url")


@pytest.mark.parametrize(
    "url", ["http://93.184.215.14/hook", "ftp://93.184.215.14/", "https://user:pw@93.184.215.14/", "/relative"]
)
async def test_only_https_urls_without_credentials_are_accepted(client: httpx.AsyncClient, url: str) -> None:
    user = await sign_up(client)

    response = await client.post(HOOKS, json={"url": url}, headers=user.headers)

    assert_problem(response, 422, "invalid_webhook_url")


# --- Delivery -------------------------------------------------------------------------------------


async def test_deliveries_are_signed_standard_webhooks_in_feed_order(database_url: str) -> None:
    with receiver() as target:
        async with api(database_url, **FAST) as client, workers(database_url) as built:
            user = await sign_up(client)
            created = await register(client, user, f"{target.url}/hook")
            for number in range(5):
                await create_task(client, user, title=f"Task {number}")

            await webhooks_job(built).run_once()
            ids = await event_ids(client, user)

        verifier = Verifier(created["secret"])
        for request in target.received:
            verifier.verify(request.body, request.headers)  # raises unless signed with the secret
        # Event 1 is the Inbox made at sign-up, before the webhook was: not sent.
        assert [request.headers["webhook-id"] for request in target.received] == ids[1:]
        assert [body["position"] for body in target.bodies()] == [2, 3, 4, 5, 6]
        assert [body["data"]["title"] for body in target.bodies()] == [f"Task {n}" for n in range(5)]
        assert {request.headers["content-type"] for request in target.received} == {"application/json"}


async def test_a_webhook_gets_only_changes_after_it_was_created_and_only_its_types(database_url: str) -> None:
    with receiver() as target:
        async with api(database_url, **FAST) as client, workers(database_url) as built:
            user = await sign_up(client)
            await create_task(client, user, title="Before")
            await register(client, user, f"{target.url}/all")
            await register(client, user, f"{target.url}/deletions", event_types=["task.deleted"])
            await create_task(client, user, title="After")

            await webhooks_job(built).run_once()

        assert [(r.path, r.json()["data"]["title"]) for r in target.received] == [("/all", "After")]


async def test_a_failed_delivery_is_retried_after_a_pause_then_delivered(database_url: str) -> None:
    with receiver() as target:
        target.status = 500
        async with (
            api(database_url, **FAST) as client,
            workers(database_url, webhook_retry_schedule_s=(0.5, 0.5)) as built,
        ):
            user = await sign_up(client)
            hook = await register(client, user, f"{target.url}/hook")
            await create_task(client, user)
            deliver = webhooks_job(built)

            await deliver.run_once()
            await deliver.run_once()  # not due yet: the pause has not passed
            assert len(target.received) == 1
            await asyncio.sleep(0.6)
            target.status = 200
            await deliver.run_once()

            log = (await client.get(f"{HOOKS}/{hook['id']}/deliveries", headers=user.headers)).json()["data"]

        assert len({request.headers["webhook-id"] for request in target.received}) == 1
        assert [(entry["attempt"], entry["status_code"], entry["delivered"]) for entry in log] == [
            (2, 200, True),
            (1, 500, False),
        ]
        assert log[1]["error"] == "HTTP 500"


async def test_a_webhook_failing_past_its_schedule_is_disabled_and_logged(
    database_url: str, worker_log: WorkerLog
) -> None:
    with receiver() as target:
        target.status = 503
        async with (
            api(database_url, **FAST) as client,
            workers(database_url, webhook_retry_schedule_s=(0.05,)) as built,
        ):
            user = await sign_up(client)
            hook = await register(client, user, f"{target.url}/hook")
            await create_task(client, user)
            deliver = webhooks_job(built)
            await deliver.run_once()
            await asyncio.sleep(0.1)
            await deliver.run_once()
            await asyncio.sleep(0.1)
            await deliver.run_once()  # disabled: nothing more is sent

            shown = (await client.get(HOOKS, headers=user.headers)).json()["data"][0]

        assert len(target.received) == 2
        assert shown["id"] == hook["id"]
        assert shown["state"] == "disabled"
        assert "2 attempts failed" in shown["disabled_reason"]
        assert "webhook_disabled" in worker_log.messages


async def test_a_410_from_the_receiver_disables_the_webhook_at_once(database_url: str) -> None:
    with receiver() as target:
        target.status = 410
        async with api(database_url, **FAST) as client, workers(database_url) as built:
            user = await sign_up(client)
            await register(client, user, f"{target.url}/hook")
            await create_task(client, user)

            await webhooks_job(built).run_once()
            shown = (await client.get(HOOKS, headers=user.headers)).json()["data"][0]

        assert shown["state"] == "disabled"
        assert shown["disabled_reason"] == "The receiver answered 410 Gone."


async def test_a_host_resolving_to_loopback_is_refused_at_delivery_time(database_url: str) -> None:
    """Created while allowed (think: DNS said public then), delivered by a worker that refuses:
    `localhost` resolves to loopback when the connection is made, so nothing is sent."""
    with receiver() as target:
        async with (
            api(database_url, **FAST) as client,
            workers(database_url, webhook_allow_private_targets=False) as built,
        ):
            user = await sign_up(client)
            hook = await register(client, user, f"http://localhost:{target.port}/hook")
            await create_task(client, user)

            await webhooks_job(built).run_once()
            log = (await client.get(f"{HOOKS}/{hook['id']}/deliveries", headers=user.headers)).json()["data"]

        assert target.received == []
        assert log[0]["delivered"] is False
        assert "unsafe target refused" in log[0]["error"]


async def test_the_delivery_log_pages_newest_first(database_url: str) -> None:
    with receiver() as target:
        async with api(database_url, **FAST) as client, workers(database_url) as built:
            user = await sign_up(client)
            hook = await register(client, user, f"{target.url}/hook")
            for _ in range(5):
                await create_task(client, user)
            await webhooks_job(built).run_once()

            url = f"{HOOKS}/{hook['id']}/deliveries"
            first = await client.get(url, params={"limit": 3}, headers=user.headers)
            cursor = first.json()["meta"]["next_cursor"]
            second = await client.get(url, params={"limit": 3, "cursor": cursor}, headers=user.headers)
            forged = await client.get(url, params={"cursor": "bm90LW91cnM"}, headers=user.headers)

        assert 'rel="next"' in first.headers["link"]
        positions = [entry["position"] for entry in first.json()["data"] + second.json()["data"]]
        assert positions == [6, 5, 4, 3, 2]  # event 1, the Inbox made at sign-up, came before the webhook
        assert second.json()["meta"]["next_cursor"] is None
        assert_problem(forged, 400, "invalid_cursor")


# --- Leases ---------------------------------------------------------------------------------------


async def test_two_workers_racing_never_deliver_an_event_twice(database_url: str) -> None:
    with receiver() as target:
        target.delay_s = 0.05
        async with api(database_url, **FAST) as client, workers(database_url) as first, workers(database_url) as second:
            users = [await sign_up(client) for _ in range(3)]
            for user in users:
                for _ in range(2):
                    await register(client, user, f"{target.url}/hook")
                for _ in range(4):
                    await create_task(client, user)

            for _ in range(5):
                await asyncio.gather(webhooks_job(first).run_once(), webhooks_job(second).run_once())

        deliveries = [(request.json()["source"], request.json()["id"]) for request in target.received]
        assert len(deliveries) == 3 * 2 * 4  # every event of each person, to each of their two webhooks
        assert all(count == 2 for count in Counter(deliveries).values())  # and to each exactly once


async def test_a_lease_left_by_a_dead_worker_is_taken_over_when_it_expires(database_url: str) -> None:
    with receiver() as target:
        async with api(database_url, **FAST) as client, workers(database_url) as built:
            user = await sign_up(client)
            await register(client, user, f"{target.url}/hook")
            await create_task(client, user)
            settings = make_settings(**FAST)
            dead_pool = ConnectionPool(pool_options(settings, database_url))
            try:
                # A worker leases the webhook for one second and dies before sending anything.
                leased = await SqlWebhookQueue(dead_pool).lease(10, lease_s=1.0)
            finally:
                await dead_pool.close()
            assert len(leased) == 1

            await webhooks_job(built).run_once()
            assert target.received == []
            await asyncio.sleep(1.1)
            await webhooks_job(built).run_once()

        assert len(target.received) == 1


async def test_a_worker_whose_lease_was_taken_over_cannot_move_the_cursor(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with api(database_url, **FAST) as client:
        user = await sign_up(client)
        await register(client, user, "https://93.184.215.14/hook")
        await create_task(client, user)
    settings = make_settings(**FAST)
    pool = ConnectionPool(pool_options(settings, database_url))
    try:
        queue = SqlWebhookQueue(pool)
        stale = (await queue.lease(10, lease_s=0.2))[0]
        await asyncio.sleep(0.3)
        fresh = (await queue.lease(10, lease_s=30))[0]

        assert await queue.advance(stale, 1, None) is False
        assert await queue.advance(fresh, 1, None) is True
    finally:
        await pool.close()
    assert await db.fetchval("SELECT position FROM webhooks") == 1


# --- The Dapr publisher ---------------------------------------------------------------------------


async def test_the_dapr_publisher_posts_cloudevents_to_the_sidecar_publish_api(database_url: str) -> None:
    with receiver() as sidecar:
        async with (
            api(database_url) as client,
            workers(
                database_url,
                event_publisher="dapr",
                dapr_http_endpoint=sidecar.url,
                dapr_pubsub_name="kafka-pubsub",
                dapr_topic="todo.events",
            ) as built,
        ):
            ada, bob = await sign_up(client), await sign_up(client)
            for user in (ada, bob, ada):
                await create_task(client, user)

            await job(built, "dapr").run_once()
            again = await job(built, "dapr").run_once()
            ada_ids = await event_ids(client, ada)

        assert again == 0
        assert {request.path.split("?")[0] for request in sidecar.received} == {
            "/v1.0/publish/kafka-pubsub/todo.events"
        }
        assert {request.headers["content-type"] for request in sidecar.received} == {"application/cloudevents+json"}
        adas = [request for request in sidecar.received if f"metadata.partitionKey={ada.id}" in request.path]
        assert [request.json()["id"] for request in adas] == ada_ids
        assert all(request.json()["specversion"] == "1.0" for request in sidecar.received)
        assert len(sidecar.received) == 5  # each person's Inbox, made at sign-up, and three tasks


# --- Retention ------------------------------------------------------------------------------------


async def test_retention_prunes_old_events_raises_the_horizon_and_old_tokens_expire(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with api(database_url) as client, workers(database_url, change_retention_days=30) as built:
        user = await sign_up(client)
        for _ in range(4):
            await create_task(client, user)
        # Events: the Inbox made at sign-up (1), then the four tasks (2 to 5).
        await db.execute(
            "UPDATE events SET created_at = now() - interval '40 days' WHERE user_id = $1 AND position <= 3", user.id
        )

        removed = await job(built, "retention").run_once()
        expired = await client.get("/api/me/changes", params={"since": "2"}, headers=user.headers)
        kept = await client.get("/api/me/changes", params={"since": "3"}, headers=user.headers)

    assert removed == 3
    assert await db.fetchval("SELECT pruned_through FROM change_feeds WHERE user_id = $1", user.id) == 3
    assert_problem(expired, 410, "sync_token_expired")
    assert [event["position"] for event in kept.json()["data"]] == [4, 5]


async def test_retention_prunes_trash_and_the_delivery_log_past_the_window(
    database_url: str, db: asyncpg.Connection
) -> None:
    with receiver() as target:
        async with api(database_url, **FAST) as client, workers(database_url) as built:
            user = await sign_up(client)
            await register(client, user, f"{target.url}/hook")
            await create_task(client, user)
            await create_task(client, user)
            await webhooks_job(built).run_once()
            # Delivered: the two tasks, events 2 and 3 (event 1, the Inbox, came before the webhook).
            await db.execute("UPDATE webhook_deliveries SET at = now() - interval '31 days' WHERE position = 2")
            for task_id, age_days in ((9001, 40), (9002, 1)):
                await db.execute(
                    "INSERT INTO deleted_tasks (id, user_id, list_id, position, title, completed, priority, tags,"
                    " created_at, updated_at, version, deleted_at, root_id) VALUES ($1, $2, 1, 'a0', 'Gone', false,"
                    " 0, '{}', now(), now(), 1, now() - make_interval(days => $3), $1)",
                    task_id,
                    user.id,
                    age_days,
                )

            await job(built, "retention").run_once()

        assert [row["id"] for row in await db.fetch("SELECT id FROM deleted_tasks")] == [9002]
        assert [row["position"] for row in await db.fetch("SELECT position FROM webhook_deliveries")] == [3]


async def test_retention_forgets_sessions_ended_before_the_window(database_url: str, db: asyncpg.Connection) -> None:
    await db.execute(
        "INSERT INTO revoked_sessions (session_id, revoked_at) VALUES ('old', now() - interval '31 days'), "
        "('recent', now() - interval '29 days')"
    )
    async with workers(database_url, change_retention_days=30) as built:
        await job(built, "retention").run_once()
    assert [row["session_id"] for row in await db.fetch("SELECT session_id FROM revoked_sessions")] == ["recent"]


async def test_retention_deletes_sessions_and_refresh_tokens_expired_before_the_window(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with api(database_url) as client:
        user = await sign_up(client)  # a live session and its refresh token
    await db.execute(
        "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at) VALUES "
        "('expired-long-ago', $1, now() - interval '70 days', now() - interval '70 days', now() - interval '31 days'),"
        "('expired-lately', $1, now() - interval '40 days', now() - interval '40 days', now() - interval '29 days')",
        user.id,
    )
    await db.execute(
        "INSERT INTO refresh_tokens (token_hash, family_id, user_id, created_at, expires_at) VALUES "
        "('old-hash', 'expired-long-ago', $1, now() - interval '70 days', now() - interval '31 days'),"
        "('recent-hash', 'expired-lately', $1, now() - interval '40 days', now() - interval '29 days')",
        user.id,
    )
    async with workers(database_url, change_retention_days=30) as built:
        await job(built, "retention").run_once()

    sessions = {row["id"] for row in await db.fetch("SELECT id FROM sessions WHERE user_id = $1", user.id)}
    hashes = {
        row["token_hash"] for row in await db.fetch("SELECT token_hash FROM refresh_tokens WHERE user_id = $1", user.id)
    }
    assert "expired-long-ago" not in sessions
    assert "old-hash" not in hashes
    assert "expired-lately" in sessions
    assert "recent-hash" in hashes
    assert len(sessions) == len(hashes) == 2  # and the live login's


async def test_a_webhook_behind_the_horizon_skips_ahead_rather_than_stalling(
    database_url: str, db: asyncpg.Connection, worker_log: WorkerLog
) -> None:
    with receiver() as target:
        async with api(database_url, **FAST) as client, workers(database_url) as built:
            user = await sign_up(client)
            await register(client, user, f"{target.url}/hook")
            for _ in range(3):
                await create_task(client, user)
            # Events: the Inbox (1, before the webhook), then tasks 2, 3 and 4; 1 to 3 are pruned.
            await db.execute("UPDATE events SET created_at = now() - interval '40 days' WHERE position <= 3")
            await job(built, "retention").run_once()

            await webhooks_job(built).run_once()

        assert [body["position"] for body in target.bodies()] == [4]
        assert "delivery_skipped_pruned_events" in worker_log.messages
