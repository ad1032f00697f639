"""Readiness: the app can serve only while its database answers."""

from __future__ import annotations

from todo_api.domain.ports import DatabaseProbe


class CheckReadiness:
    def __init__(self, probe: DatabaseProbe) -> None:
        self._probe = probe

    async def execute(self) -> None:
        await self._probe.ping()
