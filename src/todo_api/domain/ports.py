"""Ports: what the core needs from the outside world, as Protocols the adapters satisfy."""

from __future__ import annotations

from typing import Protocol


class DatabaseProbe(Protocol):
    async def ping(self) -> None:
        """Return when the database answers; raise ServiceUnavailable when it does not."""
