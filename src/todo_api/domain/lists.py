"""Lists: a person's "Work", "Home", "Groceries", and the one Inbox every person has.

The rules here are the ones a list keeps whatever stores it: a trimmed name of 1 to 100
characters, unique per person regardless of case (the store enforces the uniqueness, the domain
gives the key it compares); a colour from the documented palette or `#rrggbb`; at most
`MAX_LISTS_PER_USER`; the Inbox can be renamed but never deleted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from todo_api.domain.errors import InvalidInput

MAX_LIST_NAME_CHARS: Final = 100
MAX_LISTS_PER_USER: Final = 1000
INBOX_NAME: Final = "Inbox"
# Todoist's palette names, so an SPA can map them to its own theme; any `#rrggbb` works as well.
PALETTE: Final = (
    "berry_red", "red", "orange", "yellow", "olive_green", "lime_green", "green", "mint_green", "teal",
    "sky_blue", "light_blue", "blue", "grape", "violet", "lavender", "magenta", "salmon", "charcoal",
    "grey", "taupe",
)  # fmt: skip
_HEX_COLOR = re.compile(r"#[0-9a-f]{6}")


@dataclass(frozen=True, slots=True)
class TaskList:
    id: int
    user_id: str
    name: str
    color: str | None
    position: str
    is_inbox: bool
    created_at: datetime
    updated_at: datetime
    version: int
    open_count: int = 0
    total_count: int = 0


def normalise_list_name(raw: str) -> str:
    """Trimmed, inner white space kept as typed: `  Home  ` is `Home`."""
    name = raw.strip()
    if not 1 <= len(name) <= MAX_LIST_NAME_CHARS:
        raise InvalidInput(
            f"A list name has 1 to {MAX_LIST_NAME_CHARS} characters.", code="invalid_list_name", field="name"
        )
    return name


def name_key(name: str) -> str:
    """What two names are compared by: `Work` and `work` are the same list name."""
    return name.lower()


def normalise_color(raw: str | None) -> str | None:
    if raw is None:
        return None
    color = raw.strip().lower()
    if color in PALETTE or _HEX_COLOR.fullmatch(color):
        return color
    raise InvalidInput(
        f"A colour is one of {', '.join(PALETTE)} or #rrggbb (e.g. #3b82f6).", code="invalid_color", field="color"
    )
