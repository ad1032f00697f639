"""One direct connection that LISTENs on a channel for the whole process, reconnecting with backoff.

Not a pooled connection: LISTEN belongs to a server session, so it needs one of its own that no
request ever borrows, and it cannot work through a transaction-mode pooler (PgBouncer hands each
transaction to any server connection; notifications reach whichever session listened, if any).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog

from todo_api.adapters.sql.engine.target import database_target

log = structlog.get_logger("todo_api.events")


@dataclass(frozen=True, slots=True)
class ListenerOptions:
    url: str
    channel: str
    connect_timeout_s: float = 3.0
    keepalive_s: float = 15.0
    """A silent network loss is found by a ping this often (the socket alone may never say)."""
    max_backoff_s: float = 10.0
    application_name: str = "todo-api-listener"


class ChannelListener:
    """Calls `on_message(payload)` for each notification, and `on_connected()` each time LISTEN is in
    place again (first time included): whatever was notified while it was down is lost, so the
    listener's owner must make its followers re-read."""

    def __init__(
        self, options: ListenerOptions, on_message: Callable[[str], None], on_connected: Callable[[], None]
    ) -> None:
        self._options, self._on_message, self._on_connected = options, on_message, on_connected
        target = database_target(options.url, pooler_mode=False)
        self._connect_args: dict[str, Any] = {
            "dsn": target.dsn,
            **target.connect_args,
            "timeout": options.connect_timeout_s,
            "statement_cache_size": 0,
            "server_settings": {"application_name": options.application_name},
        }
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.connections = 0
        """How many times LISTEN was set up (a test watches it come back)."""

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="change-listener")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._listen()
                backoff = 0.1  # it was up, then went: retry soon
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("listener_down", channel=self._options.channel, error=type(error).__name__)
            await asyncio.sleep(backoff * (0.5 + random.random()))  # noqa: S311 - jitter, not secrecy
            backoff = min(backoff * 2, self._options.max_backoff_s)

    async def _listen(self) -> None:
        connection: asyncpg.Connection[Any] = await asyncpg.connect(**self._connect_args)
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _: lost.set())
            await connection.add_listener(self._options.channel, self._deliver)
            self.connections += 1
            self.connected.set()
            if self.connections > 1:  # the first connection is routine; a reconnection is news
                log.info("listener_reconnected", channel=self._options.channel)
            self._on_connected()
            while not lost.is_set():
                try:
                    async with asyncio.timeout(self._options.keepalive_s):
                        await lost.wait()
                except TimeoutError:
                    await connection.execute("SELECT 1", timeout=self._options.connect_timeout_s)
        finally:
            self.connected.clear()
            connection.terminate()

    def _deliver(self, _connection: object, _pid: int, _channel: str, payload: object) -> None:
        self._on_message(str(payload))
