"""Where the database is: whatever Postgres URL people paste, as asyncpg and alembic take it.

`postgres://`, `postgresql://` and Neon's URLs (`sslmode`, `channel_binding`, a `-pooler` host)
become asyncpg's DSN plus connect arguments; alembic reads the same target through SQLAlchemy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import URL, make_url

# libpq query parameters asyncpg does not take as keywords; sslmode is translated to `ssl`.
_LIBPQ_ONLY = frozenset(
    {"sslmode", "channel_binding", "sslrootcert", "sslcert", "sslkey", "options", "target_session_attrs"}
)


@dataclass(frozen=True)
class DatabaseTarget:
    url: URL  # postgresql+asyncpg, for SQLAlchemy (alembic)
    connect_args: dict[str, Any] = field(default_factory=dict)
    pooler: bool = False

    @property
    def dsn(self) -> str:
        """The same target as asyncpg takes it."""
        return self.url.set(drivername="postgresql").render_as_string(hide_password=False)


def database_target(raw_url: str, *, pooler_mode: bool | None = None) -> DatabaseTarget:
    """Normalise `postgres://`, `postgresql://` and Neon URLs (`sslmode`, `channel_binding`, `-pooler`)."""
    url = make_url(raw_url.strip())
    if url.get_backend_name() not in {"postgres", "postgresql"}:
        raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, not {url.get_backend_name()!r}")
    query = dict(url.query)
    connect_args: dict[str, Any] = {}
    sslmode = query.get("sslmode") or query.get("ssl")
    if isinstance(sslmode, str) and sslmode != "disable":
        connect_args["ssl"] = sslmode
    kept = {key: value for key, value in query.items() if key not in _LIBPQ_ONLY and key != "ssl"}
    pooler = pooler_mode if pooler_mode is not None else "-pooler" in (url.host or "")
    url = url.set(drivername="postgresql+asyncpg", query=kept)
    return DatabaseTarget(url=url, connect_args=connect_args, pooler=pooler)
