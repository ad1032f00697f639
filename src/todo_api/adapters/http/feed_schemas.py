"""The change feed's shapes: a CloudEvent as stored, and a page of them (`GET .../changes`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from todo_api.adapters.http.schemas import ListOut, Output, TaskOut
from todo_api.domain.changes import EventType

SyncToken = str


class Tombstone(Output):
    """What a `*.deleted` event carries: the deleted object's id and when it went."""

    id: int = Field(examples=[42])
    deleted_at: datetime


class CloudEvent(Output):
    """A CloudEvents 1.0 event (JSON format): one change of one task or list."""

    specversion: Literal["1.0"]
    id: str = Field(
        description="Unique per event: de-duplicate by it.", examples=["9b0c5e1e-8a6b-4c1e-9f43-0f6f1f7c2d11"]
    )
    source: str = Field(description="`/api/<user id>`: whose feed it is.", examples=["/api/u_123"])
    type: EventType = Field(examples=["task.completed"])
    subject: str = Field(description="`tasks/<id>` or `lists/<id>`.", examples=["tasks/42"])
    time: datetime
    datacontenttype: Literal["application/json"]
    position: int = Field(
        description="Its place in your feed: 1, 2, 3... in commit order, never reused. A sync token "
        "or `Last-Event-ID` names the last position a reader has seen.",
        examples=[1043],
    )
    data: TaskOut | ListOut | Tombstone = Field(
        description="The task or list as the API returns it after the change; for a deletion, a tombstone."
    )


class ChangesMeta(Output):
    sync_token: SyncToken = Field(description="Send as `since` for the next page.", examples=["1043"])
    has_more: bool = Field(description="More events wait: ask again at once.")
    limit: int


class ChangesOut(Output):
    data: list[CloudEvent]
    meta: ChangesMeta
