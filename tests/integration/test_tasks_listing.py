"""GET /api/me/tasks over HTTP on a real PostgreSQL: filters, search, sorting, cursors, Link, totals.

Thirty tasks with varied priority, tags, due dates, completion, titles and descriptions are created
through the API; every listing is compared with what a small Python model of the contract expects
from that same fixture (`expected_tasks`, `expected_order`). Ties are deliberate: titles equal but
for case, shared due dates and priorities, and creation/update instants set equal in threes (in the
database directly: requests a microsecond apart never tie on their own).
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests.integration.tasks_support import User, assert_problem, create_task, sign_up, tasks_url

Task = dict[str, Any]
Params = list[tuple[str, str]]

LIST = tasks_url()
PAST = "2020-01-01T09:00:00Z"
LATER_PAST = "2021-06-15T00:00:00Z"
FUTURE = "2099-01-01T00:00:00Z"
LATER_FUTURE = "2099-06-01T00:00:00Z"

# Letters and digits only: lower(title) then sorts the same under the C and the en_US collations.
TITLES = [
    "Alpha", "alpha", "ALPHA", "Bravo", "bravo", "Report", "quarterlyReport", "REPORTS2", "Charlie", "delta",
    "Delta", "Echo", "foxtrot", "Golf", "golf", "hotel", "India", "Juliet", "kilo", "Kilo",
    "Lima", "mike", "November", "oscar", "Oscar", "papa", "Quebec", "romeo", "Sierra", "sierra",
]  # fmt: skip
DESCRIPTIONS = [None, "Write the quarterly report", "buy milk and eggs", "REPORTING line to Sam", "call the plumber"]
PRIORITIES = ["high", "none", "low", "medium"]
TAGS: list[list[str]] = [[], ["work"], ["Work", "urgent"], ["home"], ["home", "urgent"], ["work", "home"], ["errand"]]
DUES = [None, PAST, FUTURE, LATER_PAST, None, LATER_FUTURE, PAST, FUTURE, LATER_PAST]
BASE = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

SORTS = [f"{sign}{name}" for name in ("created_at", "updated_at", "due_at", "priority", "title") for sign in ("", "-")]
CANONICAL = {"created": "created_at", "due_date": "due_at"}
PRIORITY_RANK = {"none": 0, "low": 1, "medium": 2, "high": 3}


@dataclass(frozen=True)
class Listing:
    user: User
    tasks: list[Task]


def payload(i: int) -> dict[str, Any]:
    """Task i of the fixture: the cycles have different lengths, so the fields combine variously."""
    return {
        "title": TITLES[i],
        "description": DESCRIPTIONS[i % len(DESCRIPTIONS)],
        "priority": PRIORITIES[i % len(PRIORITIES)],
        "tags": TAGS[i % len(TAGS)],
        "due_at": DUES[i % len(DUES)],
        "completed": i % 11 in (2, 5, 9),
    }


async def list_all(client: httpx.AsyncClient, user: User, params: Params | None = None) -> list[Task]:
    response = await client.get(LIST, params=[*(params or []), ("limit", "100")], headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["meta"]["next_cursor"] is None
    tasks: list[Task] = body["data"]
    return tasks


@pytest.fixture
async def listing(client: httpx.AsyncClient, db: asyncpg.Connection) -> Listing:
    user = await sign_up(client)
    created = [await create_task(client, user, **payload(i)) for i in range(len(TITLES))]
    # Creation and update instants in groups of three equal values, the groups not in id order.
    await db.executemany(
        "UPDATE tasks SET created_at = $2, updated_at = $3 WHERE id = $1",
        [
            (task["id"], BASE + timedelta(minutes=(i * 7) % 10), BASE + timedelta(days=1, minutes=(i * 3) % 10))
            for i, task in enumerate(created)
        ],
    )
    tasks = await list_all(client, user)
    assert len(tasks) == len(TITLES)
    return Listing(user, tasks)


# The contract as a Python model ------------------------------------------------------------------


def instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def expected_tasks(tasks: Sequence[Task], params: Params, now: datetime | None = None) -> list[Task]:
    """The tasks the contract says a listing with these filters returns (in no particular order)."""
    now = now or datetime.now(UTC)
    status = dict(params).get("status", "all")
    priorities = {value for name, value in params if name == "priority"}
    tags = {" ".join(value.split()).lower() for name, value in params if name == "tag"}
    search = (dict(params).get("q") or "").strip().lower()
    due_before, due_after = instant(dict(params).get("due_before")), instant(dict(params).get("due_after"))
    overdue = dict(params).get("overdue") == "true"

    def matches(task: Task) -> bool:
        due = instant(task["due_at"])
        return (
            (status == "all" or task["completed"] == (status == "completed"))
            and (not priorities or task["priority"] in priorities)
            and tags <= set(task["tags"])
            and (not search or search in task["title"].lower() or search in (task["description"] or "").lower())
            and (due_before is None or (due is not None and due < due_before))
            and (due_after is None or (due is not None and due > due_after))
            and (not overdue or (due is not None and due < now and not task["completed"]))
        )

    return [task for task in tasks if matches(task)]


def sort_value(task: Task, field: str) -> Any:
    if field == "title":
        return task["title"].lower()
    if field == "priority":
        return PRIORITY_RANK[task["priority"]]
    return instant(task[field])


def expected_order(tasks: Sequence[Task], sort: str) -> list[int]:
    """Ids in the order the contract gives: the field, then id, both one way; no due date last either way."""
    descending = sort.startswith("-")
    field = sort.removeprefix("-")
    field = CANONICAL.get(field, field)
    valued = [task for task in tasks if sort_value(task, field) is not None]
    unvalued = [task for task in tasks if sort_value(task, field) is None]
    valued.sort(key=lambda task: (sort_value(task, field), task["id"]), reverse=descending)
    unvalued.sort(key=lambda task: task["id"], reverse=descending)
    return [task["id"] for task in valued + unvalued]


def ids(tasks: Sequence[Task]) -> list[int]:
    return [task["id"] for task in tasks]


# Paging helpers -----------------------------------------------------------------------------------


async def get_page(client: httpx.AsyncClient, user: User, params: Params) -> httpx.Response:
    response = await client.get(LIST, params=tuple(params), headers=user.headers)
    assert response.status_code == 200, response.text
    return response


async def walk(client: httpx.AsyncClient, user: User, params: Params, limit: int = 3) -> list[list[Task]]:
    """Every page, following meta.next_cursor until it is null."""
    pages: list[list[Task]] = []
    cursor: str | None = None
    for _ in range(100):
        query = [*params, ("limit", str(limit)), *([("cursor", cursor)] if cursor else [])]
        body = (await get_page(client, user, query)).json()
        assert body["meta"]["limit"] == limit
        pages.append(body["data"])
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            return pages
    raise AssertionError("the pages never ended")


def next_link(response: httpx.Response) -> str | None:
    header = response.headers.get("link")
    if header is None:
        return None
    match = re.fullmatch(r'<([^>]+)>; rel="next"', header)
    assert match, header
    return match.group(1)


async def first_cursor(client: httpx.AsyncClient, user: User, sort: str) -> str:
    body = (await get_page(client, user, [("sort", sort), ("limit", "3")])).json()
    cursor: str = body["meta"]["next_cursor"]
    assert cursor
    return cursor


# Filters ------------------------------------------------------------------------------------------

FILTERS: dict[str, Params] = {
    "status=all": [("status", "all")],
    "status=pending": [("status", "pending")],
    "status=completed": [("status", "completed")],
    "priority=high": [("priority", "high")],
    "priority=low,medium": [("priority", "low"), ("priority", "medium")],
    "priority=none": [("priority", "none")],
    "tag=work": [("tag", "work")],
    "tag=work+urgent": [("tag", "work"), ("tag", "urgent")],
    "tag=upper-case": [("tag", "  HOME ")],
    "tag=unknown": [("tag", "nobody-uses-this")],
    "q=report": [("q", "report")],
    "q=milk (description only)": [("q", "milk")],
    "q=alpha (title only)": [("q", "alpha")],
    "due_before": [("due_before", FUTURE)],
    "due_after": [("due_after", LATER_PAST)],
    "due_after+due_before": [("due_after", PAST), ("due_before", LATER_FUTURE)],
    "overdue": [("overdue", "true")],
    "overdue=false": [("overdue", "false")],
    "pending+high+work": [("status", "pending"), ("priority", "high"), ("tag", "work")],
    "completed+q=report": [("status", "completed"), ("q", "report")],
    "overdue+priority=high,low": [("overdue", "true"), ("priority", "high"), ("priority", "low")],
    "tag=home+due_after": [("tag", "home"), ("due_after", PAST)],
    "q+tag+priority+status": [("q", "PA"), ("tag", "urgent"), ("priority", "none"), ("status", "pending")],
    "pending+due_before": [("status", "pending"), ("due_before", "2030-01-01T00:00:00+02:00")],
}
# Cases whose expected set is deliberately all or nothing; every other one must split the listing.
UNDISCRIMINATING = {"status=all", "overdue=false", "tag=unknown"}


@pytest.mark.parametrize("params", FILTERS.values(), ids=FILTERS.keys())
async def test_filter_returns_exactly_the_matching_tasks_newest_first(
    client: httpx.AsyncClient, listing: Listing, params: Params
) -> None:
    expected = expected_tasks(listing.tasks, params)
    listed = await list_all(client, listing.user, params)
    assert ids(listed) == expected_order(expected, "-created_at")


@pytest.mark.parametrize(("name", "params"), FILTERS.items(), ids=FILTERS.keys())
async def test_every_filter_case_splits_the_fixture(listing: Listing, name: str, params: Params) -> None:
    """Guards the test above: a case that matched everything (or nothing) would prove little."""
    expected = expected_tasks(listing.tasks, params)
    if name not in UNDISCRIMINATING:
        assert 0 < len(expected) < len(listing.tasks)


async def test_due_before_excludes_a_task_due_exactly_then(client: httpx.AsyncClient, listing: Listing) -> None:
    due_at_future = {task["id"] for task in listing.tasks if instant(task["due_at"]) == instant(FUTURE)}
    assert due_at_future
    listed = await list_all(client, listing.user, [("due_before", FUTURE)])
    assert not due_at_future & set(ids(listed))
    assert listed


async def test_due_after_excludes_a_task_due_exactly_then(client: httpx.AsyncClient, listing: Listing) -> None:
    due_at_past = {task["id"] for task in listing.tasks if instant(task["due_at"]) == instant(PAST)}
    assert due_at_past
    listed = await list_all(client, listing.user, [("due_after", PAST)])
    assert not due_at_past & set(ids(listed))
    assert listed


async def test_overdue_is_past_due_and_not_completed(client: httpx.AsyncClient, listing: Listing) -> None:
    listed = await list_all(client, listing.user, [("overdue", "true")])
    now = datetime.now(UTC)
    assert listed
    assert all(not task["completed"] and (instant(task["due_at"]) or now) < now for task in listed)
    completed_past_due = [t for t in listing.tasks if t["completed"] and (instant(t["due_at"]) or now) < now]
    assert completed_past_due
    assert not set(ids(completed_past_due)) & set(ids(listed))


async def test_tasks_without_a_due_date_match_no_due_filter(client: httpx.AsyncClient, listing: Listing) -> None:
    undated = {task["id"] for task in listing.tasks if task["due_at"] is None}
    for params in ([("due_before", LATER_FUTURE)], [("due_after", "1999-01-01T00:00:00Z")], [("overdue", "true")]):
        assert not undated & set(ids(await list_all(client, listing.user, params)))


async def test_tag_filter_needs_every_tag(client: httpx.AsyncClient, listing: Listing) -> None:
    listed = await list_all(client, listing.user, [("tag", "work"), ("tag", "urgent")])
    assert listed
    assert all({"work", "urgent"} <= set(task["tags"]) for task in listed)
    only_work = [t for t in listing.tasks if "work" in t["tags"] and "urgent" not in t["tags"]]
    assert only_work
    assert not set(ids(only_work)) & set(ids(listed))


async def test_another_users_tasks_never_appear(client: httpx.AsyncClient, listing: Listing) -> None:
    other = await sign_up(client)
    await create_task(client, other, title="Alpha", description="report", priority="high", tags=["work"])
    assert ids(await list_all(client, listing.user)) == expected_order(listing.tasks, "-created_at")
    assert len(await list_all(client, other)) == 1


async def test_a_user_without_tasks_gets_an_empty_last_page(client: httpx.AsyncClient) -> None:
    user = await sign_up(client)
    response = await get_page(client, user, [])
    body = response.json()
    assert body["data"] == []
    assert body["meta"]["next_cursor"] is None
    assert "link" not in response.headers


# Search -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["report", "REPORT", "RePoRt", "  report  "])
async def test_search_is_case_insensitive_in_title_and_description(
    client: httpx.AsyncClient, listing: Listing, query: str
) -> None:
    listed = await list_all(client, listing.user, [("q", query)])
    by_title = {t["id"] for t in listing.tasks if "report" in t["title"].lower()}
    by_description = {t["id"] for t in listing.tasks if "report" in (t["description"] or "").lower()}
    assert by_title - by_description
    assert by_description - by_title
    assert set(ids(listed)) == by_title | by_description


LITERAL_TITLES = ["100% done", "1000 done", "snake_case", "snakeXcase", "back\\slash", "backslash", "plain"]
LITERAL_SEARCHES = {
    "%": ["100% done", "50 off"],
    "0%": ["100% done", "50 off"],
    "_": ["snake_case", "under_score note"],
    "e_c": ["snake_case"],
    "\\": ["back\\slash"],
    "k\\s": ["back\\slash"],
    "%_%": [],
}


@pytest.mark.parametrize(("query", "expected"), LITERAL_SEARCHES.items(), ids=LITERAL_SEARCHES.keys())
async def test_search_treats_like_wildcards_and_backslash_literally(
    client: httpx.AsyncClient, query: str, expected: list[str]
) -> None:
    user = await sign_up(client)
    for title in LITERAL_TITLES:
        await create_task(client, user, title=title)
    await create_task(client, user, title="50 off", description="save 50% today")
    await create_task(client, user, title="under_score note", description="nothing special")
    await create_task(client, user, title="other", description="contains an underscore word")
    listed = await list_all(client, user, [("q", query)])
    assert sorted(task["title"] for task in listed) == sorted(expected)


# Sorting ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sort", SORTS)
async def test_sort_orders_by_the_field_then_id_with_undated_tasks_last(
    client: httpx.AsyncClient, listing: Listing, sort: str
) -> None:
    listed = await list_all(client, listing.user, [("sort", sort)])
    assert ids(listed) == expected_order(listing.tasks, sort)


@pytest.mark.parametrize("sort", ["created_at", "updated_at", "due_at", "priority", "title"])
async def test_the_fixture_has_ties_for_every_sort_field(listing: Listing, sort: str) -> None:
    """Guards the sort tests: without equal values the id tie-breaker would never be exercised."""
    values = [sort_value(task, sort) for task in listing.tasks if sort_value(task, sort) is not None]
    assert len(set(values)) < len(values)


async def test_default_sort_is_newest_created_first(client: httpx.AsyncClient, listing: Listing) -> None:
    assert ids(await list_all(client, listing.user)) == expected_order(listing.tasks, "-created_at")


async def test_undated_tasks_come_last_in_both_directions(client: httpx.AsyncClient, listing: Listing) -> None:
    undated = sum(task["due_at"] is None for task in listing.tasks)
    for sort in ("due_at", "-due_at"):
        listed = await list_all(client, listing.user, [("sort", sort)])
        assert [task["due_at"] for task in listed[-undated:]] == [None] * undated
        assert None not in [task["due_at"] for task in listed[:-undated]]


ALIASES = {"created": "created_at", "-created": "-created_at", "due_date": "due_at", "-due_date": "-due_at"}


@pytest.mark.parametrize(("alias", "canonical"), ALIASES.items(), ids=ALIASES.keys())
async def test_phase_two_alias_gives_the_same_order_as_its_canonical_name(
    client: httpx.AsyncClient, listing: Listing, alias: str, canonical: str
) -> None:
    by_alias = await list_all(client, listing.user, [("sort", alias)])
    by_name = await list_all(client, listing.user, [("sort", canonical)])
    assert ids(by_alias) == ids(by_name) == expected_order(listing.tasks, canonical)


async def test_a_cursor_issued_for_an_alias_works_with_its_canonical_name(
    client: httpx.AsyncClient, listing: Listing
) -> None:
    cursor = await first_cursor(client, listing.user, "-due_date")
    response = await get_page(client, listing.user, [("sort", "-due_at"), ("limit", "3"), ("cursor", cursor)])
    assert ids(response.json()["data"]) == expected_order(listing.tasks, "-due_at")[3:6]


@pytest.mark.parametrize("sort", ["id", "status", "--title", "TITLE", "title,priority", "+title", ""])
async def test_unknown_sort_is_422(client: httpx.AsyncClient, listing: Listing, sort: str) -> None:
    response = await client.get(LIST, params={"sort": sort}, headers=listing.user.headers)
    body = assert_problem(response, 422, "validation_failed")
    assert any(error["loc"] == ["query", "sort"] for error in body["errors"])


# Limit --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["0", "101", "-1", "1000", "ten"])
async def test_limit_outside_1_to_100_is_422_not_clamped(
    client: httpx.AsyncClient, listing: Listing, limit: str
) -> None:
    response = await client.get(LIST, params={"limit": limit}, headers=listing.user.headers)
    body = assert_problem(response, 422, "validation_failed")
    assert any(error["loc"] == ["query", "limit"] for error in body["errors"])


async def test_limit_defaults_to_20(client: httpx.AsyncClient, listing: Listing) -> None:
    body = (await get_page(client, listing.user, [])).json()
    assert body["meta"]["limit"] == 20
    assert ids(body["data"]) == expected_order(listing.tasks, "-created_at")[:20]


@pytest.mark.parametrize("limit", [1, 100])
async def test_limit_at_either_bound_is_accepted(client: httpx.AsyncClient, listing: Listing, limit: int) -> None:
    body = (await get_page(client, listing.user, [("limit", str(limit))])).json()
    assert body["meta"]["limit"] == limit
    assert ids(body["data"]) == expected_order(listing.tasks, "-created_at")[:limit]


# Pagination completeness -------------------------------------------------------------------------


@pytest.mark.parametrize("sort", SORTS)
async def test_walking_every_page_yields_each_task_once_in_sort_order(
    client: httpx.AsyncClient, listing: Listing, sort: str
) -> None:
    pages = await walk(client, listing.user, [("sort", sort)])
    walked = [task["id"] for page in pages for task in page]
    assert len(walked) == len(set(walked))
    assert walked == expected_order(listing.tasks, sort)
    assert all(len(page) == 3 for page in pages[:-1])


WALK_FILTERS: dict[str, Params] = {
    "status=pending": [("status", "pending")],
    "tag=home": [("tag", "home")],
    "priority=high,none": [("priority", "high"), ("priority", "none")],
    "q=report+completed": [("q", "report"), ("status", "completed")],
    "due_after": [("due_after", PAST)],
}


@pytest.mark.parametrize("sort", SORTS)
@pytest.mark.parametrize("params", WALK_FILTERS.values(), ids=WALK_FILTERS.keys())
async def test_walking_a_filtered_listing_yields_each_match_once_in_sort_order(
    client: httpx.AsyncClient, listing: Listing, params: Params, sort: str
) -> None:
    pages = await walk(client, listing.user, [*params, ("sort", sort)], limit=2)
    walked = [task["id"] for page in pages for task in page]
    assert len(walked) == len(set(walked))
    assert walked == expected_order(expected_tasks(listing.tasks, params), sort)


async def test_a_page_that_ends_exactly_at_the_last_task_has_no_next_cursor(
    client: httpx.AsyncClient, listing: Listing
) -> None:
    pages = await walk(client, listing.user, [], limit=10)
    assert [len(page) for page in pages] == [10, 10, 10]


# Concurrent inserts while paging -----------------------------------------------------------------


@pytest.fixture
async def other_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A second client of the same application: the user's other tab, adding tasks meanwhile."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http


async def walk_while_inserting(
    client: httpx.AsyncClient, other: httpx.AsyncClient, user: User, sort: str
) -> tuple[list[int], list[int]]:
    """Walk 3 per page; from the second page on, the other client adds 3 tasks while each page is
    fetched (page 1 alone, so it is the listing as the reader first saw it). Returns (walked, added)."""
    first = (await get_page(client, user, [("sort", sort), ("limit", "3")])).json()
    walked: list[int] = ids(first["data"])
    added: list[Task] = []
    cursor: str | None = first["meta"]["next_cursor"]
    for round_ in range(100):
        if cursor is None:
            return walked, ids(added)
        response, *new = await asyncio.gather(
            get_page(client, user, [("sort", sort), ("limit", "3"), ("cursor", cursor)]),
            *(create_task(other, user, title=f"{prefix}{round_}") for prefix in ("aaa", "Mmm", "zzz")),
        )
        added.extend(new)
        body = response.json()
        walked.extend(ids(body["data"]))
        cursor = body["meta"]["next_cursor"]
    raise AssertionError("the pages never ended")


async def test_tasks_added_while_paging_newest_first_neither_duplicate_nor_push_out_a_row(
    client: httpx.AsyncClient, other_client: httpx.AsyncClient, listing: Listing
) -> None:
    walked, added = await walk_while_inserting(client, other_client, listing.user, "-created_at")
    assert len(walked) == len(set(walked))
    # Every task added is newer than the page already read, so it belongs before it: none shows up.
    assert walked == expected_order(listing.tasks, "-created_at")
    assert len(added) == 27  # three while each of pages 2 to 10 was read


async def test_tasks_added_while_paging_by_title_neither_duplicate_nor_push_out_a_row(
    client: httpx.AsyncClient, other_client: httpx.AsyncClient, listing: Listing
) -> None:
    walked, added = await walk_while_inserting(client, other_client, listing.user, "title")
    assert len(walked) == len(set(walked))
    assert set(ids(listing.tasks)) <= set(walked)
    assert set(walked) <= set(ids(listing.tasks)) | set(added)
    # Whatever was added is seen only if it landed after the page being read; the order holds throughout.
    everything = await list_all(client, listing.user, [("sort", "title")])
    position = {task_id: index for index, task_id in enumerate(ids(everything))}
    assert [position[task_id] for task_id in walked] == sorted(position[task_id] for task_id in walked)
    assert set(walked) & set(added)  # some "zzz" landed ahead of the reader


# Cursors ------------------------------------------------------------------------------------------


def flipped(cursor: str, at: int) -> str:
    """The cursor with one base64url character replaced by another one."""
    replacement = "B" if cursor[at] == "A" else "A"
    return cursor[:at] + replacement + cursor[at + 1 :]


@pytest.mark.parametrize("at", [0, 5, 20, -2], ids=["first", "early", "middle", "second-last"])
async def test_a_cursor_with_a_flipped_character_is_400_invalid_cursor(
    client: httpx.AsyncClient, listing: Listing, at: int
) -> None:
    cursor = await first_cursor(client, listing.user, "-created_at")
    response = await client.get(LIST, params={"cursor": flipped(cursor, at), "limit": 3}, headers=listing.user.headers)
    assert_problem(response, 400, "invalid_cursor")


GARBAGE = {
    "word": "garbage",
    "punctuation": "!!!!****",
    "non-ascii": "☃☃☃☃",
    "random base64": base64.urlsafe_b64encode(bytes(range(40, 88))).decode().rstrip("="),
    "unsigned payload": base64.urlsafe_b64encode(b'["-created_at","2020-01-01T00:00:00+00:00",1]').decode(),
    "one char": "A",
    "bad padding": "abcde",
    "max length": "A" * 512,
}


@pytest.mark.parametrize("cursor", GARBAGE.values(), ids=GARBAGE.keys())
async def test_a_garbage_cursor_is_400_invalid_cursor(client: httpx.AsyncClient, listing: Listing, cursor: str) -> None:
    response = await client.get(LIST, params={"cursor": cursor}, headers=listing.user.headers)
    assert_problem(response, 400, "invalid_cursor")


async def test_a_truncated_cursor_is_400_invalid_cursor(client: httpx.AsyncClient, listing: Listing) -> None:
    cursor = await first_cursor(client, listing.user, "title")
    response = await client.get(LIST, params={"cursor": cursor[:-4], "sort": "title"}, headers=listing.user.headers)
    assert_problem(response, 400, "invalid_cursor")


SORT_SWAPS = [("title", "-title"), ("-created_at", "created_at"), ("due_at", "priority"), ("-updated_at", "title")]


@pytest.mark.parametrize(("issued_for", "used_with"), SORT_SWAPS)
async def test_a_cursor_used_with_another_sort_is_400_invalid_cursor(
    client: httpx.AsyncClient, listing: Listing, issued_for: str, used_with: str
) -> None:
    cursor = await first_cursor(client, listing.user, issued_for)
    response = await client.get(LIST, params={"cursor": cursor, "sort": used_with}, headers=listing.user.headers)
    assert_problem(response, 400, "invalid_cursor")


async def test_a_cursor_is_opaque_url_safe_text(client: httpx.AsyncClient, listing: Listing) -> None:
    cursor = await first_cursor(client, listing.user, "-created_at")
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)


# Link header --------------------------------------------------------------------------------------


async def test_link_header_is_present_iff_there_is_a_next_cursor(client: httpx.AsyncClient, listing: Listing) -> None:
    cursor: str | None = None
    seen_last = False
    for _ in range(20):
        query = [("limit", "7"), *([("cursor", cursor)] if cursor else [])]
        response = await get_page(client, listing.user, query)
        cursor = response.json()["meta"]["next_cursor"]
        assert (next_link(response) is not None) == (cursor is not None)
        if cursor is None:
            seen_last = True
            break
        link = next_link(response)
        assert link is not None
        assert httpx.URL(link).params["cursor"] == cursor
    assert seen_last


async def test_following_the_link_header_walks_every_task_once_with_the_same_filters_and_sort(
    client: httpx.AsyncClient, listing: Listing
) -> None:
    params: Params = [("priority", "high"), ("priority", "none"), ("tag", "home"), ("sort", "-due_at"), ("limit", "2")]
    response = await get_page(client, listing.user, params)
    walked = ids(response.json()["data"])
    while (link := next_link(response)) is not None:
        response = await client.get(link, headers=listing.user.headers)
        assert response.status_code == 200, response.text
        walked.extend(ids(response.json()["data"]))
    expected = expected_order(expected_tasks(listing.tasks, params), "-due_at")
    assert len(expected) > 2
    assert walked == expected


async def test_link_header_targets_the_same_path(client: httpx.AsyncClient, listing: Listing) -> None:
    response = await get_page(client, listing.user, [("limit", "5")])
    link = next_link(response)
    assert link is not None
    assert httpx.URL(link).path == LIST


# Totals -------------------------------------------------------------------------------------------


async def test_include_total_counts_every_match_not_just_the_page(client: httpx.AsyncClient, listing: Listing) -> None:
    params: Params = [("status", "pending"), ("include_total", "true"), ("limit", "3")]
    body = (await get_page(client, listing.user, params)).json()
    assert len(body["data"]) == 3
    assert body["meta"]["total"] == len(expected_tasks(listing.tasks, params)) > 3


async def test_include_total_is_the_same_on_a_later_page(client: httpx.AsyncClient, listing: Listing) -> None:
    params: Params = [("tag", "home"), ("include_total", "true"), ("limit", "2")]
    first = (await get_page(client, listing.user, params)).json()
    second = (await get_page(client, listing.user, [*params, ("cursor", first["meta"]["next_cursor"])])).json()
    assert first["meta"]["total"] == second["meta"]["total"] == len(expected_tasks(listing.tasks, params))


async def test_without_include_total_there_is_no_total(client: httpx.AsyncClient, listing: Listing) -> None:
    for params in ([], [("include_total", "false")]):
        body = (await get_page(client, listing.user, params)).json()
        assert body["meta"].get("total") is None


async def test_include_total_of_nothing_is_zero(client: httpx.AsyncClient, listing: Listing) -> None:
    params: Params = [("tag", "nobody-uses-this"), ("include_total", "true")]
    body = (await get_page(client, listing.user, params)).json()
    assert body["data"] == []
    assert body["meta"]["total"] == 0
