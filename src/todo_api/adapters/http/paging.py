"""Keyset pages over HTTP: the `cursor` parameter and the `Link: rel="next"` header."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import Query, Request

Cursor = Annotated[str | None, Query(max_length=512)]


# Asked once, not on every page: `include_total` costs a count over the whole filter.
_FIRST_PAGE_ONLY = frozenset({"cursor", "include_total"})


def next_link(request: Request, cursor: str) -> str:
    """The same query with the next cursor, as a relative reference (RFC 8288 resolves it against
    the request's URL): right behind any proxy, whatever host or scheme the app itself sees."""
    query = [(name, value) for name, value in request.query_params.multi_items() if name not in _FIRST_PAGE_ONLY]
    return f'<{request.scope["path"]}?{urlencode([*query, ("cursor", cursor)])}>; rel="next"'
