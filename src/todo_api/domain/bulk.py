"""Bulk changes as values: what a request asks of some tasks, and what each task answered.

They are domain values, not just use-case plumbing, because an outcome outlives its request: an
`Idempotency-Key` keeps it, so a retry gets the first answer back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from todo_api.domain.errors import InvalidInput
from todo_api.domain.tasks import UNSET, Priority, Unset

MAX_BULK_TASKS: Final = 100
BulkOp = Literal["complete", "reopen", "delete", "move", "update"]


@dataclass(frozen=True, slots=True)
class BulkOperation:
    """One kind of change for some tasks. `move` needs `list_id` (the tasks go to the end of its
    top level, with their subtrees); `update` sets what is given, `list_id` included."""

    op: BulkOp
    task_ids: tuple[int, ...]
    list_id: int | None = None
    priority: Priority | Unset = UNSET
    add_tags: tuple[str, ...] = ()
    remove_tags: tuple[str, ...] = ()
    due_at: datetime | Unset | None = UNSET

    def __post_init__(self) -> None:
        if self.op == "move" and self.list_id is None:
            raise InvalidInput("A `move` names the `list_id` the tasks go to.", code="invalid_bulk_operation")


@dataclass(frozen=True, slots=True)
class BulkResult:
    task_id: int
    op: BulkOp
    code: str = "ok"  # or the code the single-task call would answer with
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.code == "ok"


@dataclass(frozen=True, slots=True)
class BulkOutcome:
    applied: bool  # False: nothing was written (atomic with a failure, or every task failed)
    results: tuple[BulkResult, ...]
