"""`python -m todo_api`: serve with uvicorn; with no DATABASE_URL, on an embedded PostgreSQL.

SIGTERM and Ctrl-C both drain in-flight requests, refuse new connections, stop the embedded
database cleanly and exit 0. `python -m todo_api worker` runs the background workers alone
(delivery, retention: workers.py) until SIGTERM or Ctrl-C, then stops them the same way.
`python -m todo_api mcp` serves the MCP tools over stdio for the bearer of TODO_API_TOKEN.
`python -m todo_api openapi [PATH]` writes the OpenAPI document (`make openapi`: openapi.json).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import uvicorn
from prometheus_client import multiprocess
from pydantic import ValidationError
from uvicorn.supervisors import Multiprocess

from todo_api.adapters.sql.change_notifications import ChangeAnnouncer
from todo_api.adapters.sql.embedded import embedded_postgres
from todo_api.adapters.sql.engine import ConnectionPool
from todo_api.config import Settings
from todo_api.domain.errors import AuthenticationFailed
from todo_api.logging import configure_logging
from todo_api.main import openapi_json, pool_options, serve_mcp_stdio, wakeup_mode
from todo_api.workers import build_workers

STARTUP_FAILURE = 3


class _Supervisor(Multiprocess):
    """uvicorn's supervisor keeps its copy of the listening socket until every worker has exited,
    so clients arriving during the drain hang; closing it when told to stop refuses them at once."""

    def handle_int(self) -> None:
        self._stop_listening()
        super().handle_int()

    def handle_term(self) -> None:
        self._stop_listening()
        super().handle_term()

    def _stop_listening(self) -> None:
        for sock in self.sockets:
            sock.close()

    def keep_subprocess_alive(self) -> None:
        """A replaced worker's metrics files would count its live gauges for ever: mark it dead."""
        before = {process.pid for process in self.processes}
        super().keep_subprocess_alive()
        for pid in before - {process.pid for process in self.processes}:
            if pid is not None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


async def run_workers(settings: Settings, url: str) -> None:
    """The workers alone, until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    pool = ConnectionPool(pool_options(settings, url))
    # Reminders fired here wake the API replicas' streams: NOTIFY unless they poll.
    announcer = ChangeAnnouncer(pool)
    listening = wakeup_mode(settings, pool) == "listen"
    workers = build_workers(settings, pool, announcer.announce if listening else lambda _: None)
    workers.start()
    try:
        await stop.wait()
    finally:
        await workers.stop()
        await announcer.close()
        await pool.close()


def _serve_mcp_stdio(settings: Settings) -> int:
    """stdout is the protocol's channel: everything else (logs, the embedded database) on stderr."""
    token = os.environ.get("TODO_API_TOKEN", "").strip()
    if not token:
        print("todo-api mcp: set TODO_API_TOKEN to an access token (POST /api/auth/login)", file=sys.stderr)
        return 2
    with ExitStack() as stack:
        if settings.database_url is not None:
            url = settings.database_url.get_secret_value()
        else:
            with contextlib.redirect_stdout(sys.stderr):
                url = stack.enter_context(embedded_postgres(settings.embedded_data_dir))
        try:
            asyncio.run(serve_mcp_stdio(settings, url, token))
        except AuthenticationFailed as failure:
            print(f"todo-api mcp: TODO_API_TOKEN is refused: {failure.message}", file=sys.stderr)
            return 2
    return 0


def refusal(error: ValidationError) -> str:
    """One line naming each variable at fault: `WEB_CONCURRENCY: a whole number is expected (got 'two')`."""
    reasons = []
    for item in error.errors():
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] in {"int_parsing", "int_type", "int_from_float"}:
            message = "a whole number is expected"
        elif item["type"] in {"float_parsing", "float_type"}:
            message = "a number is expected"
        elif item["type"] in {"bool_parsing", "bool_type"}:
            message = "true or false is expected"
        loc = [str(part) for part in item["loc"] if isinstance(part, str)]
        if loc:
            given = item.get("input")
            shown = f" (got {given!r})" if isinstance(given, str) and not _secret(loc[0]) and len(given) <= 80 else ""
            message = f"{loc[0].upper()}: {message}{shown}"
        reasons.append(message)
    return "; ".join(reasons)


def _secret(name: str) -> bool:
    return any(word in name for word in ("key", "secret", "pepper", "token", "url", "password"))


def write_openapi(target: str) -> int:
    """`python -m todo_api openapi [PATH]`: the OpenAPI document to PATH (default: stdout)."""
    document = openapi_json()
    if target == "-":
        sys.stdout.write(document)
    else:
        Path(target).write_text(document, encoding="utf-8")
    return 0


def main() -> int:
    if sys.argv[1:2] == ["openapi"]:
        return write_openapi(sys.argv[2] if len(sys.argv) > 2 else "-")
    try:
        settings = Settings()
    except ValidationError as error:
        print(f"todo-api: refusing to start: {refusal(error)}", file=sys.stderr)
        return 2
    configure_logging(json_logs=settings.json_logs, level=settings.log_level)
    if settings.secret_key is None:
        # Development: one random key shared by every worker (tokens and cursors verify anywhere).
        os.environ["SECRET_KEY"] = secrets.token_urlsafe(32)
    if sys.argv[1:2] == ["mcp"]:
        return _serve_mcp_stdio(settings)
    if sys.argv[1:2] == ["worker"]:
        with ExitStack() as stack:
            url = (
                settings.database_url.get_secret_value()
                if settings.database_url
                else stack.enter_context(embedded_postgres(settings.embedded_data_dir))
            )
            asyncio.run(run_workers(settings, url))
        return 0
    # uvicorn re-raises the SIGTERM it drained for; as KeyboardInterrupt it ends like Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    workers = settings.web_concurrency
    with ExitStack() as stack:
        if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            # Each worker writes its metrics to files here; a scrape of any worker sums them all.
            metrics_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="todo-metrics-"))
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        if settings.database_url is None:
            os.environ["DATABASE_URL"] = stack.enter_context(embedded_postgres(settings.embedded_data_dir))
        config = uvicorn.Config(
            "todo_api.main:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_config=None,
            access_log=False,
            # uvicorn would believe X-Forwarded-For from 127.0.0.1 (its default): any local client
            # could then pick its address. The app reads it from TRUSTED_PROXIES only.
            proxy_headers=False,
            timeout_graceful_shutdown=20,
        )
        server = uvicorn.Server(config)
        with contextlib.suppress(KeyboardInterrupt):
            if workers > 1:
                _Supervisor(config, sockets=[config.bind_socket()]).run()
            else:
                server.run()
        if workers == 1 and not server.started:
            return STARTUP_FAILURE
    return 0


if __name__ == "__main__":
    sys.exit(main())
