"""`python -m todo_api` as a real subprocess on a free port, for tests (and scripts) that need the
whole process: signals, workers, the embedded database and the log stream exactly as deployed.

    with live_server(server_env(PORT=str(port), ...), log_path=tmp / "server.log") as server:
        httpx.get(f"{server.base_url}/healthz")

The server's stdout and stderr both go to `log_path` (a file, so a chatty server never blocks on a
full pipe). Leaving the block always ends the process (SIGTERM, then SIGKILL of its process group).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
READINESS_PROBE_ID = "live-server-readiness-probe"

# Everything the server reads from the environment; a test states what it wants, nothing leaks in.
_SERVER_VARIABLES = {
    "ENVIRONMENT", "DATABASE_URL", "SECRET_KEY", "CORS_ORIGINS", "CORS_ALLOW_CREDENTIALS", "LOG_LEVEL",
    "LOG_FORMAT", "DB_POOL_SIZE", "DB_MAX_OVERFLOW", "DB_POOL_TIMEOUT_S", "DB_CONNECT_TIMEOUT_S",
    "DB_STATEMENT_TIMEOUT_MS", "DB_POOLER_MODE", "DB_RETRY_AFTER_S", "PASSWORD_PEPPER", "BCRYPT_COST",
    "BCRYPT_THREADS", "ACCESS_TOKEN_LIFETIME_S", "REFRESH_TOKEN_LIFETIME_DAYS", "JWT_ISSUER", "JWT_AUDIENCE",
    "REFRESH_COOKIE_SAMESITE", "AUTH_JWKS_URL", "AUTH_ISSUER", "AUTH_AUDIENCE", "AUTH_JWKS_MIN_REFETCH_S",
    "THROTTLE_LOGIN_PER_ACCOUNT", "THROTTLE_LOGIN_PER_ADDRESS", "THROTTLE_LOGIN_WINDOW_S",
    "THROTTLE_SIGNUP_PER_ADDRESS", "THROTTLE_SIGNUP_WINDOW_S", "METRICS_ENABLED", "METRICS_TOKEN",
    "MAX_BODY_BYTES", "DOCS_ENABLED", "HOST", "PORT", "EMBEDDED_DATA_DIR", "WEB_CONCURRENCY",
    "PROMETHEUS_MULTIPROC_DIR", "TEST_DATABASE_URL", "TRUSTED_PROXIES", "RUN_WORKERS", "WORKER_POLL_INTERVAL_S",
    "WORKER_LEASE_S", "CHANGE_RETENTION_DAYS", "WEBHOOK_ALLOW_PRIVATE_TARGETS", "WEBHOOK_TIMEOUT_S",
    "WEBHOOK_RETRY_SCHEDULE_S", "WEBHOOK_DISABLE_ON_GONE", "EVENT_PUBLISHER", "DAPR_HTTP_ENDPOINT", "DAPR_HTTP_PORT",
    "DAPR_PUBSUB_NAME", "DAPR_TOPIC",
    "EVENTS_WAKEUP", "EVENTS_LISTEN_URL", "EVENTS_POLL_INTERVAL_S", "EVENTS_HEARTBEAT_S", "EVENTS_SESSION_CHECK_S",
    "EVENTS_MAX_STREAMS_PER_USER", "EVENTS_TICKET_LIFETIME_S",
    "MCP_ENABLED", "MCP_ALLOWED_HOSTS", "MCP_ALLOWED_ORIGINS", "PUBLIC_URL", "CHAT_BASE_URL", "CHAT_MODEL",
    "CHAT_API_KEY", "CHAT_MAX_STEPS", "CHAT_TURN_TIMEOUT_S", "CHAT_HISTORY_MESSAGES", "TODO_API_TOKEN",
    "SESSION_REVOCATION_REFRESH_S",
}  # fmt: skip


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def server_env(**settings: str) -> dict[str, str]:
    """This process's environment without any of the server's settings, plus `settings`."""
    clean = {key: value for key, value in os.environ.items() if key.upper() not in _SERVER_VARIABLES}
    return {**clean, "PYTHONUNBUFFERED": "1", **settings}


@dataclass
class LiveServer:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    probe_request_ids: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_lines(self) -> list[str]:
        return [line for line in self.log_text().splitlines() if line.strip()]

    def wait_ready(self, timeout_s: float) -> None:
        """Until GET /readyz answers 200; fails at once (with the log) if the process dies first."""
        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log_text()}")
                try:
                    response = client.get("/readyz", headers={"X-Request-ID": READINESS_PROBE_ID})
                except httpx.TransportError:
                    pass
                else:
                    self.probe_request_ids.append(response.headers.get("x-request-id", ""))
                    if response.status_code == 200:
                        return
                time.sleep(0.1)
        raise TimeoutError(f"the server was not ready within {timeout_s} s:\n{self.log_text()}")

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait; SIGKILL the whole process group if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        # The server was started in a session of its own: its group is it and its workers.
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@contextmanager
def live_server(
    env: Mapping[str, str],
    *,
    log_path: Path,
    cwd: Path | None = None,
    ready_timeout_s: float = 90.0,
    module: str = "todo_api",
) -> Iterator[LiveServer]:
    """Start `python -m todo_api` (or another `module`) with exactly `env` (see `server_env`),
    wait until it is ready, and always end it (and every worker of it) on the way out."""
    port = int(env["PORT"])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [PYTHON, "-m", module],
            env=dict(env),
            cwd=cwd or log_path.parent,  # not the repository: a developer's `.env` must not leak in
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LiveServer(process=process, port=port, log_path=log_path)
    try:
        server.wait_ready(ready_timeout_s)
        yield server
    finally:
        if process.poll() is None:
            server.stop()
        with suppress(ProcessLookupError):  # workers orphaned by a supervisor that died
            os.killpg(process.pid, signal.SIGKILL)


# The embedded PostgreSQL a server starts when it has no DATABASE_URL --------------------------


def migrate_embedded(data_dir: Path, *, timeout_s: float = 180.0) -> None:
    """`alembic upgrade head` on the embedded server kept in `data_dir` (started and stopped again),
    which is what `make run` does before serving."""
    env = server_env(EMBEDDED_DATA_DIR=str(data_dir))
    result = subprocess.run(
        [PYTHON, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade", "head"],
        env=env,
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"migrating {data_dir} failed:\n{result.stdout}\n{result.stderr}")


def postmaster_pid(data_dir: Path) -> int | None:
    """The PostgreSQL server's pid from `postmaster.pid`, or None when there is no such file."""
    try:
        first = (data_dir / "postmaster.pid").read_text().splitlines()[0]
    except (FileNotFoundError, IndexError):
        return None
    return int(first)


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie (exited, not yet reaped by its new parent) does not."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = next((line.split()[1] for line in status.splitlines() if line.startswith("State:")), "?")
    return state not in ("Z", "X")


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Whether `pid` is gone within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains `text` (e.g. a PostgreSQL running on a data directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError):
            if text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def stop_embedded(data_dir: Path) -> None:
    """Stop a PostgreSQL left running on `data_dir` (a clean-up for when a server did not)."""
    if postmaster_pid(data_dir) is None:
        return
    from todo_api.adapters.sql.embedded import stop

    stop(data_dir)
