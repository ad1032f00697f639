"""Reading the change feed: what changed after a position, and where a reader is now."""

from __future__ import annotations

from todo_api.domain.changes import MAX_CHANGES_PAGE, ChangePage
from todo_api.domain.errors import Gone, InvalidInput
from todo_api.domain.ports import UnitOfWork, UnitOfWorkFactory


def expired(position: int) -> Gone:
    return Gone(
        f"Changes after position {position} are no longer kept; list your tasks and lists again "
        "and follow the sync token of that first page.",
        code="sync_token_expired",
    )


async def changes_after(uow: UnitOfWork, user_id: str, since: int, limit: int) -> ChangePage:
    """Up to `limit` events after `since`. The retention horizon is read after the events: it only
    grows, so a prune that raced the read is seen, and no page ever has a silent hole."""
    events = await uow.changes.read(user_id, since, limit + 1)
    if since < await uow.changes.horizon(user_id):
        raise expired(since)
    if not events and since > await uow.changes.position(user_id):
        # A position this feed never reached (a token from another deployment, or from before a
        # restore of the database): the reader's copy cannot be trusted either.
        raise expired(since)
    page = events[:limit]
    return ChangePage(page, page[-1].position if page else since, len(events) > limit)


class ReadChanges:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def execute(self, user_id: str, since: int | None, limit: int = 100) -> ChangePage:
        """`since` None: no events, only the position now (a token to start following from)."""
        if not 1 <= limit <= MAX_CHANGES_PAGE:
            raise InvalidInput(f"`limit` is between 1 and {MAX_CHANGES_PAGE}.", code="invalid_limit", field="limit")
        async with self._uow(read_only=True) as uow:
            if since is None:
                return ChangePage([], await uow.changes.position(user_id), False)
            return await changes_after(uow, user_id, since, limit)
