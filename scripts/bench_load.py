"""HTTP/1.1 load generation in plain asyncio, for what wrk cannot do (and for when wrk is missing).

- `paced`: open loop at a fixed rate, the way wrk2 does it. Request i is *due* at start + i/rate
  whether or not earlier ones have been answered, and its latency is counted from when it was
  due, not from when a free connection finally sent it. A server that stalls for 200 ms therefore
  shows 200 ms of latency on every request that queued behind the stall, instead of hiding it
  ("coordinated omission"). Plain wrk has no rate option, and wrk2 is not packaged in Debian.
- `closed_loop`: N connections each sending the next request as soon as the previous answer
  arrives, i.e. what wrk does; only the fallback when wrk cannot be installed (it costs far more
  CPU per request than wrk, so it measures a lower ceiling).

Requests are complete, pre-rendered HTTP/1.1 messages (the same bytes the wrk Lua scripts send);
each request picks the next one round-robin. Responses are read by Content-Length (or chunked).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

_CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One run against one server. `rps` counts 2xx/3xx answers only."""

    requests: int
    non_2xx: int
    socket_errors: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    offered_rps: float | None = None
    generator_lag_p99_ms: float | None = None

    @property
    def ok(self) -> int:
        return self.requests - self.non_2xx

    @property
    def rps(self) -> float:
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


class HttpConnection:
    """One keep-alive connection; `send` writes a whole request and reads the whole response."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self._host, self._port), _CONNECT_TIMEOUT_S
        )

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """(status, body); reconnects first if the last response closed the connection."""
        if self._writer is None:
            await self.open()
        reader, writer = self._reader, self._writer
        if reader is None or writer is None:  # pragma: no cover - open() sets both
            raise ConnectionError("not connected")
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        headers = head.lower()
        if b"transfer-encoding: chunked" in headers:
            body = await _read_chunked(reader)
        else:
            body = await reader.readexactly(_content_length(headers))
        if b"connection: close" in headers:
            self.close()
        return status, body


def _content_length(headers: bytes) -> int:
    start = headers.find(b"content-length:")
    if start < 0:
        return 0
    end = headers.find(b"\r\n", start)
    return int(headers[start + len(b"content-length:") : end])


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


_FAILURES = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ValueError)


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    requests: int = 0
    non_2xx: int = 0
    socket_errors: int = 0

    def record(self, status: int, latency: float) -> None:
        self.requests += 1
        self.latencies.append(latency)
        if status >= 400:
            self.non_2xx += 1

    def result(self, duration_s: float, offered_rps: float | None = None) -> LoadResult:
        ordered = sorted(self.latencies)
        return LoadResult(
            requests=self.requests,
            non_2xx=self.non_2xx,
            socket_errors=self.socket_errors,
            duration_s=duration_s,
            p50_ms=_percentile(ordered, 50) * 1000,
            p99_ms=_percentile(ordered, 99) * 1000,
            max_ms=(ordered[-1] if ordered else 0.0) * 1000,
            offered_rps=offered_rps,
            generator_lag_p99_ms=_percentile(sorted(self.lags), 99) * 1000 if self.lags else None,
        )


def _percentile(ordered: Sequence[float], p: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


async def _open_all(host: str, port: int, count: int) -> list[HttpConnection]:
    connections = [HttpConnection(host, port) for _ in range(count)]
    await asyncio.gather(*(connection.open() for connection in connections))
    return connections


async def paced(
    host: str, port: int, requests: Sequence[bytes], *, rate: float, duration_s: float, connections: int = 64
) -> LoadResult:
    """Open loop at `rate` requests/s for `duration_s`; latency from when each request was due.

    Only answers that arrive within the window count towards the achieved rate, so a server that
    falls behind shows a rate below the offered one (and latencies that keep growing).
    """
    idle: asyncio.Queue[HttpConnection] = asyncio.Queue()
    for connection in await _open_all(host, port, connections):
        idle.put_nowait(connection)
    tally = _Tally()
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    end = start + duration_s
    in_window = 0

    async def one(index: int, due: float) -> None:
        nonlocal in_window
        tally.lags.append(max(0.0, loop.time() - due))  # the generator's own lateness, not the server's
        connection = await idle.get()
        try:
            status, _ = await connection.send(requests[index % len(requests)])
        except _FAILURES:
            tally.socket_errors += 1
            connection.close()
        else:
            finished = loop.time()
            tally.record(status, finished - due)
            if finished <= end and status < 400:
                in_window += 1
        finally:
            idle.put_nowait(connection)

    pending: set[asyncio.Task[None]] = set()
    for index in range(int(rate * duration_s)):
        due = start + index / rate
        if (delay := due - loop.time()) > 0:
            await asyncio.sleep(delay)
        task = loop.create_task(one(index, due))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        _, unanswered = await asyncio.wait(pending, timeout=10)
        for task in unanswered:  # still unanswered 10 s after the window closed: count them as timeouts
            task.cancel()
        tally.socket_errors += len(unanswered)
    while not idle.empty():
        idle.get_nowait().close()
    result = tally.result(duration_s, offered_rps=rate)
    # The achieved rate: answers inside the window only.
    return LoadResult(
        requests=in_window + result.non_2xx,
        non_2xx=result.non_2xx,
        socket_errors=result.socket_errors,
        duration_s=duration_s,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        max_ms=result.max_ms,
        offered_rps=rate,
        generator_lag_p99_ms=result.generator_lag_p99_ms,
    )


async def closed_loop(
    host: str, port: int, requests: Sequence[bytes], *, connections: int, duration_s: float
) -> LoadResult:
    """`connections` loops, each sending its next request when the previous answer is in."""
    tally = _Tally()
    opened = await _open_all(host, port, connections)
    started = time.perf_counter()
    deadline = started + duration_s

    async def worker(offset: int, connection: HttpConnection) -> None:
        index = offset
        while (sent := time.perf_counter()) < deadline:
            index += 1
            try:
                status, _ = await connection.send(requests[index % len(requests)])
            except _FAILURES:
                tally.socket_errors += 1
                connection.close()
                await asyncio.sleep(0.01)
                continue
            tally.record(status, time.perf_counter() - sent)

    await asyncio.gather(*(worker(i * 7919, c) for i, c in enumerate(opened)))
    for connection in opened:
        connection.close()
    return tally.result(time.perf_counter() - started)


async def fetch(host: str, port: int, request: bytes) -> tuple[int, bytes]:
    """One request on a fresh connection (for checks, not for load)."""
    connection = HttpConnection(host, port)
    try:
        return await connection.send(request)
    finally:
        connection.close()


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0
