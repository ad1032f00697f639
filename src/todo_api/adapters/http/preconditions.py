"""ETags and conditional requests (RFC 9110 §13): a task's or a list's ETag is its version, quoted."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Header

from todo_api.adapters.http.schemas import ENTITY_TAGS, MAX_ENTITY_TAGS_CHARS

IfMatch = Annotated[
    str | None,
    Header(
        max_length=MAX_ENTITY_TAGS_CHARS,
        pattern=ENTITY_TAGS,
        description='The ETag you hold, e.g. `"3"` (or `*`); 412 if it is stale.',
    ),
]
IfNoneMatch = Annotated[
    str | None,
    Header(
        max_length=MAX_ENTITY_TAGS_CHARS,
        pattern=ENTITY_TAGS,
        description="The ETag you hold; 304 while the resource is still at that version.",
    ),
]

_OPAQUE_TAG = re.compile(r'"([^"]*)"')


def etag(version: int) -> str:
    return f'"{version}"'


def versions(header: str | None) -> frozenset[int] | None:
    """`If-Match` as the versions it accepts; `*` (or no header) accepts any. Tags that are not
    ours match nothing, so they end in 412 like any stale tag. (The header's syntax is checked by
    its pattern: a list of quoted tags, whose content may itself hold a comma.)"""
    if header is None or header == "*":
        return None
    return frozenset(int(tag) for tag in _OPAQUE_TAG.findall(header) if tag.isdigit() and len(tag) < 10)


def still_fresh(if_none_match: str | None, version: int) -> bool:
    """Whether `If-None-Match` names the version the client would get: then 304, no body."""
    return if_none_match is not None and (if_none_match == "*" or version in (versions(if_none_match) or ()))
