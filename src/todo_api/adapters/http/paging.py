"""Keyset pages over HTTP: the `cursor` parameter and the `Link: rel="next"` header."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import Query, Request, Response

from todo_api.adapters.http.cursors import CursorCodec

Cursor = Annotated[str | None, Query(max_length=512)]


# Asked once, not on every page: `include_total` costs a count over the whole filter.
_FIRST_PAGE_ONLY = frozenset({"cursor", "include_total"})


def next_link(request: Request, cursor: str) -> str:
    """The same query with the next cursor, as a relative reference (RFC 8288 resolves it against
    the request's URL): right behind any proxy, whatever host or scheme the app itself sees."""
    query = [(name, value) for name, value in request.query_params.multi_items() if name not in _FIRST_PAGE_ONLY]
    return f'<{request.scope["path"]}?{urlencode([*query, ("cursor", cursor)])}>; rel="next"'


class RowPaging:
    """Pages in row-id order (conversations, their messages, a webhook's deliveries): the cursor is a
    signed row id bound to what it pages, and the next one is also sent as `Link: rel="next"`."""

    def __init__(self, cursors: CursorCodec, issued_for: str, request: Request, response: Response) -> None:
        self._cursors, self._issued_for = cursors, issued_for
        self._request, self._response = request, response

    def position(self, cursor: str | None) -> int | None:
        """The row the page continues from; None on a first page."""
        return self._cursors.decode_row(cursor, self._issued_for) if cursor else None

    def next_cursor(self, row_id: int | None) -> str | None:
        """The cursor of the page after `row_id`, None on the last page."""
        if row_id is None:
            return None
        cursor = self._cursors.encode_row(self._issued_for, row_id)
        self._response.headers["Link"] = next_link(self._request, cursor)
        return cursor
