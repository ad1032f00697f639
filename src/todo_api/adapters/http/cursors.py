"""Opaque, signed page cursors: a keyset position the client cannot forge or point at another sort."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime

from todo_api.domain.errors import DomainError
from todo_api.domain.tasks import Position, Sort


class InvalidCursor(DomainError):
    code = "invalid_cursor"


class CursorCodec:
    def __init__(self, key: str) -> None:
        self._key = hashlib.sha256(b"todo-api cursor " + key.encode()).digest()

    def encode(self, sort: Sort, position: Position) -> str:
        value = position.value.isoformat() if isinstance(position.value, datetime) else position.value
        payload = json.dumps([str(sort), value, position.id], separators=(",", ":")).encode()
        return _b64(payload + hmac.digest(self._key, payload, "sha256")[:16])

    def decode(self, cursor: str, sort: Sort) -> Position:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            payload, signature = raw[:-16], raw[-16:]
            if not hmac.compare_digest(signature, hmac.digest(self._key, payload, "sha256")[:16]):
                raise ValueError("bad signature")
            issued_for, value, task_id = json.loads(payload)
        except (ValueError, TypeError, binascii.Error) as error:
            raise InvalidCursor("The cursor is not one this API issued.") from error
        if issued_for != str(sort):
            raise InvalidCursor("The cursor belongs to another sort order; start again without it.")
        if sort.field in ("created_at", "updated_at", "due_at") and isinstance(value, str):
            value = datetime.fromisoformat(value)
        return Position(value, int(task_id))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
