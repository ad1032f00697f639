"""The statements that page through a user's tasks: filtered, searched, sorted, by keyset.

A listing's statement depends only on the query's shape (which filters, which sort, whether there
is a position), so each shape is compiled once and its values are bound per request. Every sort
has its own index (tables.py) and the position is one row comparison, so page 5,000 costs what
page 1 costs.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, Literal, NamedTuple

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    SmallInteger,
    Text,
    any_,
    bindparam,
    false,
    func,
    literal_column,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY

from todo_api.adapters.sql.engine import Statement
from todo_api.adapters.sql.tables import DUE_LAST_ASC, DUE_LAST_DESC, tasks
from todo_api.domain.tasks import Sort, TaskFilter, TaskQuery

_SORT_COLUMNS: dict[str, ColumnElement[Any]] = {
    "created_at": tasks.c.created_at,
    "updated_at": tasks.c.updated_at,
    "priority": tasks.c.priority,
    "title": func.lower(tasks.c.title),
    "position": tasks.c.position,
}


class _Shape(NamedTuple):
    status: Literal["all", "pending", "completed"]
    priorities: bool
    tags: bool
    search: bool
    due_before: bool
    due_after: bool
    overdue: bool
    list_id: bool
    parent_id: bool
    top_level: bool
    recurring: bool | None

    @classmethod
    def of(cls, task_filter: TaskFilter) -> _Shape:
        return cls(
            task_filter.status,
            bool(task_filter.priorities),
            bool(task_filter.tags),
            bool(task_filter.search),
            task_filter.due_before is not None,
            task_filter.due_after is not None,
            task_filter.overdue,
            task_filter.list_id is not None,
            task_filter.parent_id is not None,
            task_filter.top_level,
            task_filter.recurring,
        )


_After = Literal["none", "value", "no_due_date"]


def _sort_key(sort: Sort) -> ColumnElement[Any]:
    """The indexed expression a sort orders by; `due_at` has no NULLs in it (see tables.py)."""
    if sort.field == "due_at":
        return DUE_LAST_DESC if sort.descending else DUE_LAST_ASC
    return _SORT_COLUMNS[sort.field]


def _order_by(sort: Sort) -> list[ColumnElement[Any]]:
    key = _sort_key(sort)
    return [key.desc(), tasks.c.id.desc()] if sort.descending else [key.asc(), tasks.c.id.asc()]


def _after(sort: Sort, after: _After) -> ColumnElement[bool]:
    """Rows strictly after the position in the sort order: one row comparison, so an index range."""
    key = _sort_key(sort)
    value: ColumnElement[Any]
    if sort.field == "title":
        # The position holds the raw title: PostgreSQL lower-cases both sides, so the comparison
        # uses exactly the function (and collation) the index and ORDER BY use.
        value = func.lower(bindparam("after_value", type_=Text))
    elif after == "no_due_date":
        value = literal_column("'-infinity'::timestamptz" if sort.descending else "'infinity'::timestamptz")
    else:
        value = bindparam("after_value", type_=key.type)
    pair, bound = tuple_(key, tasks.c.id), tuple_(value, bindparam("after_id"))
    return pair < bound if sort.descending else pair > bound


def _conditions(shape: _Shape) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [tasks.c.user_id == bindparam("owner")]
    if shape.status != "all":
        conditions.append(tasks.c.completed.is_(true() if shape.status == "completed" else false()))
    if shape.priorities:
        conditions.append(tasks.c.priority == any_(bindparam("priorities", type_=ARRAY(SmallInteger))))
    if shape.tags:
        conditions.append(tasks.c.tags.contains(bindparam("tags", type_=ARRAY(Text))))
    if shape.search:
        pattern = bindparam("pattern", type_=Text)
        conditions.append(
            or_(tasks.c.title.ilike(pattern, escape="\\"), tasks.c.description.ilike(pattern, escape="\\"))
        )
    timestamp = DateTime(timezone=True)
    if shape.due_before:
        conditions.append(tasks.c.due_at < bindparam("due_before", type_=timestamp))
    if shape.due_after:
        conditions.append(tasks.c.due_at > bindparam("due_after", type_=timestamp))
    if shape.overdue:
        conditions.extend([tasks.c.due_at < bindparam("now", type_=timestamp), tasks.c.completed.is_(false())])
    if shape.list_id:
        conditions.append(tasks.c.list_id == bindparam("list_id", type_=BigInteger))
    if shape.parent_id:
        conditions.append(tasks.c.parent_id == bindparam("parent_id", type_=BigInteger))
    if shape.top_level:
        conditions.append(tasks.c.parent_id.is_(None))
    if shape.recurring is not None:
        rule = tasks.c.recurrence_rule
        conditions.append(rule.is_not(None) if shape.recurring else rule.is_(None))
    return conditions


@lru_cache(maxsize=1024)
def _page_statement(shape: _Shape, sort: Sort, after: _After) -> Statement:
    conditions = _conditions(shape)
    if after != "none":
        conditions.append(_after(sort, after))
    return Statement(select(tasks).where(*conditions).order_by(*_order_by(sort)).limit(bindparam("limit")))


@lru_cache(maxsize=256)
def _count_statement(shape: _Shape) -> Statement:
    return Statement(select(func.count()).select_from(tasks).where(*_conditions(shape)))


def _like_pattern(search: str) -> str:
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filter_values(user_id: str, task_filter: TaskFilter, now: datetime) -> dict[str, Any]:
    return {
        "owner": user_id,
        "priorities": sorted(int(p) for p in task_filter.priorities),
        "tags": list(task_filter.tags),
        "pattern": _like_pattern(task_filter.search) if task_filter.search else None,
        "due_before": task_filter.due_before,
        "due_after": task_filter.due_after,
        "now": now,
        "list_id": task_filter.list_id,
        "parent_id": task_filter.parent_id,
    }


def page_query(user_id: str, query: TaskQuery, now: datetime) -> tuple[Statement, dict[str, Any]]:
    """The statement for one page (one row more than the limit, to tell whether there is a next
    page) and its values. Public so the index tests EXPLAIN exactly what runs."""
    values = _filter_values(user_id, query.filter, now)
    values["limit"] = query.limit + 1
    after: _After = "none"
    if (position := query.after) is not None:
        after = "no_due_date" if query.sort.field == "due_at" and position.value is None else "value"
        values.update(after_value=position.value, after_id=position.id)
    return _page_statement(_Shape.of(query.filter), query.sort, after), values


def count_query(user_id: str, task_filter: TaskFilter, now: datetime) -> tuple[Statement, dict[str, Any]]:
    return _count_statement(_Shape.of(task_filter)), _filter_values(user_id, task_filter, now)


def filter_shape(task_filter: TaskFilter) -> _Shape:
    """The shape of a filter: what a statement over the filtered tasks is cached by."""
    return _Shape.of(task_filter)


def filter_conditions(shape: _Shape) -> list[ColumnElement[bool]]:
    """The WHERE conditions of a filter's shape (values bound by `filter_values`), owner first."""
    return _conditions(shape)


def filter_values(user_id: str, task_filter: TaskFilter, now: datetime) -> dict[str, Any]:
    return _filter_values(user_id, task_filter, now)
