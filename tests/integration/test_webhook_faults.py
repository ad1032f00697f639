"""Webhook delivery survives its receiver going down and the API restarting mid-retry, and runs
as `python -m todo_api worker` alone: real processes on the test database, a real receiver."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx

from tests.integration.live_server import PYTHON, free_port, live_server, server_env
from tests.integration.tasks_support import PASSWORD
from tests.integration.webhook_receiver import receiver

SECRET_KEY = "webhook-fault-test-secret-key-0123456789abcdef"
RETRIES = ",".join(["0.3"] * 60)  # an outage of up to ~18 s never disables the webhook


def _env(database_url: str, port: int, **more: str) -> dict[str, str]:
    return server_env(
        DATABASE_URL=database_url,
        PORT=str(port),
        SECRET_KEY=SECRET_KEY,
        BCRYPT_COST="4",
        LOG_FORMAT="json",
        WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
        WEBHOOK_RETRY_SCHEDULE_S=RETRIES,
        WORKER_POLL_INTERVAL_S="0.1",
        WORKER_LEASE_S="5",
        WEBHOOK_TIMEOUT_S="1",
        **more,
    )


def _sign_up(http: httpx.Client) -> dict[str, str]:
    email = f"fault-{uuid.uuid4().hex[:10]}@example.com"
    body = http.post("/api/auth/signup", json={"email": email, "password": PASSWORD}).json()
    return {"Authorization": f"Bearer {body['access_token']}"}


def _event_ids(http: httpx.Client, headers: dict[str, str]) -> list[str]:
    return [event["id"] for event in http.get("/api/me/changes?since=0", headers=headers).json()["data"]]


def test_every_event_arrives_after_a_receiver_outage_and_an_api_restart(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    with receiver(up=False) as target:
        with live_server(_env(database_url, port), log_path=tmp_path / "first.log") as server:
            http = httpx.Client(base_url=server.base_url, timeout=10)
            headers = _sign_up(http)
            created = http.post("/api/me/webhooks", json={"url": f"{target.url}/hook"}, headers=headers)
            assert created.status_code == 201, created.text
            for number in range(5):
                assert http.post("/api/me/tasks", json={"title": f"T{number}"}, headers=headers).status_code == 201
            time.sleep(1.5)  # several failed attempts: the receiver is down
            log = http.get(f"/api/me/webhooks/{created.json()['id']}/deliveries", headers=headers).json()["data"]
            assert log, "no attempt was made while the receiver was down"
            assert not any(entry["delivered"] for entry in log)
            expected = _event_ids(http, headers)
        # The API is gone mid-retry; the receiver comes back; a new API process takes over.
        target.start()
        with live_server(_env(database_url, port), log_path=tmp_path / "second.log"):
            target.wait_for(lambda: {r.headers["webhook-id"] for r in target.received} >= set(expected))

    received = [request.headers["webhook-id"] for request in target.received]
    assert set(received) == set(expected)  # none lost
    assert list(dict.fromkeys(received)) == expected  # in order; any duplicate repeats an id already sent
    assert all(request.json()["id"] == request.headers["webhook-id"] for request in target.received)


def test_the_worker_command_delivers_alone_and_stops_cleanly_on_sigterm(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    api_env = _env(database_url, port, RUN_WORKERS="false")
    with receiver() as target, live_server(api_env, log_path=tmp_path / "api.log") as server:
        http = httpx.Client(base_url=server.base_url, timeout=10)
        headers = _sign_up(http)
        http.post("/api/me/webhooks", json={"url": f"{target.url}/hook"}, headers=headers)
        http.post("/api/me/tasks", json={"title": "Sent by the worker"}, headers=headers)
        time.sleep(0.5)
        assert target.received == []  # the API runs no workers

        with (tmp_path / "worker.log").open("wb") as log:
            worker = subprocess.Popen(
                [PYTHON, "-m", "todo_api", "worker"],
                env=_env(database_url, port),
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            target.wait_for(lambda: len(target.received) == 1)
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(20)
        finally:
            if worker.poll() is None:
                worker.kill()

    assert code == 0
    assert target.bodies()[0]["data"]["title"] == "Sent by the worker"
    assert "workers_stopped" in (tmp_path / "worker.log").read_text()
