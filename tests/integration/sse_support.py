"""Live event streams in tests: the app served by a real uvicorn in this process (httpx's ASGI
transport returns a response only once it is complete, and an event stream never is), and a small
Server-Sent Events reader.

    async with served(app) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        async with open_stream(http, "/api/me/events", headers=user.headers) as stream:
            event = await stream.next_event()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from tests.integration.live_server import free_port


class _QuietServer(uvicorn.Server):
    """Leaves the process's signal handlers alone: pytest owns them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """`app` (lifespan included) on a free port until the block ends; its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, timeout_graceful_shutdown=1
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@dataclass
class Frame:
    """One SSE frame: an event (`event`, `id`, `data`) or a comment-only frame (`comments`)."""

    event: str | None = None
    id: str | None = None
    data: str | None = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        assert self.data is not None, self
        return json.loads(self.data)


class SseStream:
    """Lines are read by a task of their own: a timeout while waiting for a frame must not cancel
    (and so end) the response's line iterator."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for line in self.response.aiter_lines():
                self._lines.put_nowait(line)
        except httpx.HTTPError:
            pass
        finally:
            self._lines.put_nowait(None)

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def next_frame(self, timeout_s: float = 5.0) -> Frame:
        """The next frame (comments included); TimeoutError after `timeout_s`, EOFError at the end."""
        frame = Frame()
        async with asyncio.timeout(timeout_s):
            while True:
                line = await self._lines.get()
                if line is None:
                    self._lines.put_nowait(None)
                    raise EOFError("the stream ended")
                if line == "":
                    if frame != Frame():
                        return frame
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    frame.comments.append(value)
                elif name == "event":
                    frame.event = value
                elif name == "id":
                    frame.id = value
                elif name == "data":
                    frame.data = value if frame.data is None else f"{frame.data}\n{value}"
                elif name == "retry":
                    frame.retry = int(value)

    async def next_event(self, timeout_s: float = 5.0) -> Frame:
        """The next frame that is an event (heartbeats and other comments skipped)."""
        async with asyncio.timeout(timeout_s):
            while True:
                frame = await self.next_frame(timeout_s)
                if frame.event is not None or frame.data is not None:
                    return frame

    async def no_event_within(self, seconds: float) -> None:
        try:
            frame = await self.next_event(seconds)
        except TimeoutError:
            return
        raise AssertionError(f"an unexpected event arrived: {frame}")


@asynccontextmanager
async def open_stream(
    http: httpx.AsyncClient, url: str, *, headers: dict[str, str] | None = None, params: dict[str, str] | None = None
) -> AsyncIterator[SseStream]:
    """GET an event stream, assert it opened (200, text/event-stream), read its first frame (the
    `retry` advice, which says the stream is live and subscribed), and close it on the way out."""
    async with http.stream("GET", url, headers=headers, params=params, timeout=30) as response:
        if response.status_code != 200:
            await response.aread()
            raise AssertionError(f"{response.status_code}: {response.text}")
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = SseStream(response)
        try:
            opening = await stream.next_frame()
            assert opening.retry is not None, opening
            yield stream
        finally:
            await stream.close()


async def stream_refused(
    http: httpx.AsyncClient, url: str, *, headers: dict[str, str] | None = None, params: dict[str, str] | None = None
) -> httpx.Response:
    """A GET of an event stream that must not open: the complete (error) response."""
    async with http.stream("GET", url, headers=headers, params=params, timeout=10) as response:
        await response.aread()
        assert response.status_code != 200, "the stream opened"
        return response
