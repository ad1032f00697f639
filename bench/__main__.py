"""`python -m bench [compare|load|timing|mcp]`: the one harness behind `make bench` and `make load`.

Every mode seeds `todo_bench`, starts the API as deployed (`python -m todo_api`, production settings,
an access line per request) and sends the requests of `bench.scenarios`. compare: API against the
bare-ASGI baseline; load: the scenarios' mix on 2 workers; timing: logins of known and unknown e-mails;
mcp: the REST list's first page against the same page as an MCP `list_tasks` call, on the API alone.
The method and the figures: docs/performance.md and docs/reliability.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import uvloop
from bench import database as db
from bench.load import FAILURES, HOST, Connection, Run, drive, fetch, percentile, send_all, wrk, wrk_script, wrk_threads
from bench.scenarios import BY_KEY, DEPTH, SCENARIOS, Fixtures, Scenario, fixtures, http_request, mixed

RESULTS = db.ROOT / "bench-results"
SECRET_KEY = "todo-api-bench-secret-key-0123456789abcdefghijkl"  # noqa: S105 - bench only
PEPPER = "todo-api-bench-pepper-0123456789abcdefghijklmnop"
PACED = ("alone", "+ 2 logins in flight")
PAGE = os.sysconf("SC_PAGE_SIZE")


def options(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="API vs baseline, held load, login timing")
    add = parser.add_argument
    add("mode", nargs="?", choices=("compare", "load", "timing", "mcp"), default="compare")
    add("--workers", type=int, help="uvicorn workers per server (compare 1, load 2)")
    add("--duration", type=float, help="seconds per measured run (compare 10, load 60)")
    add("--rounds", type=int, default=3, help="rounds per scenario and server (timing: 10 x rounds logins)")
    add("--warmup", type=float, help="unmeasured seconds per scenario and server (compare 2, load 10)")
    add("--connections", type=int, help="closed-loop connections (compare: wrk's, 32, logins 4; load: 16)")
    add("--reuse-data", action="store_true", help="keep a todo_bench seeded with as many users")
    add("--python-load", action="store_true", help="the Python generator instead of wrk")
    add("--only", default="", help="compare these scenarios (comma-separated keys) only, no fixed-rate runs")
    add("--log-level", default="INFO", help="the API's LOG_LEVEL (production's INFO; before issue 12: WARNING)")
    add("--access-log", choices=("on", "off"), default="on", help="the API's ACCESS_LOG: its cost is on minus off")
    add("--quick", action="store_true", help="smoke test: 2 s runs, 1 round, 1 s warm-up, a 91,000-task seed")
    add(
        "--against",
        default="",
        help="compare: a checkout of another commit (`uv sync` done in it) whose API is "
        "measured too, in the same rounds on the same database: a change's cost, free of run-to-run noise",
    )
    load = (o := parser.parse_args(argv)).mode == "load"
    o.against = str(Path(o.against).resolve()) if o.against else ""
    o.workers, o.duration = o.workers or (2 if load else 1), o.duration or (60.0 if load else 10.0)
    o.connections, o.warmup = o.connections or (16 if load else 32), o.warmup or (10.0 if load else 2.0)
    o.users, o.tasks_per_user, o.deep_tasks = (200, 200, DEPTH + 1000) if o.quick else (1000, 1000, 60_000)
    if o.quick:
        o.duration, o.rounds, o.warmup = min(o.duration, 2.0), 1, 1.0
    return o


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    def rss(self) -> list[float]:
        """Resident MiB of each uvicorn worker (the supervisor's spawned children), or of the server alone."""
        pid, sizes = self.process.pid, []
        with contextlib.suppress(OSError):  # a process that has just exited
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            workers = [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()] or [str(pid)]
            for worker in workers:
                sizes.append(round(int(Path(f"/proc/{worker}/statm").read_text().split()[1]) * PAGE / 2**20, 1))
        return sizes

    async def ready(self, workers: int) -> None:
        """Until /healthz answers and every worker runs; at once, with the log, if the server died."""
        for _ in range(450):
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{(RESULTS / f'{self.name}.log').read_text()[-3000:]}")
            with contextlib.suppress(*FAILURES):
                if (await fetch(self.port, http_request("GET", "/healthz")))[0] == 200 and len(self.rss()) >= workers:
                    return await asyncio.sleep(1.0)  # the other workers finish starting
            await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.name} was not ready within 90 s")

    def stop(self) -> None:
        """SIGTERM to its process group (a session of its own), SIGKILL if it lingers."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(25)
                return


def start(name: str, env: dict[str, str], workers: int, checkout: Path = db.ROOT) -> Server:
    """The API as deployed (`python -m todo_api`) from `checkout`, or the baseline under the same uvicorn settings."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = int(probe.getsockname()[1])
    command = [sys.executable if checkout == db.ROOT else str(checkout / ".venv" / "bin" / "python"), "-m", "todo_api"]
    if name == "baseline":
        command[2:] = ["uvicorn", "bench.baseline:create_app", "--factory", "--host", HOST, "--port", str(port)]
        command += ["--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    env = {**env, "HOST": HOST, "PORT": str(port), "WEB_CONCURRENCY": str(workers)}
    with (RESULTS / f"{name}.log").open("wb") as log:
        process = subprocess.Popen(command, cwd=checkout, env=env, stdout=log, stderr=log, start_new_session=True)
    return Server(name, port, process)


def environment(url: str, o: argparse.Namespace, bcrypt_cost: int) -> dict[str, str]:
    """Production settings, the bench's keys, the throttles out of the way."""
    limits = {f"THROTTLE_{k}": "1000000000" for k in ("LOGIN_PER_ACCOUNT", "LOGIN_PER_ADDRESS", "SIGNUP_PER_ADDRESS")}
    return {**os.environ, **limits, "ENVIRONMENT": "production", "LOG_LEVEL": o.log_level, "LOG_FORMAT": "json",
            "ACCESS_LOG": "true" if o.access_log == "on" else "false",
            "DATABASE_URL": url, "SECRET_KEY": SECRET_KEY, "PASSWORD_PEPPER": PEPPER, "BCRYPT_COST": str(bcrypt_cost),
            "PYTHONUNBUFFERED": "1"}  # fmt: skip


def log_summary() -> dict[str, int]:
    """Access lines, unhandled exceptions and error lines in the API's JSON log."""
    counts = dict.fromkeys(("access lines", "unhandled exceptions", "error lines"), 0)
    with (RESULTS / "api.log").open("rb") as lines:
        for line in lines:
            with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
                event, level = (record := orjson.loads(line)).get("event"), record.get("level")
                counts["access lines"] += event == "request"
                counts["unhandled exceptions"] += event == "unhandled_exception"
                counts["error lines"] += level in ("error", "critical")
    return counts


def summary(runs: Sequence[Run]) -> Run:
    medians = {key: statistics.median(run[key] for run in runs) for key in ("rps", "p50_ms", "p99_ms")}
    return {**medians, "errors": sum(run["errors"] for run in runs), "max_ms": max(run["max_ms"] for run in runs)}


@dataclass
class Compare:
    """API against baseline, scenario by scenario, in alternating rounds (API, baseline, baseline, API ...)
    so that drifting noise hits both alike; with --against, another checkout's API takes the middle turn."""

    o: argparse.Namespace
    fx: Fixtures
    url: str
    servers: dict[str, Server]  # "api", "baseline" and, with --against, "against"
    monitor: asyncpg.Connection  # counts the connections each server opens (a warm pool opens none)
    wrk: str | None
    scratch: Path

    def turns(self) -> list[str]:
        sides = list(self.servers)
        return [side for n in range(self.o.rounds) for side in (sides, sides[::-1])[n % 2]]

    async def closed(self, scenario: Scenario, side: str, duration_s: float, connections: int = 0) -> Run:
        conns, port = connections or scenario.connections or self.o.connections, self.servers[side].port
        if self.wrk is None:
            lanes = scenario.lanes(self.fx, conns, conns) if scenario.undo else ()
            return (await drive(port, scenario.requests(self.fx), conns, duration_s, lanes=lanes)).run(duration_s)
        if not (script := self.scratch / f"{scenario.key}-{conns}.lua").exists():
            wrk_script(script, scenario.lanes(self.fx, wrk_threads(conns), conns))
        return await wrk(self.wrk, script, port, conns, duration_s)

    async def undo(self, scenario: Scenario, side: str) -> None:
        """Before each run of a scenario with an `undo`: every task as `undo` leaves it, where lanes start."""
        if scenario.undo is not None:
            await send_all(self.servers[side].port, scenario.undoing(self.fx))

    async def scenario(self, scenario: Scenario) -> dict[str, Any]:
        for side in self.servers:
            await self.undo(scenario, side)
            await self.closed(scenario, side, self.o.warmup)
        runs: dict[str, list[Run]] = {side: [] for side in self.servers}
        opened, written = dict.fromkeys(self.servers, 0), dict.fromkeys(self.servers, 0)
        for side in self.turns():
            await self.undo(scenario, side)
            before, versions = await db.sessions(self.monitor), await db.task_versions(self.monitor, scenario.writes)
            runs[side].append(await self.closed(scenario, side, self.o.duration))
            await asyncio.sleep(1.0)  # the server's backends publish their statistics
            opened[side] += await db.sessions(self.monitor) - before
            written[side] += await db.task_versions(self.monitor, scenario.writes) - versions
        await self.undo(scenario, "baseline")  # and after the last: the tasks as the seed made them
        result: dict[str, Any] = {"key": scenario.key, "title": scenario.title}
        for side, server in self.servers.items():
            result[side] = {**summary(runs[side]), "connections_opened": opened[side], "rss_mib": server.rss()}
            result[side] |= {"task_writes": written[side], "runs": runs[side]}
        api, base = result["api"], result["baseline"]
        result["ratio"] = api["rps"] / base["rps"] if base["rps"] else 0.0
        against = f"   against's ratio {result['against']['rps'] / base['rps']:.2f}" if "against" in result else ""
        say(f"  {scenario.title:<26} API {api['rps']:8.1f} req/s   baseline {base['rps']:8.1f} req/s   "
            f"ratio {result['ratio']:.2f}   errors {api['errors']:.0f}/{base['errors']:.0f}{against}")  # fmt: skip
        return result

    async def paced(self, rate: float) -> dict[str, Any]:
        """The list at `rate` (open loop, 64 connections), alone and with two logins in flight all the time."""
        runs = {f"{side} {kind}": list[Run]() for side in self.servers for kind in PACED}
        requests = BY_KEY["list"].requests(self.fx)
        logins: dict[str, list[float]] = {"api": [], "baseline": []}
        for side in self.turns():
            for kind in PACED:
                background = None
                if kind != PACED[0]:
                    background = asyncio.create_task(self.closed(BY_KEY["login"], side, self.o.duration + 2, 2))
                    await asyncio.sleep(1.0)  # both logins are under way before the window opens
                tally = await drive(self.servers[side].port, requests, 64, self.o.duration, rate)
                runs[f"{side} {kind}"].append(tally.run(self.o.duration))
                if background is not None:
                    logins[side].append((await background)["rps"])
        return {"rate": rate, "logins_rps": logins, "runs": {key: summary(value) for key, value in runs.items()}}

    async def parity(self, scenarios: Sequence[Scenario]) -> list[str]:
        """Each scenario's first request to both: reads (and writes with an `undo`, whose answer does not
        depend on what was written) must answer the same JSON, other writes the same keys."""
        notes = []
        for scenario in scenarios:
            message = scenario.requests(self.fx)[0].data
            (a_status, a_body), (b_status, b_body) = [
                await fetch(self.servers[s].port, message) for s in ("api", "baseline")
            ]
            if (
                "against" in self.servers
                and (status := (await fetch(self.servers["against"].port, message))[0]) != a_status
            ):
                raise RuntimeError(f"{scenario.title}: API {a_status}, against {status}")
            if not (200 <= a_status < 300 and a_status == b_status):
                raise RuntimeError(
                    f"{scenario.title}: API {a_status} {a_body[:300]!r}, baseline {b_status} {b_body[:300]!r}"
                )
            a, b = orjson.loads(a_body), orjson.loads(b_body)
            if (a.keys() != b.keys()) if scenario.writes and not scenario.undo else (a != b):
                notes.append(f"{scenario.title}: the JSON differs (API {a_body[:200]!r} / baseline {b_body[:200]!r})")
        return notes

    async def run(self) -> dict[str, Any]:
        chosen = [s for s in SCENARIOS if s.baseline and (not self.o.only or s.key in self.o.only.split(","))]
        report: dict[str, Any] = {"parity_notes": await self.parity(chosen), "scenarios": []}
        say("both servers answer the same; measuring")
        for number, scenario in enumerate(chosen):
            if number and chosen[number - 1].writes:
                await db.settle(self.url)
            report["scenarios"].append(await self.scenario(scenario))
        if not self.o.only and not self.o.against:
            rate = max(1, round(report["scenarios"][0]["api"]["rps"] / 2))
            say(f"the list at a fixed {rate} req/s (half the API's maximum), alone and with 2 logins in flight")
            await db.settle(self.url)
            report["paced"] = await self.paced(rate)
            report["rss_after_run"] = {side: server.rss() for side, server in self.servers.items()}
            say("a second pass of the list (RSS growth)")
            report["second_pass"] = {
                side: await self.closed(BY_KEY["list"], side, self.o.duration) for side in self.servers
            }
        report["rss_after_second_pass"] = {side: server.rss() for side, server in self.servers.items()}
        return report


async def load(o: argparse.Namespace, fx: Fixtures, api: Server) -> dict[str, Any]:
    """The mix, closed loop, after --warmup seconds of it; each connection waits for its answer, so
    connections beyond what the server sustains would only queue (16 served the most on 2 cores)."""
    requests, rss_start = mixed(fx), api.rss()
    await drive(api.port, requests, o.connections, o.warmup)
    rss_before = api.rss()
    say(f"running {o.duration:.0f} s on {o.connections} connections")
    tally = await drive(api.port, requests, o.connections, o.duration)
    kinds = {key: {"requests": sum(tally.statuses[key].values()), "statuses": dict(tally.statuses[key]),
                   "p50_ms": percentile(values, 50), "p99_ms": percentile(values, 99)}
             for key, values in tally.latencies.items()}  # fmt: skip
    rss = {"at start": rss_start, "after the warm-up": rss_before, "after the run": api.rss()}
    return {"overall": tally.run(o.duration), "kinds": kinds, "rss_mib": rss}


async def timing(o: argparse.Namespace, fx: Fixtures, api: Server) -> dict[str, Any]:
    """3 unmeasured rounds, then 10 x --rounds: one login of each kind, one at a time, in a rotating order."""
    kinds, connection = [BY_KEY["wrong"], BY_KEY["login"], BY_KEY["unknown"]], Connection(api.port)
    pools, samples = {s.key: s.requests(fx) for s in kinds}, {s.key: list[float]() for s in kinds}
    for number in range(3 + 10 * o.rounds):
        for scenario in kinds[number % 3 :] + kinds[: number % 3]:
            request, started = pools[scenario.key][number % len(pools[scenario.key])], time.perf_counter()
            if (answer := await connection.send(request.data))[0] != request.expect:
                raise RuntimeError(f"{scenario.title}: expected {request.expect}, got {answer}")
            samples[scenario.key] += [(time.perf_counter() - started) * 1000] if number >= 3 else []
    connection.close()
    return {"samples_ms": samples, "medians_ms": {key: statistics.median(values) for key, values in samples.items()}}


async def mcp(o: argparse.Namespace, fx: Fixtures, api: Server) -> dict[str, Any]:
    """The REST list and the MCP list_tasks call of the same 20 tasks, in alternating rounds on the
    same server (REST, MCP, MCP, REST ...), after a warm-up of each: what the MCP door costs."""
    kinds = [BY_KEY["list"], BY_KEY["mcp-list"]]
    for scenario in kinds:
        first = scenario.requests(fx)[0]
        if (answer := await fetch(api.port, first.data))[0] != first.expect:
            raise RuntimeError(f"{scenario.title}: expected {first.expect}, got {answer[:2]}")
        await drive(api.port, scenario.requests(fx), o.connections, o.warmup)
    runs: dict[str, list[Run]] = {scenario.key: [] for scenario in kinds}
    for number in range(o.rounds):
        for scenario in kinds if number % 2 == 0 else kinds[::-1]:
            say(f"  round {number + 1}: {scenario.title}")
            runs[scenario.key].append(
                (await drive(api.port, scenario.requests(fx), o.connections, o.duration)).run(o.duration)
            )
    return {"mcp": {key: summary(values) for key, values in runs.items()}}


def num(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def mib(values: Sequence[float]) -> str:
    return "/".join(f"{value:.0f}" for value in values) or "-"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A Markdown table, as docs/performance.md shows them."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * width for width in widths], *rows]:
        cells = [c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print("| " + " | ".join(cells) + " |")


def written(side: dict[str, Any]) -> float:
    return float(side["task_writes"]) / max(1.0, float(sum(run["ok"] for run in side["runs"])))


def print_compare(r: dict[str, Any], o: argparse.Namespace) -> None:
    rows = []
    for s in r["scenarios"]:
        a, b = s["api"], s["baseline"]
        ms = [f"{num(x['p50_ms'])} / {num(x['p99_ms'])}" for x in (a, b)]
        pairs = [f"{a[key]:.0f} / {b[key]:.0f}" for key in ("errors", "connections_opened")]
        rows.append([s["title"], num(a["rps"]), num(b["rps"]), f"{s['ratio']:.2f}", *ms, pairs[0]])
        rows[-1] += [f"{mib(a['rss_mib'])} / {mib(b['rss_mib'])}", pairs[1]]
    header = ["scenario", "API req/s", "baseline req/s", "ratio", "API p50/p99 ms", "baseline p50/p99 ms", "errors A/B"]
    table([*header, "RSS MiB A/B", "DB connections opened A/B"], rows)
    if paced := r.get("paced"):
        rate, runs = paced["rate"], paced["runs"]
        print(f"\nThe list at a fixed {rate:,.0f} req/s (half the API's maximum), medians of {o.rounds} round(s):\n")
        table(["", "achieved", "p50 ms", "p99 ms", "max ms", "errors"],
              [[k, f"{v['rps'] / rate:.0%}", *map(num, (v["p50_ms"], v["p99_ms"], v["max_ms"])), f"{v['errors']:.0f}"]
               for k, v in runs.items()])  # fmt: skip
        alone, busy = runs[f"api {PACED[0]}"], runs[f"api {PACED[1]}"]
        logins = {side: statistics.median(values) for side, values in paced["logins_rps"].items()}
        after, second = r["rss_after_run"], r["rss_after_second_pass"]
        print(f"\nLogins completed meanwhile: API {logins['api']:.1f}/s, baseline {logins['baseline']:.1f}/s; "
              f"with them in flight the API's p99 is {busy['p99_ms'] / alone['p99_ms']:.1f}x its p99 alone.\n"
              f"RSS per worker, MiB: after the run API {mib(after['api'])}, baseline {mib(after['baseline'])}; "
              f"after a second list pass API {mib(second['api'])}, baseline {mib(second['baseline'])}.")  # fmt: skip
    if writes := [s for s in r["scenarios"] if s["api"]["task_writes"] or s["baseline"]["task_writes"]]:
        each = [f"{s['title']} {written(s['api']):.2f} / {written(s['baseline']):.2f}" for s in writes]
        print("\nTask rows written per answered request, API / baseline (the growth of the sum of `version`; "
              f"requests in flight when a run ends count too): {', '.join(each)}")  # fmt: skip
    for note in r["parity_notes"]:
        print(f"note: {note}")
    if o.against:
        print(
            f"\nThe API against {o.against}'s, each against the baseline of the same rounds; pooled: the API's "
            "requests over the other's, every round summed (steadier than the medians when rounds swing):\n"
        )
        table(["scenario", "ratio", "against's ratio", "API / against", "pooled"],
              [[s["title"], f"{s['ratio']:.2f}", f"{s['against']['rps'] / s['baseline']['rps']:.2f}",
                f"{s['api']['rps'] / s['against']['rps']:.2f}", f"{_pooled(s['api'], s['against']):.2f}"]
               for s in r["scenarios"]])  # fmt: skip


def _pooled(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Requests answered over every round of `a` against those of `b` (rounds are equally long)."""
    total = sum(run["rps"] for run in b["runs"])
    return sum(run["rps"] for run in a["runs"]) / total if total else 0.0


def print_load(r: dict[str, Any], o: argparse.Namespace) -> None:
    rows = [[key, f"{v['requests']:,}", num(v["p50_ms"]), num(v["p99_ms"]), str(v["statuses"])]
            for key, v in sorted(r["kinds"].items(), key=lambda item: -item[1]["requests"])]  # fmt: skip
    table(["scenario", "requests", "p50 ms", "p99 ms", "statuses"], rows)
    served, run, rss = sum(v["requests"] for v in r["kinds"].values()), r["overall"], r["rss_mib"]
    print(f"\n{served:,} requests in {o.duration:.0f} s ({served / o.duration:,.0f} req/s) on {o.connections} "
          f"connections; errors (unexpected statuses, socket errors): {run['errors']:.0f}; p50 {num(run['p50_ms'])}"
          f" ms, p99 {num(run['p99_ms'])} ms, max {num(run['max_ms'])} ms.\nWorker RSS, MiB: "
          + ", ".join(f"{mib(values)} {when}" for when, values in rss.items()))  # fmt: skip


def print_mcp(r: dict[str, Any], o: argparse.Namespace) -> None:
    rest, mcp_call = r["mcp"]["list"], r["mcp"]["mcp-list"]
    rows = [[BY_KEY[key].title, num(v["rps"]), num(v["p50_ms"]), num(v["p99_ms"]), f"{v['errors']:.0f}"]
            for key, v in r["mcp"].items()]  # fmt: skip
    table(["", "req/s", "p50 ms", "p99 ms", "errors"], rows)
    print(
        f"\nMCP / REST: {mcp_call['rps'] / rest['rps']:.2f} of the throughput, p50 "
        f"{mcp_call['p50_ms'] - rest['p50_ms']:+.2f} ms ({o.connections} connections, medians of {o.rounds} round(s))"
    )


def print_timing(r: dict[str, Any], _: argparse.Namespace) -> None:
    rows = []
    for key, values in r["samples_ms"].items():
        q1, _, q3 = statistics.quantiles(values, n=4)
        rows.append([BY_KEY[key].title, *map(num, (r["medians_ms"][key], q1, q3, min(values), max(values)))])
    table(["", "median ms", "q1", "q3", "min", "max"], rows)
    ratio = r["medians_ms"]["unknown"] / r["medians_ms"]["wrong"]
    print(f"\nunknown / known e-mail: {ratio:.3f} ({'within' if 0.8 <= ratio <= 1.25 else 'OUTSIDE'} 0.8-1.25)")


async def main(o: argparse.Namespace) -> int:
    RESULTS.mkdir(exist_ok=True)
    load_start, cost, compare = os.getloadavg()[0], 4 if o.mode == "load" else 12, o.mode == "compare"
    if load_start > (os.cpu_count() or 1) / 2:
        say(f"WARNING: the machine is busy (load average {load_start:.1f}): the figures will be noisy")
    if (executable := shutil.which("wrk") if compare and not o.python_load else None) is None and compare:
        say("!! NOT USING wrk (apt-get install wrk): the Python generator needs far more CPU per request, so its "
            "maxima are LOWER than wrk's. Compare ratios only.")  # fmt: skip
    report: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"), "options": vars(o)}
    with tempfile.TemporaryDirectory(prefix="todo-bench-") as scratch:
        async with db.server() as (server_url, source):
            report["server_settings"] = await db.settings(server_url)
            say(f"PostgreSQL: {source} ({db.described(report['server_settings'])}); preparing {db.NAME}")
            seeded = await db.prepare(server_url, o.users, o.tasks_per_user, o.deep_tasks, o.reuse_data, PEPPER, cost)
            say(seeded)
            url = db.dsn(server_url, db.NAME)
            fx, env = await fixtures(url, SECRET_KEY, o.users), environment(url, o, cost)
            servers = {name: start(name, env, o.workers) for name in ["api", "baseline"][: 2 if compare else 1]}
            if compare and o.against:
                servers["against"] = start("against", env, o.workers, Path(o.against))
            try:
                for server in servers.values():
                    await server.ready(o.workers)
                async with db.connect(url) as monitor:
                    if compare:
                        report |= await Compare(o, fx, url, servers, monitor, executable, Path(scratch)).run()
                    else:
                        mode = {"load": load, "timing": timing, "mcp": mcp}[o.mode]
                        report |= await mode(o, fx, servers["api"])
            finally:
                for server in servers.values():
                    server.stop()
    report |= {"database": source, "seed": seeded, "load_generator": executable or "the Python generator",
               "load_average": [load_start, os.getloadavg()[0]], "api_log": log_summary()}  # fmt: skip
    runs = {"compare": f"{o.rounds} round(s) of {o.duration:.0f} s", "load": f"{o.duration:.0f} s", "timing": "logins",
            "mcp": f"{o.rounds} round(s) of {o.duration:.0f} s"}  # fmt: skip
    print(f"\ntodo-api bench {o.mode}, {report['started_at']}: {o.workers} worker(s) per server, the API at "
          f"LOG_LEVEL={o.log_level}, access log {o.access_log}; {report['load_generator']}, {runs[o.mode]}; "
          f"{os.cpu_count()} CPUs shared by everything, load average {load_start:.1f} at the start, "
          f"{report['load_average'][1]:.1f} at the end; {seeded}; PostgreSQL: "
          f"{db.described(report['server_settings'])}\n")  # fmt: skip
    {"compare": print_compare, "load": print_load, "timing": print_timing, "mcp": print_mcp}[o.mode](report, o)
    print("API log (bench-results/api.log): " + ", ".join(f"{n:,} {what}" for what, n in report["api_log"].items()))
    path = RESULTS / ("latest.json" if compare else f"{o.mode}.json")
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    print(f"everything in {path.relative_to(db.ROOT)}")
    log = report["api_log"]
    failed = o.mode == "load" and (report["overall"]["errors"] or log["unhandled exceptions"] or log["error lines"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(uvloop.run(main(options(sys.argv[1:]))))
