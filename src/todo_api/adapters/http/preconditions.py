"""ETags and conditional requests (RFC 9110 §13).

A task's ETag is its version, quoted: `"3"`. A list's also carries its task counts, `"3.2.5"`
(version, open, total): the counts change with the list's tasks, not with its version, and a
cached list with stale counts must not be answered 304. A precondition (`If-Match`) compares the
version only, since that is what a write can change; either form of tag is accepted.
"""

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
_OUR_TAG = re.compile(r"([0-9]{1,9})(?:\.[0-9]{1,9}){0,2}")


def etag(version: int, *counts: int) -> str:
    return '"' + ".".join(str(number) for number in (version, *counts)) + '"'


def versions(header: str | None) -> frozenset[int] | None:
    """`If-Match` as the versions it accepts; `*` (or no header) accepts any. Tags that are not
    ours match nothing, so they end in 412 like any stale tag. (The header's syntax is checked by
    its pattern: a list of quoted tags, whose content may itself hold a comma.)"""
    if header is None or header == "*":
        return None
    tags = (_OUR_TAG.fullmatch(tag) for tag in _OPAQUE_TAG.findall(header))
    return frozenset(int(tag.group(1)) for tag in tags if tag is not None)


def still_fresh(if_none_match: str | None, current: str) -> bool:
    """Whether `If-None-Match` names the ETag the client would get (weak comparison, RFC 9110
    §13.1.2: a `W/` prefix is ignored): then 304, no body."""
    if if_none_match is None:
        return False
    return if_none_match == "*" or current.strip('"') in _OPAQUE_TAG.findall(if_none_match)
