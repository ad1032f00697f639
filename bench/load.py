"""Load: wrk for closed-loop maxima; one small asyncio generator for the rest.

The generator runs closed loop (wrk's way at far more CPU per request: the fallback for maxima) or
open loop at a fixed rate, where request i is due at start + i/rate whatever happened before and its
latency counts from then (wrk2's method; Debian has no wrk2): a stall shows on every request queued
behind it. A status other than the scenario's `expect` is an error.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.scenarios import Request

HOST = "127.0.0.1"
FAILURES = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ValueError)
Run = dict[str, float]  # ok (expected answers within the window), errors, rps, p50_ms, p99_ms, max_ms


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))] if ordered else 0.0


def run(ok: float, errors: float, duration_s: float, p50_ms: float, p99_ms: float, max_ms: float) -> Run:
    return {"ok": ok, "errors": errors, "rps": ok / duration_s, "p50_ms": p50_ms, "p99_ms": p99_ms, "max_ms": max_ms}


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # ms, by scenario
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    errors: int = 0  # unexpected statuses and socket errors
    ok: int = 0

    def run(self, duration_s: float) -> Run:
        every = [value for values in self.latencies.values() for value in values]
        return run(
            self.ok, self.errors, duration_s, percentile(every, 50), percentile(every, 99), max(every, default=0)
        )


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects when the server closed the last one."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(self, message: bytes) -> tuple[int, bytes]:
        if self.streams is None:
            self.streams = await asyncio.wait_for(asyncio.open_connection(HOST, self.port), 5)
        reader, writer = self.streams
        writer.write(message)
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)).lower()
        at = head.find(b"\r\ncontent-length:")
        body = await reader.readexactly(int(head[at + 17 : head.find(b"\r\n", at + 2)]) if at >= 0 else 0)
        if b"\r\nconnection: close" in head:
            self.close()
        return int(head[9:12]), body

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
        self.streams = None


async def fetch(port: int, message: bytes) -> tuple[int, bytes]:
    """One request on a fresh connection (checks, not load)."""
    connection = Connection(port)
    try:
        return await connection.send(message)
    finally:
        connection.close()


async def drive(
    port: int,
    requests: Sequence[Request],
    connections: int,
    duration_s: float,
    rate: float | None = None,
    lanes: Sequence[Sequence[Request]] = (),
) -> Tally:
    """Closed loop on `connections` connections, or open loop at `rate` requests/s sharing them.
    Closed loop, each connection goes round `requests` from its own offset, or with `lanes` (one
    per connection, `Scenario.lanes`) round its own lane from the start."""
    tally, idle = Tally(), asyncio.Queue[Connection]()
    for _ in range(connections):
        idle.put_nowait(Connection(port))
    end = (start := time.perf_counter() + (0.05 if rate else 0.0)) + duration_s

    async def send(request: Request, since: float) -> None:
        connection = await idle.get()
        try:
            status, _ = await connection.send(request.data)
        except FAILURES:
            tally.errors += 1
            connection.close()
            await asyncio.sleep(0.01 if rate is None else 0)
        else:
            tally.latencies[request.key].append(((now := time.perf_counter()) - since) * 1000)
            tally.statuses[request.key][status] += 1
            tally.errors += status != request.expect
            tally.ok += status == request.expect and now <= end
        finally:
            idle.put_nowait(connection)

    async def closed(lane: Sequence[Request], index: int) -> None:
        while (now := time.perf_counter()) < end:
            await send(lane[(index := index + 1) % len(lane)], now)

    if rate is None:
        walkers = [(lanes[n % len(lanes)], -1) if lanes else (requests, n * 7919) for n in range(connections)]
        await asyncio.gather(*(closed(lane, index) for lane, index in walkers))
    else:
        pending: set[asyncio.Task[None]] = set()
        for index in range(int(rate * duration_s)):
            if (delay := (due := start + index / rate) - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            pending.add(asyncio.create_task(send(requests[index % len(requests)], due)))
        _, late = await asyncio.wait(pending, timeout=10)
        for task in late:  # unanswered 10 s after the window: timeouts
            task.cancel()
        tally.errors += len(late)
    while not idle.empty():
        idle.get_nowait().close()
    return tally


# One lane: each thread goes round it from its own offset; lanes (one per thread): round its own from the start.
_LUA = """local lanes = {
%s
}
local requests, count, index, threads = lanes[1], #lanes[1], 0, 0
function setup(thread) threads = threads + 1; thread:set("number", threads) end
function init(args)
  requests = lanes[((number or 1) - 1) %% #lanes + 1]
  count = #requests
  index = #lanes > 1 and 0 or ((number or 1) * 7919) %% count
end
function request() index = index %% count + 1; return requests[index] end
function done(summary, latency, reqs)
  local e = summary.errors
  io.write(string.format('BENCH_JSON {"requests":%%d,"us":%%d,"socket":%%d,"status":%%d,"p50":%%d,"p99":%%d,' ..
    '"max":%%d}\\n', summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def wrk_script(path: Path, lanes: Sequence[Sequence[Request]]) -> None:
    def lua(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r").replace("\n", "\\n") + '"'

    path.write_text(_LUA % ",\n".join("{" + ",\n".join(lua(r.data.decode()) for r in lane) + "}" for lane in lanes))


def wrk_threads(connections: int) -> int:
    return min(2, connections)


async def send_all(port: int, requests: Sequence[Request], connections: int = 8) -> None:
    """Each request once, on a few connections (not measured); an unexpected answer stops the run."""
    queue = list(reversed(requests))

    async def worker() -> None:
        connection = Connection(port)
        try:
            while queue:
                request = queue.pop()
                if (answer := await connection.send(request.data))[0] != request.expect:
                    raise RuntimeError(f"{request.key}: expected {request.expect}, got {answer[0]} {answer[1][:300]!r}")
        finally:
            connection.close()

    await asyncio.gather(*(worker() for _ in range(connections)))


async def wrk(executable: str, script: Path, port: int, connections: int, duration_s: float) -> Run:
    """A closed-loop wrk run (2 threads) over the script's requests in turn; non-2xx/3xx are errors."""
    process = await asyncio.create_subprocess_exec(
        executable, f"-t{wrk_threads(connections)}", f"-c{connections}", f"-d{max(1, round(duration_s))}s",
        "--timeout=10s", "-s", str(script), f"http://{HOST}:{port}", stdout=asyncio.subprocess.PIPE
    )  # fmt: skip
    output = (await process.communicate())[0].decode(errors="replace")
    if not (line := next((x for x in output.splitlines() if x.startswith("BENCH_JSON ")), "")):
        raise RuntimeError(f"wrk printed no result:\n{output}")
    d = json.loads(line.removeprefix("BENCH_JSON "))
    ok, errors, duration = d["requests"] - d["status"], d["status"] + d["socket"], d["us"] / 1e6
    return run(ok, errors, duration, d["p50"] / 1e3, d["p99"] / 1e3, d["max"] / 1e3)
