"""Opaque, signed page cursors: a keyset position the client cannot forge or point at another
sort (or at the other collection: a cursor of lists is issued for `lists`, never a task sort)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime

from todo_api.domain.errors import DomainError
from todo_api.domain.ports import ListPosition
from todo_api.domain.recurrence import ReminderPosition
from todo_api.domain.tasks import Position, Sort, SortValue

_LISTS = "lists"
_DELETED = "deleted"
_REMINDERS = "reminders"


class InvalidCursor(DomainError):
    code = "invalid_cursor"


class CursorCodec:
    def __init__(self, key: str) -> None:
        self._key = hashlib.sha256(b"todo-api cursor " + key.encode()).digest()

    def encode(self, sort: Sort, position: Position) -> str:
        value = position.value.isoformat() if isinstance(position.value, datetime) else position.value
        return self._sign(str(sort), value, position.id)

    def decode(self, cursor: str, sort: Sort) -> Position:
        value, task_id = self._open(cursor, str(sort))
        if sort.field in ("created_at", "updated_at", "due_at") and isinstance(value, str):
            value = datetime.fromisoformat(value)
        return Position(value, task_id)

    def encode_lists(self, position: ListPosition) -> str:
        return self._sign(_LISTS, position.position, position.id)

    def decode_lists(self, cursor: str) -> ListPosition:
        value, list_id = self._open(cursor, _LISTS)
        if not isinstance(value, str):
            raise InvalidCursor("The cursor is not one this API issued.")
        return ListPosition(value, list_id)

    def encode_deleted(self, position: Position) -> str:
        assert isinstance(position.value, datetime)  # noqa: S101 - deleted tasks page by `deleted_at`
        return self._sign(_DELETED, position.value.isoformat(), position.id)

    def decode_deleted(self, cursor: str) -> Position:
        value, task_id = self._open(cursor, _DELETED)
        try:
            return Position(datetime.fromisoformat(str(value)), task_id)
        except ValueError as error:
            raise InvalidCursor("The cursor is not one this API issued.") from error

    def encode_reminders(self, position: ReminderPosition) -> str:
        return self._sign(_REMINDERS, position.fire_at.isoformat(), position.id)

    def decode_reminders(self, cursor: str) -> ReminderPosition:
        value, reminder_id = self._open(cursor, _REMINDERS)
        try:
            return ReminderPosition(datetime.fromisoformat(str(value)), reminder_id)
        except ValueError as error:
            raise InvalidCursor("The cursor is not one this API issued.") from error

    def encode_row(self, issued_for: str, row_id: int) -> str:
        """A cursor that is only a row id (pages in id order), bound to what it pages."""
        return self._sign(issued_for, None, row_id)

    def decode_row(self, cursor: str, issued_for: str) -> int:
        return self._open(cursor, issued_for)[1]

    def _sign(self, issued_for: str, value: SortValue, row_id: int) -> str:
        payload = json.dumps([issued_for, value, row_id], separators=(",", ":")).encode()
        return _b64(payload + hmac.digest(self._key, payload, "sha256")[:16])

    def _open(self, cursor: str, issued_for: str) -> tuple[SortValue, int]:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            payload, signature = raw[:-16], raw[-16:]
            if not hmac.compare_digest(signature, hmac.digest(self._key, payload, "sha256")[:16]):
                raise ValueError("bad signature")
            signed_for, value, row_id = json.loads(payload)
        except (ValueError, TypeError, binascii.Error) as error:
            raise InvalidCursor("The cursor is not one this API issued.") from error
        if signed_for != issued_for:
            raise InvalidCursor("The cursor belongs to another sort order; start again without it.")
        return value, int(row_id)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
