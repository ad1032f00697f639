"""Prometheus metrics for HTTP: requests and latency by route template and status.

With several workers, `PROMETHEUS_MULTIPROC_DIR` makes every worker write to shared files and a
scrape of any worker sums them all (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

REQUESTS = Counter("http_requests_total", "HTTP requests served.", ["method", "route", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from request to the last byte of the response.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def observe(method: str, route: str, status: int, seconds: float) -> None:
    # `labels()` hashes and validates its arguments on every call; a route's series are few.
    series = _series.get((method, route, status))
    if series is None:
        series = _series[method, route, status] = (
            REQUESTS.labels(method, route, str(status)),
            LATENCY.labels(method, route),
        )
    series[0].inc()
    series[1].observe(seconds)


def exposition() -> tuple[bytes, str]:
    """The text format, summed over every worker when running multi-process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
