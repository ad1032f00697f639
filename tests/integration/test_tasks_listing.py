"""GET /api/me/tasks over HTTP on a real PostgreSQL: parameters, cursors, Link, limits, totals.

Which tasks a filter keeps and in which order a sort puts them is the repository contract's
(test_repository_contract.py, on the fake and the SQL alike). Here: that every query parameter
reaches it, with explicit expectations over five tasks; and that paging over HTTP (signed cursors
carrying each sort's value, the Link header, totals, tasks added meanwhile) yields the listing
unpaged, over thirty tasks with ties on every sort field: titles equal but for case, shared due
dates and priorities, and creation/update instants set equal in threes (in the database directly:
requests a microsecond apart never tie on their own).
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

from tests.integration.tasks_support import User, assert_problem, create_task, sign_up, task_url, tasks_url

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


@dataclass(frozen=True)
class Listing:
    user: User
    tasks: list[Task]  # in the default order, newest first


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


def ids(tasks: Sequence[Task]) -> list[int]:
    return [task["id"] for task in tasks]


def titles(tasks: Sequence[Task]) -> str:
    return " ".join(task["title"] for task in tasks)


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


# Every parameter reaches the listing --------------------------------------------------------------


FIVE: list[dict[str, Any]] = [
    {"title": "Alpha", "priority": "high", "tags": ["work"], "due_at": PAST},
    {"title": "bravo", "priority": "low", "tags": ["home", "urgent"], "due_at": FUTURE, "completed": True},
    {"title": "Charlie", "priority": "none"},
    {"title": "Delta", "priority": "medium", "tags": ["work", "Urgent"], "due_at": LATER_FUTURE},
    {"title": "echo", "priority": "high", "tags": ["HOME"], "due_at": LATER_PAST, "completed": True},
]
EDITS = [("Charlie", "call back"), ("Alpha", "the quarterly REPORT")]  # descriptions set afterwards, in this order


@pytest.fixture
async def five(client: httpx.AsyncClient) -> User:
    """The five tasks, created in order, then the two edits (so they were updated last)."""
    user = await sign_up(client)
    created = {task["title"]: task["id"] for task in [await create_task(client, user, **fields) for fields in FIVE]}
    for title, description in EDITS:
        response = await client.patch(task_url(created[title]), json={"description": description}, headers=user.headers)
        assert response.status_code == 200, response.text
    return user


EVERYONE = "echo Delta Charlie bravo Alpha"  # newest first, the default order
FILTERS: dict[str, tuple[Params, str]] = {
    "none": ([], EVERYONE),
    "status=all": ([("status", "all")], EVERYONE),
    "status=pending": ([("status", "pending")], "Delta Charlie Alpha"),
    "status=completed": ([("status", "completed")], "echo bravo"),
    "priority=high": ([("priority", "high")], "echo Alpha"),
    "priority=low,medium": ([("priority", "low"), ("priority", "medium")], "Delta bravo"),
    "tag=work": ([("tag", "work")], "Delta Alpha"),
    "tag=work,urgent": ([("tag", "work"), ("tag", "urgent")], "Delta"),
    "tag in capitals and spaces": ([("tag", "  URGENT ")], "Delta bravo"),
    "q in a description": ([("q", "report")], "Alpha"),
    "q in a title, trimmed": ([("q", "  CHAR ")], "Charlie"),
    "due_before with an offset": ([("due_before", "2030-01-01T00:00:00+02:00")], "echo Alpha"),
    "due_after, exclusive": ([("due_after", LATER_PAST)], "Delta bravo"),
    "overdue=true": ([("overdue", "true")], "Alpha"),
    "overdue=false": ([("overdue", "false")], EVERYONE),
    "status+priority+tag": ([("status", "pending"), ("priority", "high"), ("tag", "work")], "Alpha"),
}


@pytest.mark.parametrize(("params", "expected"), FILTERS.values(), ids=FILTERS.keys())
async def test_each_filter_parameter_reaches_the_listing(
    client: httpx.AsyncClient, five: User, params: Params, expected: str
) -> None:
    assert titles(await list_all(client, five, params)) == expected


ORDERS = {
    "created_at": "Alpha bravo Charlie Delta echo",
    "-created_at": "echo Delta Charlie bravo Alpha",
    "updated_at": "bravo Delta echo Charlie Alpha",
    "-updated_at": "Alpha Charlie echo Delta bravo",
    "due_at": "Alpha echo bravo Delta Charlie",
    "-due_at": "Delta bravo echo Alpha Charlie",
    "priority": "Charlie bravo Delta Alpha echo",
    "-priority": "echo Alpha Delta bravo Charlie",
    "title": "Alpha bravo Charlie Delta echo",
    "-title": "echo Delta Charlie bravo Alpha",
}
ALIASES = {"created": "created_at", "-created": "-created_at", "due_date": "due_at", "-due_date": "-due_at"}


@pytest.mark.parametrize("sort", [*ORDERS, *ALIASES])
async def test_each_sort_parameter_reaches_the_listing(client: httpx.AsyncClient, five: User, sort: str) -> None:
    expected = ORDERS[ALIASES.get(sort, sort)]
    assert titles(await list_all(client, five, [("sort", sort)])) == expected


async def test_a_user_without_tasks_gets_an_empty_last_page(client: httpx.AsyncClient) -> None:
    user = await sign_up(client)
    response = await get_page(client, user, [])
    body = response.json()
    assert body["data"] == []
    assert body["meta"]["next_cursor"] is None
    assert "link" not in response.headers


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
    assert ids(body["data"]) == ids(listing.tasks)[:20]


@pytest.mark.parametrize("limit", [1, 100])
async def test_limit_at_either_bound_is_accepted(client: httpx.AsyncClient, listing: Listing, limit: int) -> None:
    body = (await get_page(client, listing.user, [("limit", str(limit))])).json()
    assert body["meta"]["limit"] == limit
    assert ids(body["data"]) == ids(listing.tasks)[:limit]


# Pagination completeness -------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["created_at", "updated_at", "due_at", "priority", "title"])
async def test_the_fixture_has_ties_for_every_sort_field(listing: Listing, field: str) -> None:
    """Guards the paging tests: past tasks with equal values, only the id in the cursor moves on."""
    values = [str(task[field]).lower() for task in listing.tasks if task[field] is not None]
    assert len(set(values)) < len(values)


@pytest.mark.parametrize("sort", SORTS)
async def test_walking_every_page_yields_the_listing_unpaged(
    client: httpx.AsyncClient, listing: Listing, sort: str
) -> None:
    pages = await walk(client, listing.user, [("sort", sort)])
    walked = [task["id"] for page in pages for task in page]
    assert walked == ids(await list_all(client, listing.user, [("sort", sort)]))
    assert len(walked) == len(set(walked)) == len(listing.tasks)
    assert all(len(page) == 3 for page in pages[:-1])


async def test_a_page_that_ends_exactly_at_the_last_task_has_no_next_cursor(
    client: httpx.AsyncClient, listing: Listing
) -> None:
    pages = await walk(client, listing.user, [], limit=10)
    assert [len(page) for page in pages] == [10, 10, 10]


async def test_a_cursor_issued_for_an_alias_works_with_its_canonical_name(
    client: httpx.AsyncClient, listing: Listing
) -> None:
    cursor = await first_cursor(client, listing.user, "-due_date")
    response = await get_page(client, listing.user, [("sort", "-due_at"), ("limit", "3"), ("cursor", cursor)])
    assert ids(response.json()["data"]) == ids(await list_all(client, listing.user, [("sort", "-due_at")]))[3:6]


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
    assert walked == ids(listing.tasks)
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
    params: Params = [("priority", "high"), ("priority", "none"), ("tag", "home"), ("sort", "-due_at")]
    response = await get_page(client, listing.user, [*params, ("limit", "2")])
    walked = ids(response.json()["data"])
    while (link := next_link(response)) is not None:
        response = await client.get(link, headers=listing.user.headers)
        assert response.status_code == 200, response.text
        walked.extend(ids(response.json()["data"]))
    expected = ids(await list_all(client, listing.user, params))
    assert 2 < len(expected) < len(listing.tasks)
    assert walked == expected


async def test_link_header_targets_the_same_path(client: httpx.AsyncClient, listing: Listing) -> None:
    response = await get_page(client, listing.user, [("limit", "5")])
    link = next_link(response)
    assert link is not None
    assert httpx.URL(link).path == LIST


# Totals -------------------------------------------------------------------------------------------


async def test_include_total_counts_every_match_not_just_the_page(client: httpx.AsyncClient, listing: Listing) -> None:
    matching = await list_all(client, listing.user, [("status", "pending")])
    params: Params = [("status", "pending"), ("include_total", "true"), ("limit", "3")]
    body = (await get_page(client, listing.user, params)).json()
    assert len(body["data"]) == 3
    assert body["meta"]["total"] == len(matching) > 3


async def test_include_total_is_the_same_on_a_later_page(client: httpx.AsyncClient, listing: Listing) -> None:
    matching = await list_all(client, listing.user, [("tag", "home")])
    params: Params = [("tag", "home"), ("include_total", "true"), ("limit", "2")]
    first = (await get_page(client, listing.user, params)).json()
    second = (await get_page(client, listing.user, [*params, ("cursor", first["meta"]["next_cursor"])])).json()
    assert first["meta"]["total"] == second["meta"]["total"] == len(matching) > 2


async def test_without_include_total_there_is_no_total(client: httpx.AsyncClient, listing: Listing) -> None:
    for params in ([], [("include_total", "false")]):
        body = (await get_page(client, listing.user, params)).json()
        assert body["meta"].get("total") is None


async def test_include_total_of_nothing_is_zero(client: httpx.AsyncClient, listing: Listing) -> None:
    params: Params = [("tag", "nobody-uses-this"), ("include_total", "true")]
    body = (await get_page(client, listing.user, params)).json()
    assert body["data"] == []
    assert body["meta"]["total"] == 0
