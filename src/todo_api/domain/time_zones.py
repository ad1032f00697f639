"""Time zones by IANA name: the one lookup behind "due today" and a recurrence's wall clock."""

from __future__ import annotations

from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from todo_api.domain.errors import InvalidInput

MAX_TIME_ZONE_CHARS: Final = 64


def zone_named(name: str, *, field: str | None = None) -> ZoneInfo:
    """The zone of an IANA name such as `Europe/Paris` (or `UTC`); `422 unknown_time_zone` naming
    `field` otherwise."""
    unknown = InvalidInput(
        f"{name[:MAX_TIME_ZONE_CHARS]!r} is not a known time zone; send an IANA name such as Europe/Paris.",
        code="unknown_time_zone",
        field=field,
    )
    # ZoneInfo reads a file named after the key: refuse anything that is not a plain zone name first.
    if not name or len(name) > MAX_TIME_ZONE_CHARS or name.startswith(("/", ".")) or ".." in name or "\\" in name:
        raise unknown
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise unknown from None
