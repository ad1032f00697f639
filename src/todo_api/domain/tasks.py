"""Tasks: the entity, its rules (title, description, tags, completion) and the list query values."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final, Literal

from todo_api.domain.errors import InvalidInput
from todo_api.domain.recurrence import Recurrence, Reminder, check_series

MAX_TITLE_CHARS: Final = 200
MAX_DESCRIPTION_CHARS: Final = 1000
MAX_TAGS: Final = 20
MAX_TAG_CHARS: Final = 50
MAX_SEARCH_CHARS: Final = 200
MAX_PAGE_SIZE: Final = 100
MAX_DEPTH: Final = 4  # a task, its subtasks, theirs, and theirs


class Priority(enum.IntEnum):
    """Ordered, so sorting by priority means none < low < medium < high."""

    NONE = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3

    @property
    def label(self) -> PriorityName:
        return _PRIORITY_NAMES[self]

    @classmethod
    def of(cls, label: str) -> Priority:
        try:
            return cls[label.upper()]
        except KeyError:
            raise InvalidInput(f"Unknown priority {label!r}.", code="invalid_priority", field="priority") from None


PriorityName = Literal["none", "low", "medium", "high"]
_PRIORITY_NAMES: dict[Priority, PriorityName] = {
    Priority.NONE: "none",
    Priority.LOW: "low",
    Priority.MEDIUM: "medium",
    Priority.HIGH: "high",
}


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    user_id: str
    title: str
    description: str | None
    completed: bool
    completed_at: datetime | None
    priority: Priority
    tags: tuple[str, ...]
    due_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int
    list_id: int
    parent_id: int | None
    position: str  # the person's order among its siblings (ordering.py)
    deleted_at: datetime | None = None  # set on a deleted task waiting to be restored
    recurrence: Recurrence | None = None
    reminders: tuple[Reminder, ...] = ()
    series_id: int | None = None
    """The series' first task (recurring tasks); the same on every occurrence."""
    previous_id: int | None = None
    """The occurrence whose completion created this one."""

    def completed_as(self, completed: bool, now: datetime) -> Task:
        if completed == self.completed:
            return self
        return replace(self, completed=completed, completed_at=self.completion(completed, now)[1])

    def completion(self, completed: bool, now: datetime) -> tuple[bool, datetime | None]:
        """`completed` and `completed_at` once marked so: completion keeps its first timestamp;
        reopening clears it."""
        if completed == self.completed:
            return self.completed, self.completed_at
        return completed, now if completed else None


@dataclass(frozen=True, slots=True)
class DeletedTask:
    """A deleted task, restorable for the retention window with what was deleted with it."""

    task: Task
    root_id: int
    """The task whose deletion took this one (itself when it was deleted on its own)."""
    deleted_list_id: int | None
    """The list whose deletion took it, if one did."""


@dataclass(frozen=True, slots=True)
class TaskDraft:
    """The values a client gives a task; normalised and checked on construction."""

    title: str
    description: str | None = None
    priority: Priority = Priority.NONE
    tags: tuple[str, ...] = ()
    due_at: datetime | None = None
    completed: bool = False
    list_id: int | None = None  # None: the person's Inbox (or the parent's list for a subtask)
    parent_id: int | None = None
    recurrence: Recurrence | None = None
    reminders: tuple[Reminder, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "title", normalise_title(self.title))
        object.__setattr__(self, "description", normalise_description(self.description))
        object.__setattr__(self, "tags", normalise_tags(self.tags))
        check_due_at(self.due_at)
        check_series(self.due_at, self.recurrence, self.reminders)

    def created(self, task_id: int, user_id: str, at: datetime, *, list_id: int, position: str) -> Task:
        """The task this draft becomes once stored at `at`, as version 1."""
        return Task(
            id=task_id,
            user_id=user_id,
            title=self.title,
            description=self.description,
            completed=self.completed,
            completed_at=at if self.completed else None,
            priority=self.priority,
            tags=self.tags,
            due_at=self.due_at,
            created_at=at,
            updated_at=at,
            version=1,
            list_id=list_id,
            parent_id=self.parent_id,
            position=position,
            recurrence=self.recurrence,
            reminders=self.reminders,
        )


class Unset(enum.Enum):
    UNSET = "unset"


UNSET: Final = Unset.UNSET


@dataclass(frozen=True, slots=True)
class TaskChanges:
    """A partial update: a field left UNSET keeps its value."""

    title: str | Unset = UNSET
    description: str | Unset | None = UNSET
    priority: Priority | Unset = UNSET
    tags: tuple[str, ...] | Unset = UNSET
    due_at: datetime | Unset | None = UNSET
    completed: bool | Unset = UNSET
    recurrence: Recurrence | Unset | None = UNSET
    """A new rule (its `start` unset: the use case binds it to the due date); None stops the series."""
    reminders: tuple[Reminder, ...] | Unset = UNSET

    @classmethod
    def replacing_with(cls, draft: TaskDraft) -> TaskChanges:
        return cls(
            draft.title,
            draft.description,
            draft.priority,
            draft.tags,
            draft.due_at,
            draft.completed,
            draft.recurrence,
            draft.reminders,
        )

    def applied_to(self, task: Task, now: datetime) -> Task:
        """The task with the changes made, checked; itself when they change nothing. One copy at
        most: a bulk change applies this to every task of its batch."""
        title = task.title if isinstance(self.title, Unset) else normalise_title(self.title)
        description = (
            task.description if isinstance(self.description, Unset) else normalise_description(self.description)
        )
        priority = task.priority if isinstance(self.priority, Unset) else self.priority
        tags = task.tags if isinstance(self.tags, Unset) else normalise_tags(self.tags)
        due_at = task.due_at if isinstance(self.due_at, Unset) else check_due_at(self.due_at)
        recurrence = task.recurrence if isinstance(self.recurrence, Unset) else self.recurrence
        reminders = task.reminders if isinstance(self.reminders, Unset) else self.reminders
        check_series(due_at, recurrence, reminders)
        completed, completed_at = (
            (task.completed, task.completed_at)
            if isinstance(self.completed, Unset)
            else task.completion(self.completed, now)
        )
        values = (title, description, priority, tags, due_at, recurrence, reminders, completed, completed_at)
        if values == (
            task.title,
            task.description,
            task.priority,
            task.tags,
            task.due_at,
            task.recurrence,
            task.reminders,
            task.completed,
            task.completed_at,
        ):
            return task
        return replace(
            task,
            title=title,
            description=description,
            priority=priority,
            tags=tags,
            due_at=due_at,
            recurrence=recurrence,
            reminders=reminders,
            completed=completed,
            completed_at=completed_at,
            updated_at=now,
        )


def normalise_title(raw: str) -> str:
    title = raw.strip()
    if not title:
        raise InvalidInput("A title may not be blank.", code="invalid_title", field="title")
    if len(title) > MAX_TITLE_CHARS:
        raise InvalidInput(f"A title has at most {MAX_TITLE_CHARS} characters.", code="invalid_title", field="title")
    return title


def normalise_description(raw: str | None) -> str | None:
    if raw is None:
        return None
    description = raw.strip()
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise InvalidInput(
            f"A description has at most {MAX_DESCRIPTION_CHARS} characters.",
            code="invalid_description",
            field="description",
        )
    return description or None


def normalise_tag(raw: str) -> str:
    """Lower-case, trimmed, inner white space folded to one space: `  Home  Office ` is `home office`."""
    tag = " ".join(raw.split()).lower()
    if not 1 <= len(tag) <= MAX_TAG_CHARS:
        raise InvalidInput(f"A tag has 1 to {MAX_TAG_CHARS} characters.", code="invalid_tag", field="tags")
    return tag


def normalise_tags(raw: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Normalised, duplicates dropped (first one wins), order kept."""
    tags = tuple(dict.fromkeys(normalise_tag(tag) for tag in raw))
    if len(tags) > MAX_TAGS:
        raise InvalidInput(f"A task has at most {MAX_TAGS} tags.", code="too_many_tags", field="tags")
    return tags


def check_due_at(due_at: datetime | None) -> datetime | None:
    if due_at is not None and due_at.utcoffset() is None:
        raise InvalidInput(
            "`due_at` needs a time zone (e.g. 2026-05-01T17:00:00Z).", code="naive_datetime", field="due_at"
        )
    return due_at


# Listing -------------------------------------------------------------------------------------

SortField = Literal["created_at", "updated_at", "due_at", "priority", "title", "position"]
SORT_FIELDS: Final[tuple[SortField, ...]] = ("created_at", "updated_at", "due_at", "priority", "title", "position")
SORT_ALIASES: Final[dict[str, SortField]] = {"created": "created_at", "due_date": "due_at", "updated": "updated_at"}


@dataclass(frozen=True, slots=True)
class Sort:
    """One field plus the id as tie-breaker, both in the same direction; tasks without `due_at`
    come last whichever way `due_at` is sorted."""

    field: SortField = "created_at"
    descending: bool = True

    @classmethod
    def parse(cls, raw: str) -> Sort:
        descending = raw.startswith("-")
        name = raw.removeprefix("-")
        name = SORT_ALIASES.get(name, name)
        if name not in SORT_FIELDS:
            allowed = ", ".join(SORT_FIELDS)
            raise InvalidInput(f"Sort by one of {allowed}, with `-` for descending.", code="invalid_sort", field="sort")
        field_name: SortField = name
        return cls(field_name, descending)

    def __str__(self) -> str:
        return ("-" if self.descending else "") + self.field


SortValue = datetime | int | str | None


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ended, in sort order: the last task's sort value and id (keyset pagination)."""

    value: SortValue
    id: int


def sort_value(task: Task, sort_field: SortField) -> SortValue:
    match sort_field:
        case "priority":
            return int(task.priority)
        case "title":
            return task.title  # compared case-insensitively by whoever stores the tasks
        case "position":
            return task.position  # compared byte by byte
        case "created_at" | "updated_at" | "due_at":
            value: datetime | None = getattr(task, sort_field)
            return value


@dataclass(frozen=True, slots=True)
class TaskFilter:
    status: Literal["all", "pending", "completed"] = "all"
    priorities: frozenset[Priority] = frozenset()
    tags: tuple[str, ...] = ()
    search: str | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None
    overdue: bool = False
    list_id: int | None = None
    parent_id: int | None = None  # the subtasks of this task
    top_level: bool = False  # only tasks without a parent (`parent_id=none`)
    recurring: bool | None = None  # only tasks of a series (True) or only one-off tasks (False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", tuple(dict.fromkeys(normalise_tag(tag) for tag in self.tags)))
        if self.top_level and self.parent_id is not None:
            raise InvalidInput(
                "`parent_id` is either `none` or one task's id.", code="invalid_parent", field="parent_id"
            )
        search = (self.search or "").strip()
        if len(search) > MAX_SEARCH_CHARS:
            raise InvalidInput(f"A search has at most {MAX_SEARCH_CHARS} characters.", code="invalid_search", field="q")
        object.__setattr__(self, "search", search or None)
        check_due_at(self.due_before)
        check_due_at(self.due_after)


@dataclass(frozen=True, slots=True)
class TaskQuery:
    filter: TaskFilter = field(default_factory=TaskFilter)
    sort: Sort = field(default_factory=Sort)
    limit: int = 20
    after: Position | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_PAGE_SIZE:
            raise InvalidInput(f"`limit` is between 1 and {MAX_PAGE_SIZE}.", code="invalid_limit", field="limit")
        in_one_group = self.filter.parent_id is not None or (self.filter.list_id is not None and self.filter.top_level)
        if self.sort.field == "position" and not in_one_group:
            # Keys order siblings only: across lists or levels they interleave meaninglessly.
            raise InvalidInput(
                "`sort=position` orders one group of siblings: send `list_id` with `parent_id=none`, "
                "or a task's id as `parent_id`.",
                code="position_needs_group",
            )


@dataclass(frozen=True, slots=True)
class TaskPage:
    tasks: list[Task]
    next_position: Position | None
    total: int | None = None
    sync_position: int | None = None
    """On a first page: the change feed's position read before the page, so following the
    feed from it misses nothing the page does not show (an event may repeat what it shows)."""
