"""The outbox's CloudEvents, built without a database: one per change, each with its own id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from todo_api.adapters.sql.change_log import cloud_events
from todo_api.domain.changes import Change, Deleted
from todo_api.domain.lists import TaskList
from todo_api.domain.tasks import Task

AT = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def data_of(subject: Task | TaskList) -> dict[str, Any]:
    return {"id": subject.id, "shown": "as the API returns it"}


def test_every_event_has_its_own_random_uuid() -> None:
    changes = [Change("task.deleted", Deleted("task", n, AT)) for n in range(1, 2001)]
    ids = [event["id"] for event in cloud_events("u1", changes, data_of, AT)]
    parsed = [uuid.UUID(event_id) for event_id in ids]
    assert len(set(ids)) == len(ids) == 2000
    assert [str(value) for value in parsed] == ids  # the canonical spelling
    assert {value.version for value in parsed} == {4}
    assert {value.variant for value in parsed} == {uuid.RFC_4122}
    # Random bits: every hex digit outside the version nibble turns up in every position.
    assert all(len({event_id[n] for event_id in ids}) == 16 for n in range(36) if n not in (8, 13, 14, 18, 19, 23))
    assert {event_id[19] for event_id in ids} == set("89ab")


def test_an_event_is_cloud_events_1_0_with_a_tombstone_for_a_deletion() -> None:
    [event] = cloud_events("u1", [Change("list.deleted", Deleted("list", 7, AT))], data_of, AT)
    assert event == {
        "specversion": "1.0",
        "id": event["id"],
        "source": "/api/u1",
        "type": "list.deleted",
        "subject": "lists/7",
        "time": "2026-03-29T01:30:00Z",
        "datacontenttype": "application/json",
        "data": {"id": 7, "deleted_at": "2026-03-29T01:30:00Z"},
    }


def test_no_events_for_no_changes() -> None:
    assert cloud_events("u1", [], data_of, AT) == []
