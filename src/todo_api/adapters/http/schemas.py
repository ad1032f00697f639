"""Request and response models: strict (no coercion, unknown fields refused), with examples."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from todo_api.domain.bulk import MAX_BULK_TASKS, BulkOp, BulkOutcome
from todo_api.domain.lists import MAX_LIST_NAME_CHARS, PALETTE, TaskList
from todo_api.domain.recurrence import (
    MAX_REMINDERS,
    MAX_RULE_CHARS,
    Recurrence,
    RecurrenceFrom,
    Reminder,
    ScheduledReminder,
    parse_duration,
    reminder_fields,
)
from todo_api.domain.tasks import MAX_DESCRIPTION_CHARS, MAX_TAG_CHARS, MAX_TAGS, MAX_TITLE_CHARS, PriorityName, Task
from todo_api.domain.time_zones import MAX_TIME_ZONE_CHARS
from todo_api.domain.users import MAX_EMAIL_CHARS, MAX_NAME_CHARS, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, User

# The schema states the domain's rules where JSON Schema can, so a generated client (and a
# property-based test) knows what will be accepted, and pydantic enforces exactly what it states.
# `\s` means three different things to pydantic's Rust regex, JSON Schema's ECMA regex and Python's
# `str.strip()` (\x85, \ufeff, \x1c-\x1f), so white space is spelled out: what `strip()` removes,
# less \x1c-\x1f, which count as control characters and are refused anywhere.
WHITE_SPACE = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_CONTROL = r"\x00-\x08\x0e-\x1f\x7f"  # control characters that are not white space
NO_NUL = r"^[^\x00]*$"  # PostgreSQL stores no NUL in text


def trimmed_text(max_chars: int) -> str:
    """1 to `max_chars` characters once surrounding white space is trimmed, no control characters:
    exactly the domain's rule for titles and tags, so the schema promises nothing it refuses."""
    space, allowed, visible = f"[{WHITE_SPACE}]", f"[^{_CONTROL}]", f"[^{WHITE_SPACE}{_CONTROL}]"
    return rf"^{space}*{visible}(?:{allowed}{{0,{max_chars - 2}}}{visible})?{space}*$"


_EMAIL_CHAR = rf"[^@{WHITE_SPACE}\x00-\x1f\x7f]"
_TLD_CHAR = rf"[^@.{WHITE_SPACE}\x00-\x1f\x7f]"
EMAIL = rf"^[{WHITE_SPACE}]*{_EMAIL_CHAR}+@{_EMAIL_CHAR}+\.{_TLD_CHAR}+[{WHITE_SPACE}]*$"
"""domain/users.py's rule (trimmed, then local@domain.tld without white space or control characters)."""

# RFC 9110 entity tags, in visible ASCII: a header's bytes are its characters on every server, and
# a field value never starts or ends with white space (servers strip it before the app sees it,
# so a length that counted it would depend on the transport).
_ETAG = r'(?:W/)?"[\x21\x23-\x7e]*"'
ENTITY_TAGS = rf"^(?:\*|{_ETAG}(?:[ \t]*,[ \t]*{_ETAG})*)$"
MAX_ENTITY_TAGS_CHARS = 512


class StrictInput(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Output(BaseModel):
    """Fields with defaults are still always sent, so the schema marks them required.

    Outputs built from domain objects are validated from plain dicts: pydantic-core does that in
    Rust faster than `model_construct` assigns the same fields in Python (34 against 79 us for a
    page of 20 tasks), and a value the schema does not allow fails here rather than in a client."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


# Lengths are in characters, as the domain counts them. The server's only byte limit is the body
# (MAX_BODY_BYTES, 64 KiB by default): at most 12 bytes a character (a JSON \\u escape pair, or a
# percent-encoded 4-byte UTF-8 character in a form), every body these bounds allow fits in it.
Password = Annotated[str, Field(min_length=MIN_PASSWORD_CHARS, max_length=MAX_PASSWORD_CHARS)]
MAX_LOGIN_EMAIL_CHARS = 320
MAX_LOGIN_PASSWORD_CHARS = 1024


class SignUpRequest(StrictInput):
    """The e-mail, password and name rules of domain/users.py; only "not a common password" cannot
    be said in a schema (422 `weak_password`)."""

    email: str = Field(max_length=MAX_EMAIL_CHARS, pattern=EMAIL, examples=["ada@example.com"])
    password: Password = Field(examples=["correct horse battery staple"])
    name: str | None = Field(default=None, max_length=MAX_NAME_CHARS, pattern=NO_NUL, examples=["Ada Lovelace"])


class LogInRequest(StrictInput):
    """Looser than sign-up on purpose: a malformed e-mail is just another wrong credential (the same
    401 `invalid_credentials`), so nothing here tells which accounts exist or how they look."""

    email: str = Field(max_length=MAX_LOGIN_EMAIL_CHARS, examples=["ada@example.com"])
    password: str = Field(max_length=MAX_LOGIN_PASSWORD_CHARS, examples=["correct horse battery staple"])


class TokenForm(BaseModel):
    """The OAuth2 password grant (RFC 6749 4.3.2) as a form, for Swagger UI's Authorize button.

    A form has no null and sends an empty field as missing, so every field is a non-empty string or
    absent; other fields a client adds are ignored, as OAuth2 servers do."""

    grant_type: Literal["password"] = "password"
    username: str = Field(min_length=1, max_length=MAX_LOGIN_EMAIL_CHARS, description="The e-mail address.")
    password: str = Field(min_length=1, max_length=MAX_LOGIN_PASSWORD_CHARS)
    scope: str = Field(default="", max_length=1024, description="Ignored: a token grants everything its user may do.")
    client_id: str | SkipJsonSchema[None] = Field(default=None, max_length=256)
    client_secret: str | SkipJsonSchema[None] = Field(default=None, max_length=256)


class RefreshRequest(StrictInput):
    refresh_token: str | None = Field(
        default=None,
        max_length=256,
        description="Omit it to use the httpOnly `refresh_token` cookie instead.",
    )


class ChangePasswordRequest(StrictInput):
    current_password: str = Field(max_length=MAX_LOGIN_PASSWORD_CHARS)
    new_password: Password


class UserOut(Output):
    id: str = Field(examples=["Yq3k1bXh0c9sT2mJ4nL8vR6wZ5aP7dFe"])
    email: str | None = Field(examples=["ada@example.com"])
    name: str | None = Field(examples=["Ada Lovelace"])
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls.model_validate(
            {"id": user.id, "email": user.email, "name": user.name, "created_at": user.created_at}
        )


class TokenOut(Output):
    """The OAuth2 token response (RFC 6749 §5.1)."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Seconds until the access token expires.", examples=[900])


class SessionOut(TokenOut):
    user: UserOut
    refresh_token: str = Field(
        description="Opaque; also set as an httpOnly cookie scoped to /api/auth. Each use rotates it."
    )


# Tasks ---------------------------------------------------------------------------------------

PriorityLabel = PriorityName


_RFC_3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})", re.ASCII)


def _rfc_3339_text(value: object) -> object:
    """What the schema's `format: date-time` means (RFC 3339), no more: pydantic alone would also
    take `1790000000` or `-3.5e-36` as a Unix time, and dates without seconds or a zone."""
    if not isinstance(value, str) or not _RFC_3339.fullmatch(value.upper()):
        raise ValueError("expected an RFC 3339 date-time with a time zone, e.g. 2026-12-01T17:00:00Z")
    return value.upper()


# JSON has no datetime type: RFC 3339 strings with a zone; naive ones and numbers are refused.
IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_rfc_3339_text), Field(strict=False)]
DueAt = Annotated[IsoDateTime, Field(examples=["2026-12-01T17:00:00Z"])]
Title = Annotated[str, Field(pattern=trimmed_text(MAX_TITLE_CHARS), examples=["Buy oat milk"])]
Description = Annotated[
    str, Field(max_length=MAX_DESCRIPTION_CHARS, pattern=NO_NUL, examples=["The barista one, not the light one."])
]
Tag = Annotated[str, Field(max_length=4 * MAX_TAG_CHARS, pattern=trimmed_text(MAX_TAG_CHARS))]
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS, examples=[["home", "errands"]])]


def _no_default(schema: dict[str, Any]) -> None:
    """For a field where leaving it out (unchanged) differs from sending `null` (cleared): the
    schema must not claim `null` is what an absent field means, or a generated client sends it."""
    schema.pop("default", None)


MAX_ID = 2**63 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


def _refuse_null(value: object) -> object:
    """For a field that may be left out but is not nullable: the schema says so by leaving `null`
    out, and a sent `null` is refused as the schema promises (not read as "left out")."""
    if value is None:
        raise PydanticCustomError("null_not_allowed", "null is not allowed here")
    return value


NotNull = BeforeValidator(_refuse_null)
OmittableId = Annotated[Id | SkipJsonSchema[None], NotNull]
Duration = Annotated[
    str,
    Field(
        pattern=r"^[Pp](?:\d{1,3}[Ww]|(?:\d{1,3}[Dd])?(?:[Tt](?:\d{1,4}[Hh])?(?:\d{1,6}[Mm])?(?:\d{1,8}[Ss])?)?)$",
        max_length=32,
        description="An ISO 8601 duration in weeks, days, hours, minutes, seconds (no months or years).",
        examples=["PT15M"],
    ),
]

RECURRENCE_EXAMPLES: dict[str, dict[str, Any]] = {
    "every weekday at 09:30 Berlin time (with due_at 09:30 local)": {
        "rule": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
        "timezone": "Europe/Berlin",
        "from": "due",
    },
    "monthly on the last Friday": {"rule": "FREQ=MONTHLY;BYDAY=-1FR", "timezone": "Europe/London", "from": "due"},
    "rent on the 1st, 12 times": {"rule": "FREQ=MONTHLY;BYMONTHDAY=1;COUNT=12", "timezone": "UTC", "from": "due"},
    "water the plants 3 days after the last time": {
        "rule": "FREQ=DAILY;INTERVAL=3",
        "timezone": "America/New_York",
        "from": "completion",
    },
}


class RecurrenceIn(StrictInput):
    """An RFC 5545 RRULE (FREQ DAILY/WEEKLY/MONTHLY/YEARLY, INTERVAL, BYDAY with ordinals for monthly
    and yearly rules, BYMONTHDAY, BYMONTH, BYSETPOS, COUNT, UNTIL, WKST) read on the wall clock of
    `timezone`. Stored normalised; anything else is 422 `invalid_recurrence` naming the part."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [dict(example) for example in RECURRENCE_EXAMPLES.values()]},
    )

    rule: str = Field(min_length=1, max_length=MAX_RULE_CHARS, pattern=NO_NUL, examples=["FREQ=WEEKLY;BYDAY=MO"])
    timezone: str = Field(min_length=1, max_length=MAX_TIME_ZONE_CHARS, pattern=NO_NUL, examples=["Europe/Berlin"])
    from_: RecurrenceFrom = Field(
        default="due",
        alias="from",
        description="`due`: the next occurrence follows the completed one's due date; `completion`: it "
        "follows the moment it was completed.",
    )

    def to_domain(self) -> Recurrence:
        return Recurrence(self.rule, self.timezone, self.from_)


class RecurrenceOut(Output):
    rule: str = Field(examples=["FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"])
    timezone: str = Field(examples=["Europe/Berlin"])
    from_: RecurrenceFrom = Field(alias="from", serialization_alias="from")


class ReminderBefore(StrictInput):
    before: Duration = Field(description="Before `due_at`; moves with it.")


class ReminderAt(StrictInput):
    at: IsoDateTime = Field(description="A fixed instant.", examples=["2026-12-01T16:45:00Z"])


ReminderIn = ReminderBefore | ReminderAt
Reminders = Annotated[
    list[ReminderIn],
    Field(max_length=MAX_REMINDERS, examples=[[{"before": "PT15M"}], [{"at": "2026-12-01T16:45:00Z"}]]),
]


def reminders_of(items: list[ReminderBefore | ReminderAt]) -> tuple[Reminder, ...]:
    return tuple(
        Reminder(before=parse_duration(item.before)) if isinstance(item, ReminderBefore) else Reminder(at=item.at)
        for item in items
    )


class _TaskFields(StrictInput):
    title: Title
    description: Description | None = None
    priority: PriorityLabel = "none"
    tags: Tags = Field(default_factory=list)
    due_at: DueAt | None = None
    completed: bool = False
    recurrence: RecurrenceIn | None = Field(default=None, description="Makes it recurring; needs `due_at`.")
    reminders: Reminders = Field(default_factory=list)


class TaskCreate(_TaskFields):
    list_id: OmittableId = Field(default=None, description="The list it goes to, at the end; your Inbox when left out.")
    parent_id: OmittableId = Field(
        default=None, description="Makes it a subtask (in its parent's list), after the parent's others."
    )


class TaskReplace(_TaskFields):
    """PUT: the whole task; an omitted optional field is reset to its default. Its list, parent and
    place change with `POST .../move`, never here."""


class TaskUpdate(StrictInput):
    """PATCH: only the fields sent change; `null` clears `description` and `due_at` (and only them:
    the others are not nullable, which the schema says by leaving `null` out)."""

    title: Title | SkipJsonSchema[None] = None
    description: Description | None = Field(default=None, json_schema_extra=_no_default)
    priority: PriorityLabel | SkipJsonSchema[None] = None
    tags: Tags | SkipJsonSchema[None] = None
    due_at: DueAt | None = Field(default=None, json_schema_extra=_no_default)
    completed: bool | SkipJsonSchema[None] = None
    recurrence: RecurrenceIn | None = Field(
        default=None,
        description="A new rule (the series restarts at `due_at`); `null` stops the series.",
        json_schema_extra=_no_default,
    )
    reminders: Reminders | SkipJsonSchema[None] = None


class CompletionUpdate(StrictInput):
    completed: bool | None = Field(default=None, description="Omit to toggle.")


class TaskOut(Output):
    id: int = Field(examples=[42])
    title: str
    description: str | None
    completed: bool
    completed_at: datetime | None
    priority: PriorityLabel
    tags: list[str]
    due_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="Increments on every change; the ETag is this number, quoted.")
    list_id: int = Field(description="The list it is in (every task is in one; your Inbox by default).")
    parent_id: int | None = Field(description="The task it is a subtask of; null at the top level.")
    position: str = Field(
        description="Its place among its siblings: `sort=position` orders by it (compare byte by byte, "
        "never as words). The server sets it; move a task with `POST .../move`.",
        examples=["a0"],
    )
    deleted_at: datetime | None = Field(
        description="When it was deleted: only set on `GET .../tasks?deleted=true`, null everywhere else."
    )
    recurrence: RecurrenceOut | None = Field(description="The rule as stored (normalised); null: a one-off task.")
    reminders: list[dict[str, str]] = Field(
        description='Each `{"before": duration}` or `{"at": timestamp}`.',
        json_schema_extra={"items": {"oneOf": [ReminderBefore.model_json_schema(), ReminderAt.model_json_schema()]}},
    )
    series_id: int | None = Field(description="The series' first task, on every occurrence; null: not recurring.")
    previous_id: int | None = Field(description="The occurrence whose completion created this one.")

    @staticmethod
    def fields_of(task: Task) -> dict[str, Any]:
        return {
            "id": task.id,
            "title": task.title,
            "description": task.description,
            "completed": task.completed,
            "completed_at": task.completed_at,
            "priority": task.priority.label,
            "tags": task.tags,
            "due_at": task.due_at,
            "created_at": task.created_at,
            "updated_at": task.updated_at,
            "version": task.version,
            "list_id": task.list_id,
            "parent_id": task.parent_id,
            "position": task.position,
            "deleted_at": task.deleted_at,
            "recurrence": None
            if task.recurrence is None
            else {"rule": task.recurrence.rule, "timezone": task.recurrence.timezone, "from": task.recurrence.from_},
            "reminders": [reminder_fields(item) for item in task.reminders],
            "series_id": task.series_id or (task.id if task.recurrence is not None else None),
            "previous_id": task.previous_id,
        }

    @classmethod
    def of(cls, task: Task) -> TaskOut:
        return cls.model_validate(cls.fields_of(task))


class PageMeta(Output):
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    limit: int
    total: int | None = Field(default=None, description="Only with `include_total=true`.")
    sync_token: str | None = Field(
        default=None,
        description="On the first page only: follow `GET .../changes?since=<sync_token>` from here to "
        "see every change made after this page was read (null on later pages).",
        examples=["1042"],
    )


class TaskPageOut(Output):
    data: list[TaskOut]
    meta: PageMeta

    @classmethod
    def of(
        cls,
        tasks: Sequence[Task],
        *,
        next_cursor: str | None,
        limit: int,
        total: int | None,
        sync_position: int | None = None,
    ) -> TaskPageOut:
        """One validation for the whole page."""
        sync_token = None if sync_position is None else str(sync_position)
        meta = {"next_cursor": next_cursor, "limit": limit, "total": total, "sync_token": sync_token}
        return cls.model_validate({"data": [TaskOut.fields_of(task) for task in tasks], "meta": meta})


class _Placement(StrictInput):
    """`before_id` or `after_id` (a sibling to stand next to), or neither (the end); never both."""

    model_config = ConfigDict(json_schema_extra={"not": {"required": ["before_id", "after_id"]}})

    before_id: OmittableId = Field(default=None, description="Stand just before this sibling.")
    after_id: OmittableId = Field(default=None, description="Stand just after this sibling.")

    @model_validator(mode="after")
    def _one_neighbour(self) -> Self:
        if self.before_id is not None and self.after_id is not None:
            raise ValueError("send before_id or after_id, not both")
        return self


class TaskMove(_Placement):
    """Where the task goes; what is left out stays as it is. A sibling named by `before_id` or
    `after_id` brings its list and parent; with neither, the task goes to the end."""

    list_id: OmittableId = Field(
        default=None, description="Another list: the task goes to its top level, with its subtasks.", examples=[7]
    )
    parent_id: Id | None = Field(
        default=None,
        description="The task to become a subtask of; `null`: the top level. Left out: unchanged.",
        json_schema_extra=_no_default,
    )


class ListMove(_Placement):
    """Where the list goes among your lists: next to another, or last."""


# Lists ---------------------------------------------------------------------------------------

ListName = Annotated[str, Field(pattern=trimmed_text(MAX_LIST_NAME_CHARS), examples=["Groceries"])]
Color = Annotated[
    str,
    Field(
        pattern=rf"^(?:{'|'.join(PALETTE)}|#[0-9a-fA-F]{{6}})$",
        description=f"One of {', '.join(PALETTE)}, or `#rrggbb`.",
        examples=["green"],
    ),
]


class ListCreate(StrictInput):
    name: ListName
    color: Color | None = None


class ListUpdate(StrictInput):
    """PATCH: only the fields sent change; `null` clears the colour (a name cannot be null)."""

    name: ListName | SkipJsonSchema[None] = None
    color: Color | None = Field(default=None, description="`null` clears it.", json_schema_extra=_no_default)


class ListOut(Output):
    id: int = Field(examples=[7])
    name: str = Field(examples=["Groceries"])
    color: str | None = Field(examples=["green"])
    position: str = Field(description="Its place among your lists (compare byte by byte).", examples=["a1"])
    is_inbox: bool = Field(description="Your Inbox: where tasks without a list go. It cannot be deleted.")
    open_count: int = Field(description="Its tasks not yet completed, subtasks included.", examples=[3])
    total_count: int = Field(description="All its tasks, subtasks included.", examples=[5])
    created_at: datetime
    updated_at: datetime
    version: int = Field(
        description="Increments when the list changes (not when its tasks do). Its ETag is "
        '`"version.open_count.total_count"`; If-Match compares the version.'
    )

    @staticmethod
    def fields_of(task_list: TaskList) -> dict[str, Any]:
        return {
            "id": task_list.id,
            "name": task_list.name,
            "color": task_list.color,
            "position": task_list.position,
            "is_inbox": task_list.is_inbox,
            "open_count": task_list.open_count,
            "total_count": task_list.total_count,
            "created_at": task_list.created_at,
            "updated_at": task_list.updated_at,
            "version": task_list.version,
        }

    @classmethod
    def of(cls, task_list: TaskList) -> ListOut:
        return cls.model_validate(cls.fields_of(task_list))


class ListPageMeta(Output):
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    limit: int
    sync_token: str | None = Field(
        default=None,
        description="On the first page only: follow `GET .../changes?since=<sync_token>` from here to "
        "see every change made after this page was read (null on later pages).",
        examples=["1042"],
    )


class ListPageOut(Output):
    data: list[ListOut]
    meta: ListPageMeta

    @classmethod
    def of(
        cls, lists: Sequence[TaskList], *, next_cursor: str | None, limit: int, sync_position: int | None = None
    ) -> ListPageOut:
        sync_token = None if sync_position is None else str(sync_position)
        meta = {"next_cursor": next_cursor, "limit": limit, "sync_token": sync_token}
        return cls.model_validate({"data": [ListOut.fields_of(item) for item in lists], "meta": meta})


# Bulk changes --------------------------------------------------------------------------------

TaskIds = Annotated[list[Id], Field(min_length=1, max_length=MAX_BULK_TASKS, examples=[[42, 43]])]


class BulkStatusChange(StrictInput):
    """Complete, reopen or delete the tasks (completing or deleting a task also does its subtasks)."""

    op: Literal["complete", "reopen", "delete"]
    task_ids: TaskIds


class BulkMove(StrictInput):
    """Move the tasks, with their subtasks, to the end of a list's top level."""

    op: Literal["move"]
    task_ids: TaskIds
    list_id: Id


class BulkUpdate(StrictInput):
    """Set what is sent on every task: `add_tags` / `remove_tags` change tags without replacing
    them; `due_at: null` clears the due date; `list_id` moves them as `move` does."""

    op: Literal["update"]
    task_ids: TaskIds
    priority: Annotated[PriorityLabel | SkipJsonSchema[None], NotNull] = None
    add_tags: Tags = Field(default_factory=list)
    remove_tags: Tags = Field(default_factory=list)
    due_at: DueAt | None = Field(default=None, description="`null` clears it.", json_schema_extra=_no_default)
    list_id: OmittableId = None


BulkOperationIn = Annotated[BulkStatusChange | BulkMove | BulkUpdate, Field(discriminator="op")]


class BulkRequest(StrictInput):
    operations: list[BulkOperationIn] = Field(
        min_length=1,
        max_length=MAX_BULK_TASKS,
        description=f"Applied in order; together they name at most {MAX_BULK_TASKS} tasks (422 `too_many_tasks`).",
        examples=[[{"op": "complete", "task_ids": [42, 43]}, {"op": "move", "task_ids": [44], "list_id": 7}]],
    )
    atomic: bool = Field(
        default=True,
        description="True: nothing is written unless every task's result is `ok` (else 422 `bulk_not_applied`). "
        "False: what can be applied is, and the results say which (422 `bulk_not_applied` when no task can be).",
    )


class BulkResultOut(Output):
    task_id: int = Field(examples=[42])
    op: BulkOp
    code: str = Field(
        description="`ok`, or the code the single-task call would answer with (e.g. `task_not_found`).",
        examples=["ok"],
    )
    message: str | None = Field(default=None, examples=[None])


class BulkOut(Output):
    applied: bool = Field(
        description="Always true in a 200: the change was applied (a task whose result is not `ok` was left as it was)."
    )
    results: list[BulkResultOut] = Field(description="One per task named, in the order of the operations.")

    @staticmethod
    def fields_of(outcome: BulkOutcome) -> dict[str, Any]:
        results = [
            {"task_id": result.task_id, "op": result.op, "code": result.code, "message": result.message}
            for result in outcome.results
        ]
        return {"applied": outcome.applied, "results": results}

    @classmethod
    def of(cls, outcome: BulkOutcome) -> BulkOut:
        return cls.model_validate(cls.fields_of(outcome))


def event_data(subject: Task | TaskList) -> dict[str, Any]:
    """An object in the change feed exactly as the API returns it (the composition root hands
    this to the outbox, which cannot know the HTTP representation). The fields as the models take
    them, without a model: the outbox's JSON encoder writes them as the API does (UTC as `Z`),
    and test_change_feed.py compares an event's data with the GET of the same object."""
    return TaskOut.fields_of(subject) if isinstance(subject, Task) else ListOut.fields_of(subject)


# Reminders -----------------------------------------------------------------------------------


class SnoozeRequest(StrictInput):
    duration: Duration = Field(description="Fire again this long from now.", examples=["PT10M"])


class ScheduledReminderOut(Output):
    id: int = Field(description="Snooze it with `POST .../tasks/{task_id}/reminders/{id}/snooze`.", examples=[9])
    task_id: int = Field(examples=[42])
    index: int = Field(description="Its place in the task's `reminders`.", examples=[0])
    fire_at: datetime
    snoozed: bool

    @staticmethod
    def fields_of(reminder: ScheduledReminder) -> dict[str, Any]:
        return {
            "id": reminder.id,
            "task_id": reminder.task_id,
            "index": reminder.index,
            "fire_at": reminder.fire_at,
            "snoozed": reminder.snoozed,
        }

    @classmethod
    def of(cls, reminder: ScheduledReminder) -> ScheduledReminderOut:
        return cls.model_validate(cls.fields_of(reminder))


class ReminderPageMeta(Output):
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    limit: int


class ReminderPageOut(Output):
    data: list[ScheduledReminderOut]
    meta: ReminderPageMeta
