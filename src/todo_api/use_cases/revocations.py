"""Ended sessions, known to every request without a query.

An access token lives for minutes and carries its session's id (`sid`). Ending a session (logout,
a detected refresh-token reuse, a password change, deleting the session or the account) records
the id in the database; every process reads the ids ended within the last access-token lifetime
into memory every `refresh_s` (a worker loop's `run_once`), and the process that ended a session
knows at once. Until its first read has succeeded, a process reads before it authenticates
anyone: a replica fresh from start-up (or started while the database was away) must not accept
a session another one ended. So checking a request's token is a set lookup: a replica refuses an ended session's
tokens at most `refresh_s` after the commit, and an id older than any token it could be in is
forgotten.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime, timedelta

from todo_api.domain.ports import Clock, RevokedSessions


class RevokedSessionCache:
    name = "revoked_sessions"

    def __init__(self, store: RevokedSessions, clock: Clock, *, horizon: timedelta) -> None:
        self._store, self._clock, self._horizon = store, clock, horizon
        self._ids: frozenset[str] = frozenset()
        self._local: dict[str, datetime] = {}
        self.loaded_at: datetime | None = None
        self._first_load = asyncio.Lock()

    async def is_revoked(self, session_id: str) -> bool:
        if self.loaded_at is None:  # once per process, or until the database answers
            async with self._first_load:
                if self.loaded_at is None:
                    await self.run_once()
        return session_id in self._ids or session_id in self._local

    def note(self, session_ids: Iterable[str], at: datetime) -> None:
        """Sessions this process has just ended (committed): refused here before the next refresh."""
        for session_id in session_ids:
            self._local[session_id] = at

    async def run_once(self) -> int:
        """Reload the ids ended within the horizon. Always 0: the loop waits its interval after it."""
        now = self._clock.now()
        since = now - self._horizon
        ids = frozenset(await self._store.revoked_since(since))
        # Kept: what this process ended while the read ran (a commit the read's snapshot missed).
        self._local = {session_id: at for session_id, at in self._local.items() if at > since and session_id not in ids}
        self._ids = ids
        self.loaded_at = now
        return 0
