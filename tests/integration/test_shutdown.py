"""Graceful shutdown of `python -m todo_api` on its embedded PostgreSQL, as a real process.

SIGTERM arrives while N requests are in flight: all N complete with 2xx, new connections are
refused, the process exits 0 within the graceful timeout, and the embedded database it started is
stopped cleanly (no postmaster left, `postmaster.pid` gone, "database system is shut down").

The app has no slow endpoint, so the test makes requests slow from the client side, without
depending on how fast this machine is: each is a `POST /api/me/tasks` sent with
`Expect: 100-continue`. The server answers `100 Continue` only once the app is running the request
and asks for the body, which proves the request is in flight; the test sends SIGTERM only after all
N interim answers, then streams each body in slow chunks and reads the final responses.

It runs twice: with one worker (the default) and with two (WEB_CONCURRENCY=2, uvicorn's
supervisor in front of its workers), each on a fresh embedded database in a temporary directory.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.integration.live_server import (
    free_port,
    live_server,
    migrate_embedded,
    postmaster_pid,
    processes_mentioning,
    server_env,
    stop_embedded,
    wait_gone,
)

IN_FLIGHT = 20
GRACEFUL_TIMEOUT_S = 20.0  # `timeout_graceful_shutdown` in todo_api/__main__.py
REFUSAL_WINDOW_S = 3.0  # how long after SIGTERM a new connection may still get in
SECRET_KEY = "shutdown-test-secret-key-0123456789-abcdefghijklmnop"


@dataclass
class HeldRequest:
    """A request whose headers the app has and whose body it is waiting for."""

    index: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    body: bytes


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class ShutdownRun:
    workers: int
    data_dir: Path
    answers: list[Answer | BaseException] = field(default_factory=list)
    new_connection: str = "not tried"
    new_connection_after_s: float = 0.0
    new_connection_attempts: list[tuple[float, str]] = field(default_factory=list)
    returncode: int | None = None
    exit_after_s: float | None = None
    postmaster_pid: int | None = None
    postmaster_alive_after_exit: bool = True
    pid_file_after_exit: bool = True
    postgres_processes_after_exit: list[int] = field(default_factory=list)
    postgres_log: str = ""
    server_log: str = ""


async def hold_request(port: int, token: str, index: int) -> HeldRequest:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({"title": f"in flight at SIGTERM #{index}", "tags": ["shutdown"]}).encode()
    head = (
        f"POST /api/me/tasks HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Expect: 100-continue\r\n"
        f"X-Request-ID: shutdown-in-flight-{index:04d}\r\n"
        f"\r\n"
    )
    writer.write(head.encode())
    await writer.drain()
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
    assert interim.startswith(b"HTTP/1.1 100 "), interim
    return HeldRequest(index, reader, writer, body)


async def finish_request(held: HeldRequest) -> Answer:
    """Stream the body in three slow chunks, then read the whole response."""
    try:
        third = len(held.body) // 3
        for chunk in (held.body[:third], held.body[third : 2 * third], held.body[2 * third :]):
            held.writer.write(chunk)
            await held.writer.drain()
            await asyncio.sleep(0.1)
        head = await asyncio.wait_for(held.reader.readuntil(b"\r\n\r\n"), GRACEFUL_TIMEOUT_S)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await held.reader.readexactly(int(headers.get("content-length", "0")))
        return Answer(int(status_line.split()[1]), headers, body)
    finally:
        held.writer.close()


async def try_new_connection(port: int) -> str:
    """'refused', 'closed' (accepted, then dropped unanswered), 'served' (answered) or 'hung'
    (accepted by the kernel into a listen backlog nobody takes from, unanswered for 1 s)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:  # (a subclass of OSError: it goes first)
        return "hung"
    try:
        writer.write(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        await writer.drain()
        first = await asyncio.wait_for(reader.read(64), 1.0)
    except TimeoutError:
        return "hung"
    except OSError:  # reset
        return "closed"
    finally:
        writer.close()
    return "served" if first.startswith(b"HTTP/") else "closed"


async def sign_up(base_url: str) -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        response = await client.post(
            "/api/auth/signup", json={"email": "shutdown@example.com", "password": "correct horse battery staple"}
        )
        assert response.status_code == 201, response.text
        token: str = response.json()["access_token"]
        return token


@pytest.fixture(scope="module", params=[1, 2], ids=["1-worker", "2-workers"])
async def shutdown_run(request: pytest.FixtureRequest) -> AsyncIterator[ShutdownRun]:
    workers: int = request.param
    root = Path(tempfile.mkdtemp(prefix="todo-api-shutdown-"))
    data_dir = root / "pg"
    run = ShutdownRun(workers=workers, data_dir=data_dir)
    try:
        await asyncio.to_thread(migrate_embedded, data_dir)
        port = free_port()
        env = server_env(
            EMBEDDED_DATA_DIR=str(data_dir),
            PORT=str(port),
            SECRET_KEY=SECRET_KEY,
            BCRYPT_COST="4",
            LOG_FORMAT="json",
            WEB_CONCURRENCY=str(workers),
        )
        with live_server(env, log_path=root / "server.log") as server:
            run.postmaster_pid = postmaster_pid(data_dir)
            token = await sign_up(server.base_url)
            held = await asyncio.gather(*(hold_request(port, token, i) for i in range(IN_FLIGHT)))

            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            while True:  # while all N are still held open: may a new client get in?
                run.new_connection = await try_new_connection(port)
                run.new_connection_after_s = time.monotonic() - signalled
                run.new_connection_attempts.append((round(run.new_connection_after_s, 2), run.new_connection))
                if run.new_connection == "refused" or run.new_connection_after_s > REFUSAL_WINDOW_S:
                    break
                await asyncio.sleep(0.05)

            run.answers = list(await asyncio.gather(*(finish_request(h) for h in held), return_exceptions=True))
            deadline = signalled + GRACEFUL_TIMEOUT_S + 15
            while server.process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if server.process.poll() is not None:
                run.returncode = server.process.returncode
                run.exit_after_s = time.monotonic() - signalled
            # What the process left behind, before any clean-up of ours.
            run.pid_file_after_exit = (data_dir / "postmaster.pid").exists()
            # pg_ctl's wait ends when the pid file goes, a moment before the postmaster itself.
            run.postmaster_alive_after_exit = run.postmaster_pid is not None and not await asyncio.to_thread(
                wait_gone, run.postmaster_pid, 5.0
            )
            run.postgres_processes_after_exit = processes_mentioning(str(data_dir))
            log = data_dir / "log"
            run.postgres_log = log.read_text(errors="replace") if log.exists() else ""
            run.server_log = server.log_text()
        yield run
    finally:
        stop_embedded(data_dir)  # only does something when the server left its database running
        shutil.rmtree(root, ignore_errors=True)


def test_every_request_in_flight_at_sigterm_completes_with_2xx(shutdown_run: ShutdownRun) -> None:
    assert len(shutdown_run.answers) == IN_FLIGHT
    failures = [a for a in shutdown_run.answers if not isinstance(a, Answer) or not 200 <= a.status < 300]
    assert not failures, f"{len(failures)} of {IN_FLIGHT} in-flight requests failed: {failures[:3]}"
    created = [json.loads(a.body) for a in shutdown_run.answers if isinstance(a, Answer)]
    assert all(a.status == 201 for a in shutdown_run.answers if isinstance(a, Answer))
    assert len({task["id"] for task in created}) == IN_FLIGHT
    # Each response says the connection ends with it: a draining server keeps nothing alive.
    assert all(a.headers.get("connection") == "close" for a in shutdown_run.answers if isinstance(a, Answer))


def test_new_connections_are_refused_while_it_drains(shutdown_run: ShutdownRun) -> None:
    # ("closed", a connection a worker accepted just before it stopped listening and then dropped,
    # may come first, but refusal must follow within the window.)
    assert shutdown_run.new_connection == "refused", (
        f"a new connection {REFUSAL_WINDOW_S} s after SIGTERM was {shutdown_run.new_connection!r} "
        f"(with {shutdown_run.workers} worker(s)) instead of refused; attempts (s after SIGTERM, outcome): "
        f"{shutdown_run.new_connection_attempts}"
    )
    assert shutdown_run.new_connection_after_s <= REFUSAL_WINDOW_S


def test_the_process_exits_0_within_the_graceful_timeout(shutdown_run: ShutdownRun) -> None:
    assert shutdown_run.exit_after_s is not None, "the process did not exit after SIGTERM"
    assert shutdown_run.returncode == 0, (
        f"exit status {shutdown_run.returncode} after SIGTERM (-15/143: killed by the signal itself)\n"
        + shutdown_run.server_log[-2000:]
    )
    assert shutdown_run.exit_after_s < GRACEFUL_TIMEOUT_S


def test_the_embedded_database_is_stopped_cleanly(shutdown_run: ShutdownRun) -> None:
    assert shutdown_run.postmaster_pid is not None, "the server did not start an embedded PostgreSQL"
    assert not shutdown_run.postmaster_alive_after_exit, "the postmaster outlived the server"
    assert not shutdown_run.postgres_processes_after_exit, "PostgreSQL processes on the data directory remain"
    assert not shutdown_run.pid_file_after_exit, "postmaster.pid is still there"
    last_start = shutdown_run.postgres_log.rfind("database system is ready to accept connections")
    assert last_start >= 0
    assert "database system is shut down" in shutdown_run.postgres_log[last_start:]


def test_the_server_log_shows_a_graceful_drain(shutdown_run: ShutdownRun) -> None:
    records = [json.loads(line) for line in shutdown_run.server_log.splitlines() if line.startswith("{")]
    events = [record["event"] for record in records]
    assert "Shutting down" in events
    assert "Application shutdown complete." in events
    served = [r for r in records if r["event"] == "request" and r["request_id"].startswith("shutdown-in-flight-")]
    assert len(served) == IN_FLIGHT
    assert {r["status"] for r in served} == {201}
