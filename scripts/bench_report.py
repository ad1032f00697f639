"""The benchmark's results: what one scenario, the fixed-rate runs and a whole run measured, and
how they are printed (a table on stdout) and kept (`bench-results/latest.json`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from scripts.bench_load import LoadResult, median

P99_TARGET_MS = 15.0


@dataclass
class ScenarioResult:
    key: str
    title: str
    api: list[LoadResult] = field(default_factory=list)
    baseline: list[LoadResult] = field(default_factory=list)
    api_rss_mib: list[float] = field(default_factory=list)
    baseline_rss_mib: list[float] = field(default_factory=list)
    api_connections_opened: list[int] = field(default_factory=list)
    baseline_connections_opened: list[int] = field(default_factory=list)

    def add(self, side: str, run: LoadResult, connections_opened: int) -> None:
        (self.api if side == "api" else self.baseline).append(run)
        opened = self.api_connections_opened if side == "api" else self.baseline_connections_opened
        opened.append(connections_opened)

    def summary(self, side: str) -> dict[str, float]:
        runs = self.api if side == "api" else self.baseline
        return {
            "rps": median([r.rps for r in runs]),
            "p50_ms": median([r.p50_ms for r in runs]),
            "p99_ms": median([r.p99_ms for r in runs]),
            "errors": float(sum(r.errors for r in runs)),
            "db_connections_opened": float(
                sum(self.api_connections_opened if side == "api" else self.baseline_connections_opened)
            ),
        }

    @property
    def ratio(self) -> float:
        base = self.summary("baseline")["rps"]
        return self.summary("api")["rps"] / base if base else 0.0


@dataclass
class PacedResult:
    rate: float
    api_alone: list[LoadResult] = field(default_factory=list)
    api_with_logins: list[LoadResult] = field(default_factory=list)
    baseline_alone: list[LoadResult] = field(default_factory=list)
    baseline_with_logins: list[LoadResult] = field(default_factory=list)
    logins_rps: dict[str, list[float]] = field(default_factory=lambda: {"api": [], "baseline": []})


@dataclass
class Report:
    started_at: str
    machine: dict[str, Any]
    options: dict[str, Any]
    load_generator: str
    database: str
    seed: str
    parity_notes: list[str]
    scenarios: list[ScenarioResult]
    paced: PacedResult | None
    rss_after_run: dict[str, list[float]]
    rss_after_second_pass: dict[str, list[float]]
    second_pass: ScenarioResult | None
    load_average_end: list[float]


# Printing ---------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _rss(values: Sequence[float]) -> str:
    return "/".join(f"{v:.0f}" for v in values) if values else "-"


def render_table(results: Sequence[ScenarioResult]) -> list[str]:
    header = (
        f"{'scenario':<26} {'API req/s':>10} {'base req/s':>10} {'ratio':>6}  "
        f"{'API p50/p99 ms':>15} {'base p50/p99 ms':>16} {'errors A/B':>11} {'RSS MiB A/B':>15} {'DB conns A/B':>13}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        a, b = r.summary("api"), r.summary("baseline")
        lines.append(
            f"{r.title:<26} {a['rps']:>10.1f} {b['rps']:>10.1f} {r.ratio:>6.2f}  "
            f"{_ms(a['p50_ms']) + ' / ' + _ms(a['p99_ms']):>15} {_ms(b['p50_ms']) + ' / ' + _ms(b['p99_ms']):>16} "
            f"{str(int(a['errors'])) + '/' + str(int(b['errors'])):>11} "
            f"{_rss(r.api_rss_mib) + ' / ' + _rss(r.baseline_rss_mib):>15} "
            f"{str(int(a['db_connections_opened'])) + '/' + str(int(b['db_connections_opened'])):>13}"
        )
    return lines


def _paced_line(label: str, runs: Sequence[LoadResult]) -> str:
    if not runs:
        return f"  {label:<24} -"
    achieved = median([r.rps for r in runs])
    offered = runs[0].offered_rps or 0.0
    return (
        f"  {label:<24} achieved {achieved:7.1f} req/s ({achieved / offered * 100 if offered else 0:5.1f}% of offered)"
        f"   p50 {_ms(median([r.p50_ms for r in runs])):>5} ms   p99 {_ms(median([r.p99_ms for r in runs])):>5} ms"
        f"   max {_ms(max(r.max_ms for r in runs)):>5} ms   errors {sum(r.errors for r in runs)}"
        f"   (generator lag p99 {_ms(max(r.generator_lag_p99_ms or 0.0 for r in runs))} ms)"
    )


def render_targets(report: Report) -> list[str]:
    lines: list[str] = []
    paced_result = report.paced
    if paced_result is not None:
        lines.append(
            f"List at a fixed {paced_result.rate:.0f} req/s = half the API's max (open loop, latency from when each "
            f"request was due; medians of {len(paced_result.api_alone)} rounds):"
        )
        lines.append(_paced_line("API alone", paced_result.api_alone))
        lines.append(_paced_line("API + 2 logins in flight", paced_result.api_with_logins))
        lines.append(_paced_line("baseline alone", paced_result.baseline_alone))
        lines.append(_paced_line("baseline + 2 logins", paced_result.baseline_with_logins))
        lines.append(
            f"  logins completed meanwhile: API {median(paced_result.logins_rps['api']):.1f}/s, "
            f"baseline {median(paced_result.logins_rps['baseline']):.1f}/s"
        )
        lines += _verdicts(paced_result)
    after, second = report.rss_after_run, report.rss_after_second_pass
    lines.append(
        f"RSS per worker (MiB): after the run API {_rss(after['api'])}, baseline {_rss(after['baseline'])}; "
        f"after a second list pass API {_rss(second['api'])}, baseline {_rss(second['baseline'])}"
    )
    return lines


def _verdicts(paced_result: PacedResult) -> list[str]:
    if not paced_result.api_alone or not paced_result.api_with_logins:
        return []
    alone_p99 = median([r.p99_ms for r in paced_result.api_alone])
    together_p99 = median([r.p99_ms for r in paced_result.api_with_logins])
    kept = median([r.rps for r in paced_result.api_with_logins]) / paced_result.rate
    verdict = {True: "PASS", False: "FAIL"}
    return [
        f"  target p99 <= {P99_TARGET_MS:.0f} ms at half the max rate:  {verdict[alone_p99 <= P99_TARGET_MS]}"
        f" (API p99 {_ms(alone_p99)} ms)",
        f"  target logins never stall the list: rate kept >= 99%: {verdict[kept >= 0.99]} ({kept * 100:.1f}%);"
        f" p99 at most doubles: {verdict[together_p99 <= 2 * alone_p99]} ({_ms(alone_p99)} -> {_ms(together_p99)} ms)",
    ]


def print_report(report: Report) -> None:
    opts = report.options
    print()
    print(
        f"todo-api benchmark, {report.started_at}: {opts['workers']} worker(s) each, {opts['rounds']} alternating "
        f"rounds of {opts['duration_s']:.0f} s, {report.load_generator}, {opts['connections']} connections "
        f"({opts['threads']} threads; login 4 connections)"
    )
    print(f"machine: {report.machine['cpus']} CPUs shared by load generator, servers and PostgreSQL; load average "
          f"{report.machine['load_average_start']} at the start, {report.load_average_end} at the end")  # fmt: skip
    print(f"database: {report.database}; {report.seed}")
    print("req/s counts 2xx answers only; p50/p99 and req/s are medians over rounds; ratio = API / baseline;")
    print("errors (non-2xx + socket errors) and DB conns (connections the server opened) are summed over rounds")
    print()
    for line in render_table(report.scenarios):
        print(line)
    print()
    for line in render_targets(report):
        print(line)
    for note in report.parity_notes:
        print(f"note: {note}")


def _jsonable(value: object) -> object:
    if isinstance(value, LoadResult):
        return {**asdict(value), "rps": value.rps, "errors": value.errors}
    if isinstance(value, ScenarioResult):
        return {
            "key": value.key, "title": value.title, "api": [_jsonable(r) for r in value.api],
            "baseline": [_jsonable(r) for r in value.baseline], "api_summary": value.summary("api"),
            "baseline_summary": value.summary("baseline"), "ratio": value.ratio,
            "api_rss_mib": value.api_rss_mib, "baseline_rss_mib": value.baseline_rss_mib,
            "api_connections_opened": value.api_connections_opened,
            "baseline_connections_opened": value.baseline_connections_opened,
        }  # fmt: skip
    if isinstance(value, PacedResult):
        return {
            "rate": value.rate, "api_alone": [_jsonable(r) for r in value.api_alone],
            "api_with_logins": [_jsonable(r) for r in value.api_with_logins],
            "baseline_alone": [_jsonable(r) for r in value.baseline_alone],
            "baseline_with_logins": [_jsonable(r) for r in value.baseline_with_logins],
            "logins_rps": value.logins_rps,
        }  # fmt: skip
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    return value


def write_json(report: Report, path: Path) -> None:
    data = {name: _jsonable(getattr(report, name)) for name in report.__dataclass_fields__}
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
