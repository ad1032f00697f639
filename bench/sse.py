"""1,000 idle event streams on one worker: the memory they cost and how fast one commit fans out.

    .venv/bin/python -m bench.sse [--streams 1000] [--rounds 30] [--wakeup listen|poll]

Starts `python -m todo_api` (one worker, production settings) on a fresh `todo_bench_sse` database
(DATABASE_URL's server, else the embedded one in .data/bench), signs one person up, holds
`--streams` streams of theirs open (the per-person cap raised to allow it), and reports:

- the worker's extra resident memory with the streams open and idle (RSS after minus before);
- for each of `--rounds` tasks created through the API, the delay from the commit (the CloudEvent's
  `time`, stamped just before COMMIT) to the moment each stream's client read the event, p50/p99/max
  over every (round, stream). The clients are raw sockets in this one process, so the figure
  includes their own scheduling: it is an upper bound on the server's share.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from bench import database as db

NAME = "todo_bench_sse"
HOST = "127.0.0.1"
PAGE = os.sysconf("SC_PAGE_SIZE")
SECRET_KEY = "bench-sse-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"  # noqa: S105 - a bench key
PEPPER = "bench-sse-pepper-0123456789-abcdefghijklmnopqrstuvwxyz-0123"


def rss_mib(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20


async def request(port: int, method: str, path: str, token: str | None = None, body: object = None) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection(HOST, port)
    data = json.dumps(body).encode() if body is not None else b""
    head = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", "Connection: close", f"Content-Length: {len(data)}"]
    if body is not None:
        head.append("Content-Type: application/json")
    if token:
        head.append(f"Authorization: Bearer {token}")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
    raw = await reader.read()
    writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2].decode(errors="replace")


class Follower:
    """One stream's client: records when each event arrived (wall clock) by its position."""

    def __init__(self) -> None:
        self.received: dict[int, tuple[float, str]] = {}
        self.opened = asyncio.Event()

    async def run(self, port: int, token: str) -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(f"GET /api/me/events HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.decode(errors="replace"))
        self.opened.set()
        position = None
        try:
            while line := await reader.readline():  # chunked framing: size lines and SSE lines interleave
                if line.startswith(b"id: "):
                    position = int(line[4:])
                elif line.startswith(b"data: ") and position is not None:
                    self.received[position] = (time.time(), line[6:].decode())
                    position = None
        finally:
            writer.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def main(o: argparse.Namespace) -> int:
    async with db.server() as (server_url, source):
        print(f"PostgreSQL: {source}")
        async with db.connect(db.dsn(server_url)) as admin:
            await admin.execute(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{NAME}"')
        url = db.dsn(server_url, NAME)
        alembic = [sys.executable, "-m", "alembic", "-c", str(db.ROOT / "alembic.ini"), "upgrade", "head"]
        migrate_env = {**os.environ, "DATABASE_URL": url}
        await asyncio.to_thread(subprocess.run, alembic, cwd=db.ROOT, env=migrate_env, check=True, capture_output=True)

        port = int(os.environ.get("BENCH_SSE_PORT", "0")) or _free_port()
        env = {**os.environ, "ENVIRONMENT": "production", "DATABASE_URL": url, "SECRET_KEY": SECRET_KEY,
               "PASSWORD_PEPPER": PEPPER, "BCRYPT_COST": "4", "LOG_LEVEL": "WARNING", "HOST": HOST,
               "PORT": str(port), "WEB_CONCURRENCY": "1", "EVENTS_MAX_STREAMS_PER_USER": str(o.streams),
               "EVENTS_WAKEUP": o.wakeup, "PYTHONUNBUFFERED": "1"}  # fmt: skip
        log = (db.ROOT / ".data" / "bench-sse.log").open("wb")
        server = subprocess.Popen(  # noqa: ASYNC220 - starting the server, once
            [sys.executable, "-m", "todo_api"], cwd=db.ROOT, env=env, stdout=log, stderr=log, start_new_session=True
        )
        try:
            return await measure(o, port, server)
        finally:
            server.terminate()
            server.wait(30)


async def measure(o: argparse.Namespace, port: int, server: subprocess.Popen[bytes]) -> int:
    for _ in range(300):
        with contextlib.suppress(OSError):
            if (await request(port, "GET", "/healthz"))[0] == 200:
                break
        await asyncio.sleep(0.1)
    status, body = await request(
        port, "POST", "/api/auth/signup", body={"email": "sse@bench.example", "password": db.PASSWORD}
    )
    if status != 201:
        raise RuntimeError(body)
    token = json.loads(body)["access_token"]
    await request(port, "POST", "/api/me/tasks", token, {"title": "warm-up"})  # every code path loaded once
    status, body = await request(port, "GET", "/api/me/changes?since=0", token)
    if status != 200:
        raise RuntimeError(body)
    last = max(event["position"] for event in json.loads(body)["data"])  # sign-up's Inbox, the warm-up
    await asyncio.sleep(1)
    before = rss_mib(server.pid)

    followers = [Follower() for _ in range(o.streams)]
    tasks = []
    for start in range(0, o.streams, 100):  # in batches: the listen backlog is finite
        batch = followers[start : start + 100]
        tasks += [asyncio.create_task(f.run(port, token)) for f in batch]
        await asyncio.wait_for(asyncio.gather(*(f.opened.wait() for f in batch)), 60)
    await asyncio.sleep(3)  # idle
    after = rss_mib(server.pid)

    delays: list[float] = []
    for round_ in range(o.rounds):
        status, body = await request(port, "POST", "/api/me/tasks", token, {"title": f"fan-out {round_}"})
        if status != 201:
            raise RuntimeError(body)
        position = last + round_ + 1
        deadline = time.monotonic() + 10
        while any(position not in f.received for f in followers) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        for follower in followers:
            arrived, data = follower.received.get(position, (float("nan"), "{}"))
            committed = datetime.fromisoformat(json.loads(data).get("time", "1970-01-01T00:00:00Z")).timestamp()
            delays.append(arrived - committed)
        await asyncio.sleep(o.pause)
    missing = sum(d != d for d in delays)  # NaN: an event that never arrived
    got = [d * 1000 for d in delays if d == d]
    for task in tasks:
        task.cancel()
    print(f"streams: {o.streams} on one worker ({o.wakeup}), rounds: {o.rounds}")
    print(f"worker RSS: {before:.1f} MiB before, {after:.1f} MiB with the streams open: +{after - before:.1f} MiB")
    print(f"  = {(after - before) * 1024 / o.streams:.1f} KiB per stream")
    print(
        f"commit -> receipt over {len(got)} deliveries: p50 {statistics.median(got):.1f} ms, "
        f"p99 {percentile(got, 0.99):.1f} ms, max {max(got):.1f} ms; missing: {missing}"
    )
    return 0 if missing == 0 else 1


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between rounds")
    parser.add_argument("--wakeup", choices=("listen", "poll"), default="listen")
    sys.exit(asyncio.run(main(parser.parse_args())))
