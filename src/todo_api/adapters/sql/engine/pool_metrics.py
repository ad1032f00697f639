"""Database pool gauges for Prometheus, kept current as connections go out and come back."""

from __future__ import annotations

from prometheus_client import Gauge

IN_USE = Gauge("db_pool_connections_in_use", "Connections checked out of the pool.", multiprocess_mode="livesum")
OPEN = Gauge("db_pool_connections_open", "Connections the pool holds open.", multiprocess_mode="livesum")


class PoolGauges:
    """One pool's share of the process-wide gauges: it adds what changed since it last reported,
    so several pools in one process (tests build many apps) sum instead of overwriting each other."""

    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open = 0

    def checked_out(self, open_connections: int) -> None:
        IN_USE.inc()
        self.resized(open_connections)

    def checked_in(self, open_connections: int) -> None:
        IN_USE.dec()
        self.resized(open_connections)

    def resized(self, open_connections: int) -> None:
        if open_connections != self._open:
            OPEN.inc(open_connections - self._open)
            self._open = open_connections
