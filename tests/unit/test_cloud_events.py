"""The outbox's CloudEvents, built without a database: one per change, each with its own id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from todo_api.adapters.http.schemas import event_data
from todo_api.adapters.sql.change_log import _awaiting_id, _json_texts, cloud_events
from todo_api.domain.changes import Change, Deleted
from todo_api.domain.lists import TaskList
from todo_api.domain.tasks import Priority, Task

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


def test_a_created_tasks_event_leaves_both_its_ids_to_the_statement_and_nothing_else() -> None:
    """The statement replaces each mark with the new row's id: in the subject and in `data`, not
    where a title spells the same members (a JSON string escapes their quotes)."""
    title = '"subject":"tasks/0" "data":{"id":0,'
    task = Task(0, "u1", title, None, False, None, Priority.NONE, (), None, AT, AT, 1, 3, None, "a0")
    [text] = _json_texts(cloud_events("u1", [Change("task.created", task)], event_data, AT))
    sent = orjson.loads(text)
    stored = orjson.loads(_awaiting_id(text).replace("\x1f", "42"))
    assert stored == sent | {"subject": "tasks/42", "data": sent["data"] | {"id": 42}}
    assert stored["data"]["title"] == title
    with pytest.raises(ValueError, match="not the event of a task being created"):
        _awaiting_id(_json_texts(cloud_events("u1", [Change("task.deleted", Deleted("task", 7, AT))], data_of, AT))[0])
