"""Server-Sent Events on the wire: a `ChangeStream` framed as `text/event-stream`.

Each event is `id: <position>`, `event: <type>`, `data: <the CloudEvent as one line of JSON>`; an
idle stream sends `: keep-alive` comments; the last frame, when the server ends the stream, is
`event: end` with `{"reason": ...}` so a client knows whether to reconnect (docs/events.md).

Not Starlette's `StreamingResponse` loop: under uvicorn (ASGI 2.4) it learns of a client that left
only when a write fails, which for an idle stream is the next heartbeat; here a task waits for
`http.disconnect` alongside, so a closed tab frees its slot at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Final

import orjson
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from todo_api.domain.changes import FeedEvent
from todo_api.use_cases.streams import ChangeStream, Heartbeat, StreamEnd

MEDIA_TYPE: Final = "text/event-stream"
RETRY_MS: Final = 2000
"""How long EventSource waits before it reconnects on its own."""
HEADERS: Final = {
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",  # nginx: pass each event on at once, do not buffer the response
}


def event_frame(event: FeedEvent) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        event.position,
        str(event.payload.get("type", "message")).encode(),
        orjson.dumps(event.payload),
    )


HEARTBEAT_FRAME: Final = b": keep-alive\n\n"


def end_frame(end: StreamEnd) -> bytes:
    return b"event: end\ndata: %s\n\n" % orjson.dumps({"reason": end.reason})


async def frames(stream: ChangeStream) -> AsyncIterator[bytes]:
    yield b"retry: %d\n: position %d\n\n" % (RETRY_MS, stream.position)
    async for item in stream:
        if isinstance(item, FeedEvent):
            yield event_frame(item)
        elif isinstance(item, Heartbeat):
            yield HEARTBEAT_FRAME
        else:
            yield end_frame(item)


class EventStreamResponse(StreamingResponse):
    """The stream's slot is freed however the response ends: the stream ended, the client left,
    the write failed, or the server cancelled the request at shutdown."""

    def __init__(self, stream: ChangeStream) -> None:
        super().__init__(frames(stream), media_type=MEDIA_TYPE, headers=HEADERS)
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            pump = asyncio.ensure_future(self._pump(send))
            watch = asyncio.ensure_future(_disconnected(receive))
            try:
                await asyncio.wait((pump, watch), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (pump, watch):
                    task.cancel()
                await asyncio.gather(pump, watch, return_exceptions=True)
            error = pump.exception() if pump.done() and not pump.cancelled() else None
            if error is not None and not isinstance(error, OSError):  # OSError: a write to a client that left
                raise error
        finally:
            self._stream.close()
            with contextlib.suppress(Exception):
                await self.body_iterator.aclose()  # type: ignore[attr-defined]

    async def _pump(self, send: Send) -> None:
        async for chunk in self.body_iterator:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
