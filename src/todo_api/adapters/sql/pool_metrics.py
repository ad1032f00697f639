"""Database pool gauges for Prometheus, kept current by the pool's own checkout/checkin events."""

from __future__ import annotations

from typing import Any

from prometheus_client import Gauge
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

IN_USE = Gauge("db_pool_connections_in_use", "Connections checked out of the pool.", multiprocess_mode="livesum")
OPEN = Gauge("db_pool_connections_open", "Connections the pool holds open.", multiprocess_mode="livesum")


def instrument(engine: AsyncEngine) -> None:
    pool = engine.sync_engine.pool

    def on_connect(*_: Any) -> None:
        OPEN.inc()

    def on_close(*_: Any) -> None:
        OPEN.dec()

    def on_checkout(*_: Any) -> None:
        IN_USE.inc()

    def on_checkin(*_: Any) -> None:
        IN_USE.dec()

    event.listen(pool, "connect", on_connect)
    event.listen(pool, "close", on_close)
    event.listen(pool, "detach", on_close)
    event.listen(pool, "checkout", on_checkout)
    event.listen(pool, "checkin", on_checkin)
