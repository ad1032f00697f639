"""Keyset pages over HTTP: the `cursor` parameter and the `Link: rel="next"` header."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import Query, Request

Cursor = Annotated[str | None, Query(max_length=512)]


def next_link(request: Request, cursor: str) -> str:
    """The same query with the next cursor, as a relative reference (RFC 8288 resolves it against
    the request's URL): right behind any proxy, whatever host or scheme the app itself sees."""
    query = [(name, value) for name, value in request.query_params.multi_items() if name != "cursor"]
    return f'<{request.scope["path"]}?{urlencode([*query, ("cursor", cursor)])}>; rel="next"'
