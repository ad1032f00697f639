"""Domain rules for tasks: titles, descriptions, tags, due dates, priorities, completion, partial
updates, the list query values, and the sort and keyset order the fake repository shares with the SQL."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.unit.fakes import FakeStore, FakeTaskRepository, in_sort_order, is_after
from todo_api.domain.errors import InvalidInput
from todo_api.domain.tasks import (
    MAX_DESCRIPTION_CHARS,
    MAX_PAGE_SIZE,
    MAX_SEARCH_CHARS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    MAX_TITLE_CHARS,
    SORT_FIELDS,
    UNSET,
    Position,
    Priority,
    Sort,
    SortField,
    Task,
    TaskChanges,
    TaskDraft,
    TaskFilter,
    TaskQuery,
    check_due_at,
    normalise_description,
    normalise_tag,
    normalise_tags,
    normalise_title,
    sort_value,
)

OWNER = "o" * 32
SOMEONE_ELSE = "s" * 32
CREATED = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
LATER = CREATED + timedelta(hours=1)
PARIS = timezone(timedelta(hours=1))


def a_task(**values: Any) -> Task:
    defaults: dict[str, Any] = {
        "id": 1,
        "user_id": OWNER,
        "title": "Buy oat milk",
        "description": "The barista one.",
        "completed": False,
        "completed_at": None,
        "priority": Priority.MEDIUM,
        "tags": ("home",),
        "due_at": CREATED + timedelta(days=2),
        "created_at": CREATED,
        "updated_at": CREATED,
        "version": 1,
        "list_id": 1,
        "parent_id": None,
        "position": "a0",
    }
    return Task(**(defaults | values))


def refusal_code(call: Any, *args: Any) -> str:
    with pytest.raises(InvalidInput) as refused:
        call(*args)
    return refused.value.code


def normalised_tags_or_none(raw: list[str]) -> tuple[str, ...] | None:
    try:
        return normalise_tags(raw)
    except InvalidInput:
        return None


# --- Titles ------------------------------------------------------------------------------------------


def test_a_title_is_trimmed() -> None:
    assert normalise_title("  Buy oat milk \n") == "Buy oat milk"


def test_inner_white_space_in_a_title_is_kept() -> None:
    assert normalise_title("Buy  oat\tmilk") == "Buy  oat\tmilk"


@pytest.mark.parametrize("raw", ["", " ", "\t\n  "])
def test_a_blank_title_is_refused_with_code_invalid_title(raw: str) -> None:
    assert refusal_code(normalise_title, raw) == "invalid_title"


def test_a_title_of_one_character_is_accepted() -> None:
    assert normalise_title("x") == "x"


def test_a_title_of_200_characters_is_accepted_with_white_space_around_it() -> None:
    assert normalise_title("  " + "t" * MAX_TITLE_CHARS + "  ") == "t" * MAX_TITLE_CHARS


def test_a_title_of_201_characters_is_refused_with_code_invalid_title() -> None:
    assert refusal_code(normalise_title, "t" * (MAX_TITLE_CHARS + 1)) == "invalid_title"


@given(st.text(max_size=MAX_TITLE_CHARS + 20))
def test_a_title_is_accepted_exactly_when_1_to_200_characters_remain_after_trimming(raw: str) -> None:
    trimmed = raw.strip()
    if 1 <= len(trimmed) <= MAX_TITLE_CHARS:
        assert normalise_title(raw) == trimmed
    else:
        assert refusal_code(normalise_title, raw) == "invalid_title"


@given(st.text(min_size=1, max_size=MAX_TITLE_CHARS))
def test_normalising_a_title_again_changes_nothing(raw: str) -> None:
    assume(raw.strip())
    once = normalise_title(raw)
    assert normalise_title(once) == once


def test_a_draft_holds_its_title_normalised() -> None:
    assert TaskDraft("  Buy oat milk  ").title == "Buy oat milk"


def test_a_draft_with_a_blank_title_is_refused() -> None:
    assert refusal_code(TaskDraft, "   ") == "invalid_title"


# --- Descriptions ------------------------------------------------------------------------------------


def test_a_description_is_trimmed() -> None:
    assert normalise_description("  The barista one.\n") == "The barista one."


@pytest.mark.parametrize("raw", [None, "", "  \n\t "])
def test_a_missing_empty_or_blank_description_is_no_description(raw: str | None) -> None:
    assert normalise_description(raw) is None


def test_a_description_of_1000_characters_is_accepted() -> None:
    assert normalise_description("d" * MAX_DESCRIPTION_CHARS) == "d" * MAX_DESCRIPTION_CHARS


def test_a_description_of_1001_characters_is_refused_with_code_invalid_description() -> None:
    assert refusal_code(normalise_description, "d" * (MAX_DESCRIPTION_CHARS + 1)) == "invalid_description"


def test_the_description_limit_applies_after_trimming() -> None:
    assert normalise_description(" " + "d" * MAX_DESCRIPTION_CHARS + " ") == "d" * MAX_DESCRIPTION_CHARS


@given(st.none() | st.text(max_size=MAX_DESCRIPTION_CHARS))
def test_normalising_a_description_again_changes_nothing(raw: str | None) -> None:
    once = normalise_description(raw)
    assert normalise_description(once) == once


def test_a_draft_with_an_empty_description_has_none() -> None:
    assert TaskDraft("Buy oat milk", description="").description is None


# --- Tags --------------------------------------------------------------------------------------------


def test_a_tag_is_lower_cased_trimmed_and_its_inner_white_space_folded() -> None:
    assert normalise_tag("  Home \t Office ") == "home office"


@pytest.mark.parametrize("raw", ["", "   ", "\n\t"])
def test_a_blank_tag_is_refused_with_code_invalid_tag(raw: str) -> None:
    assert refusal_code(normalise_tag, raw) == "invalid_tag"


def test_a_tag_of_50_characters_is_accepted() -> None:
    assert normalise_tag("T" * MAX_TAG_CHARS) == "t" * MAX_TAG_CHARS


def test_a_tag_of_51_characters_is_refused_with_code_invalid_tag() -> None:
    assert refusal_code(normalise_tag, "t" * (MAX_TAG_CHARS + 1)) == "invalid_tag"


def test_a_tag_is_measured_after_folding_white_space() -> None:
    assert normalise_tag("a" + " " * 60 + "b") == "a b"


def test_duplicate_tags_are_dropped_keeping_the_first_seen_order() -> None:
    assert normalise_tags(["Work", "home", " WORK ", "errands", "Home"]) == ("work", "home", "errands")


def test_twenty_tags_are_accepted() -> None:
    tags = [f"tag {n}" for n in range(MAX_TAGS)]
    assert normalise_tags(tags) == tuple(tags)


def test_twenty_one_tags_are_refused_with_code_too_many_tags() -> None:
    assert refusal_code(normalise_tags, [f"tag {n}" for n in range(MAX_TAGS + 1)]) == "too_many_tags"


def test_tags_are_counted_after_dropping_duplicates() -> None:
    tags = [f"tag {n}" for n in range(MAX_TAGS)] + ["TAG 0", " tag  1 "]
    assert len(normalise_tags(tags)) == MAX_TAGS


def test_one_invalid_tag_refuses_them_all() -> None:
    assert refusal_code(normalise_tags, ["home", " "]) == "invalid_tag"


@given(st.lists(st.text(max_size=MAX_TAG_CHARS + 5), max_size=MAX_TAGS + 3))
def test_normalising_tags_again_changes_nothing(raw: list[str]) -> None:
    once = normalised_tags_or_none(raw)
    assume(once is not None)
    assert once is not None
    assert normalise_tags(once) == once


@given(st.lists(st.text(max_size=MAX_TAG_CHARS + 5), max_size=MAX_TAGS + 3))
def test_normalised_tags_are_lower_case_folded_distinct_and_within_the_limits(raw: list[str]) -> None:
    tags = normalised_tags_or_none(raw)
    assume(tags is not None)
    assert tags is not None
    assert len(tags) <= MAX_TAGS
    assert len(set(tags)) == len(tags)
    for tag in tags:
        assert tag == tag.lower()
        assert tag == " ".join(tag.split())
        assert 1 <= len(tag) <= MAX_TAG_CHARS


@given(st.lists(st.sampled_from(["home", "Home", " HOME ", "work", "Work", "errands"]), max_size=12))
def test_the_first_spelling_of_a_tag_decides_its_place(raw: list[str]) -> None:
    first_seen: list[str] = []
    for tag in raw:
        if tag.strip().lower() not in first_seen:
            first_seen.append(tag.strip().lower())
    assert normalise_tags(raw) == tuple(first_seen)


def test_a_draft_holds_its_tags_normalised() -> None:
    assert TaskDraft("Buy oat milk", tags=(" Home ", "home", "Shop")).tags == ("home", "shop")


# --- Due dates ---------------------------------------------------------------------------------------


def test_a_due_date_without_a_time_zone_is_refused_with_code_naive_datetime() -> None:
    assert refusal_code(check_due_at, datetime(2026, 5, 1, 17, 0)) == "naive_datetime"


def test_a_draft_with_a_naive_due_date_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        TaskDraft("Buy oat milk", due_at=datetime(2026, 5, 1, 17, 0))
    assert refused.value.code == "naive_datetime"


@pytest.mark.parametrize("zone", [UTC, PARIS, timezone(timedelta(hours=-9, minutes=-30))])
def test_a_due_date_in_any_time_zone_is_kept_as_given(zone: timezone) -> None:
    due = datetime(2026, 5, 1, 17, 0, tzinfo=zone)
    assert TaskDraft("Buy oat milk", due_at=due).due_at == due


def test_no_due_date_is_accepted() -> None:
    assert TaskDraft("Buy oat milk").due_at is None


# --- Priorities --------------------------------------------------------------------------------------


def test_priorities_are_ordered_none_low_medium_high() -> None:
    assert sorted([Priority.HIGH, Priority.NONE, Priority.MEDIUM, Priority.LOW]) == [
        Priority.NONE,
        Priority.LOW,
        Priority.MEDIUM,
        Priority.HIGH,
    ]


def test_priority_labels_are_the_lower_case_names() -> None:
    assert [priority.label for priority in Priority] == ["none", "low", "medium", "high"]


@pytest.mark.parametrize("priority", list(Priority))
def test_a_priority_is_found_by_its_label_in_any_case(priority: Priority) -> None:
    assert Priority.of(priority.label) == priority
    assert Priority.of(priority.label.upper()) == priority


@pytest.mark.parametrize("label", ["", "urgent", "hi", " high", "3"])
def test_an_unknown_priority_label_is_refused_with_code_invalid_priority(label: str) -> None:
    assert refusal_code(Priority.of, label) == "invalid_priority"


def test_a_draft_has_no_priority_unless_given_one() -> None:
    assert TaskDraft("Buy oat milk").priority == Priority.NONE


# --- Completion --------------------------------------------------------------------------------------


def test_completing_an_open_task_records_when() -> None:
    done = a_task().completed_as(True, LATER)
    assert (done.completed, done.completed_at) == (True, LATER)


def test_completing_a_completed_task_keeps_the_first_completion_time() -> None:
    done = a_task(completed=True, completed_at=CREATED)
    assert done.completed_as(True, LATER) == done


def test_reopening_a_completed_task_clears_its_completion_time() -> None:
    reopened = a_task(completed=True, completed_at=CREATED).completed_as(False, LATER)
    assert (reopened.completed, reopened.completed_at) == (False, None)


def test_reopening_an_open_task_changes_nothing() -> None:
    task = a_task()
    assert task.completed_as(False, LATER) == task


def test_completion_changes_nothing_but_completed_and_completed_at() -> None:
    task = a_task()
    assert replace(task.completed_as(True, LATER), completed=False, completed_at=None) == task


@given(st.datetimes(timezones=st.just(UTC)))
def test_toggling_an_open_task_twice_gives_back_the_task(at: datetime) -> None:
    task = a_task()
    assert task.completed_as(True, at).completed_as(False, at) == task


# --- Partial updates ---------------------------------------------------------------------------------


def test_changes_with_every_field_unset_keep_the_task_as_it_was() -> None:
    task = a_task()
    assert TaskChanges().applied_to(task, LATER) == task


def test_a_changed_title_is_normalised_and_updates_updated_at() -> None:
    changed = TaskChanges(title="  Buy soy milk ").applied_to(a_task(), LATER)
    assert (changed.title, changed.updated_at) == ("Buy soy milk", LATER)


def test_changes_keep_every_field_they_leave_unset() -> None:
    task = a_task()
    changed = TaskChanges(title="Buy soy milk").applied_to(task, LATER)
    assert replace(changed, title=task.title, updated_at=task.updated_at) == task


def test_a_description_of_none_clears_the_description() -> None:
    assert TaskChanges(description=None).applied_to(a_task(), LATER).description is None


def test_a_blank_description_clears_the_description() -> None:
    assert TaskChanges(description="  ").applied_to(a_task(), LATER).description is None


def test_a_due_date_of_none_clears_the_due_date() -> None:
    assert TaskChanges(due_at=None).applied_to(a_task(), LATER).due_at is None


def test_changed_tags_are_normalised() -> None:
    assert TaskChanges(tags=("Shop", " shop", "Errands")).applied_to(a_task(), LATER).tags == ("shop", "errands")


def test_a_changed_priority_is_set() -> None:
    assert TaskChanges(priority=Priority.HIGH).applied_to(a_task(), LATER).priority == Priority.HIGH


def test_completing_through_changes_records_when() -> None:
    changed = TaskChanges(completed=True).applied_to(a_task(), LATER)
    assert (changed.completed, changed.completed_at, changed.updated_at) == (True, LATER, LATER)


def test_changes_to_the_values_the_task_has_keep_updated_at() -> None:
    task = a_task()
    same = TaskChanges(
        title=f"  {task.title} ",
        description=task.description,
        priority=task.priority,
        tags=("HOME",),
        due_at=task.due_at,
        completed=task.completed,
    )
    assert same.applied_to(task, LATER) == task


def test_a_due_date_given_in_another_zone_for_the_same_instant_is_no_change() -> None:
    task = a_task()
    assert task.due_at is not None
    assert TaskChanges(due_at=task.due_at.astimezone(PARIS)).applied_to(task, LATER).updated_at == CREATED


def test_changes_leave_the_version_to_the_repository() -> None:
    assert TaskChanges(title="Buy soy milk").applied_to(a_task(), LATER).version == 1


def test_a_blank_title_in_changes_is_refused() -> None:
    assert refusal_code(TaskChanges(title=" ").applied_to, a_task(), LATER) == "invalid_title"


def test_a_naive_due_date_in_changes_is_refused() -> None:
    changes = TaskChanges(due_at=datetime(2026, 5, 1, 17, 0))
    assert refusal_code(changes.applied_to, a_task(), LATER) == "naive_datetime"


def test_replacing_with_a_draft_resets_every_field_the_draft_leaves_out() -> None:
    task = a_task(completed=True, completed_at=CREATED)
    replaced = TaskChanges.replacing_with(TaskDraft("Buy soy milk")).applied_to(task, LATER)
    assert replaced == replace(
        task,
        title="Buy soy milk",
        description=None,
        completed=False,
        completed_at=None,
        priority=Priority.NONE,
        tags=(),
        due_at=None,
        updated_at=LATER,
    )


changes_strategy = st.builds(
    TaskChanges,
    title=st.just(UNSET) | st.sampled_from(["Buy oat milk", "Buy soy milk"]),
    description=st.just(UNSET) | st.sampled_from([None, "", "The barista one.", "Any"]),
    priority=st.just(UNSET) | st.sampled_from(list(Priority)),
    tags=st.just(UNSET) | st.sampled_from([(), ("home",), ("Home", "shop")]),
    due_at=st.just(UNSET) | st.sampled_from([None, CREATED + timedelta(days=2), CREATED]),
    completed=st.just(UNSET) | st.booleans(),
)


@given(changes_strategy)
def test_updated_at_moves_exactly_when_something_else_changed(changes: TaskChanges) -> None:
    task = a_task()
    changed = changes.applied_to(task, LATER)
    something_changed = replace(changed, updated_at=task.updated_at) != task
    assert changed.updated_at == (LATER if something_changed else CREATED)


# --- Sorting -----------------------------------------------------------------------------------------


def test_the_default_sort_is_newest_first() -> None:
    assert Sort() == Sort("created_at", descending=True)


@pytest.mark.parametrize("field", SORT_FIELDS)
def test_a_sort_field_alone_sorts_ascending(field: SortField) -> None:
    assert Sort.parse(field) == Sort(field, descending=False)


@pytest.mark.parametrize("field", SORT_FIELDS)
def test_a_minus_before_a_sort_field_sorts_descending(field: SortField) -> None:
    assert Sort.parse(f"-{field}") == Sort(field, descending=True)


@pytest.mark.parametrize(
    ("alias", "field"), [("created", "created_at"), ("due_date", "due_at"), ("updated", "updated_at")]
)
def test_a_sort_alias_means_its_field_in_either_direction(alias: str, field: SortField) -> None:
    assert Sort.parse(alias) == Sort(field, descending=False)
    assert Sort.parse(f"-{alias}") == Sort(field, descending=True)


@pytest.mark.parametrize("raw", ["", "-", "id", "name", "Title", "--created_at", "+created_at", " title", "due"])
def test_an_unknown_sort_is_refused_with_code_invalid_sort(raw: str) -> None:
    assert refusal_code(Sort.parse, raw) == "invalid_sort"


@given(st.sampled_from(SORT_FIELDS), st.booleans())
def test_a_sort_written_out_parses_back_to_itself(field: SortField, descending: bool) -> None:
    sort = Sort(field, descending)
    assert Sort.parse(str(sort)) == sort
    assert str(Sort.parse(str(sort))) == str(sort)


def test_a_sort_is_written_with_a_minus_when_descending() -> None:
    assert (str(Sort("due_at", descending=True)), str(Sort("title", descending=False))) == ("-due_at", "title")


def test_the_sort_value_of_a_title_is_the_title_as_written() -> None:
    """The store lower-cases both sides itself, so the position never depends on Python's lower()."""
    assert sort_value(a_task(title="Buy Oat MILK"), "title") == "Buy Oat MILK"


def test_the_sort_value_of_a_priority_is_its_rank() -> None:
    assert sort_value(a_task(priority=Priority.HIGH), "priority") == 3


@pytest.mark.parametrize("field", ["created_at", "updated_at", "due_at"])
def test_the_sort_value_of_a_date_is_the_date(field: SortField) -> None:
    assert sort_value(a_task(), field) == getattr(a_task(), field)


def test_the_sort_value_of_a_missing_due_date_is_none() -> None:
    assert sort_value(a_task(due_at=None), "due_at") is None


# --- Filters and queries -----------------------------------------------------------------------------


def test_a_filter_holds_its_tags_normalised_without_duplicates() -> None:
    assert TaskFilter(tags=(" Home ", "home", "Shop")).tags == ("home", "shop")


def test_a_filter_with_a_blank_tag_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        TaskFilter(tags=("home", "  "))
    assert refused.value.code == "invalid_tag"


def test_a_search_is_trimmed() -> None:
    assert TaskFilter(search="  oat milk ").search == "oat milk"


@pytest.mark.parametrize("search", [None, "", "   "])
def test_an_empty_or_blank_search_is_no_search(search: str | None) -> None:
    assert TaskFilter(search=search).search is None


def test_a_search_of_200_characters_is_accepted_with_white_space_around_it() -> None:
    assert TaskFilter(search=" " + "s" * MAX_SEARCH_CHARS + " ").search == "s" * MAX_SEARCH_CHARS


def test_a_search_of_201_characters_is_refused_with_code_invalid_search() -> None:
    with pytest.raises(InvalidInput) as refused:
        TaskFilter(search="s" * (MAX_SEARCH_CHARS + 1))
    assert refused.value.code == "invalid_search"


def test_a_naive_due_before_in_a_filter_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        TaskFilter(due_before=datetime(2026, 5, 1))
    assert refused.value.code == "naive_datetime"


def test_a_naive_due_after_in_a_filter_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        TaskFilter(due_after=datetime(2026, 5, 1))
    assert refused.value.code == "naive_datetime"


def test_a_query_lists_20_tasks_newest_first_unless_told_otherwise() -> None:
    query = TaskQuery()
    assert (query.limit, query.sort, query.after, query.filter) == (20, Sort(), None, TaskFilter())


@pytest.mark.parametrize("limit", [1, 50, MAX_PAGE_SIZE])
def test_a_limit_from_1_to_100_is_accepted(limit: int) -> None:
    assert TaskQuery(limit=limit).limit == limit


@pytest.mark.parametrize("limit", [-1, 0, MAX_PAGE_SIZE + 1])
def test_a_limit_outside_1_to_100_is_refused_with_code_invalid_limit(limit: int) -> None:
    with pytest.raises(InvalidInput) as refused:
        TaskQuery(limit=limit)
    assert refused.value.code == "invalid_limit"


# --- Sort order and keyset pages (the fake mirrors the SQL; these pin down the rules it follows) -----

# Few distinct values, so ties on the sort value are common and the id has to break them.
MOMENTS = [CREATED, LATER, LATER.astimezone(PARIS), CREATED + timedelta(days=1)]
TITLES = ["a", "A", "b", "B", "ab", "Ab", "a b", "zed", "Zed", "émile", "Émile"]
EVERY_SORT = [Sort(field, descending) for field in SORT_FIELDS for descending in (False, True)]
every_sort = pytest.mark.parametrize("sort", EVERY_SORT, ids=str)


@st.composite
def task_lists(draw: st.DrawFn, *, owners: list[str] | None = None) -> list[Task]:
    ids = draw(st.lists(st.integers(1, 10_000), max_size=14, unique=True))
    return [
        Task(
            id=task_id,
            user_id=draw(st.sampled_from(owners or [OWNER])),
            title=draw(st.sampled_from(TITLES)),
            description=None,
            completed=False,
            completed_at=None,
            priority=draw(st.sampled_from(list(Priority))),
            tags=(),
            due_at=draw(st.none() | st.sampled_from(MOMENTS)),
            created_at=draw(st.sampled_from(MOMENTS)),
            updated_at=draw(st.sampled_from(MOMENTS)),
            version=1,
            list_id=1,
            parent_id=None,
            position=draw(st.sampled_from(["a0", "a1", "a1V", "b00"])),
        )
        for task_id in ids
    ]


def comes_before(first: Task, second: Task, sort: Sort) -> bool:
    """The rule, spelled out: by value in the sort's direction, tasks without one last either way,
    then by id in the same direction."""
    a: Any = sort_value(first, sort.field)
    b: Any = sort_value(second, sort.field)
    if sort.field == "title":
        a, b = a.lower(), b.lower()
    if (a is None) != (b is None):
        return b is None
    if a is not None and a != b:
        return bool(a > b) if sort.descending else bool(a < b)
    return first.id > second.id if sort.descending else first.id < second.id


def position_of(task: Task, sort: Sort) -> Position:
    return Position(sort_value(task, sort.field), task.id)


@every_sort
@given(tasks=task_lists())
def test_sorted_tasks_follow_value_then_id_with_missing_due_dates_last(tasks: list[Task], sort: Sort) -> None:
    ordered = in_sort_order(tasks, sort)
    assert sorted(task.id for task in ordered) == sorted(task.id for task in tasks)
    for first, second in itertools.pairwise(ordered):
        assert comes_before(first, second, sort)


@every_sort
@given(tasks=task_lists(), shuffler=st.randoms(use_true_random=False))
def test_the_sort_order_does_not_depend_on_the_order_tasks_are_stored_in(
    tasks: list[Task], sort: Sort, shuffler: random.Random
) -> None:
    shuffled = list(tasks)
    shuffler.shuffle(shuffled)
    assert in_sort_order(shuffled, sort) == in_sort_order(tasks, sort)


@every_sort
@given(tasks=task_lists())
def test_the_tasks_after_a_position_are_exactly_those_sorted_after_it(tasks: list[Task], sort: Sort) -> None:
    ordered = in_sort_order(tasks, sort)
    for index, task in enumerate(ordered):
        position = position_of(task, sort)
        assert [later for later in ordered if is_after(later, sort, position)] == ordered[index + 1 :]


@every_sort
@given(tasks=task_lists(owners=[OWNER, SOMEONE_ELSE]), limit=st.integers(1, 5))
async def test_walking_the_pages_yields_each_of_the_owners_tasks_once_in_sort_order(
    tasks: list[Task], sort: Sort, limit: int
) -> None:
    repository = FakeTaskRepository(FakeStore(tasks={task.id: task for task in tasks}))
    # The person's order is one list's top level (every generated task is in list 1, at the top).
    group = TaskFilter(list_id=1, top_level=True) if sort.field == "position" else TaskFilter()
    walked: list[Task] = []
    after: Position | None = None
    for _ in range(len(tasks) + 1):
        rows = await repository.list(OWNER, TaskQuery(group, sort, limit, after), CREATED)
        walked += rows[:limit]
        if len(rows) <= limit:
            break
        after = position_of(walked[-1], sort)
    assert walked == in_sort_order([task for task in tasks if task.user_id == OWNER], sort)


@pytest.mark.parametrize(
    "group",
    [TaskFilter(), TaskFilter(list_id=1), TaskFilter(top_level=True), TaskFilter(status="pending")],
)
def test_the_persons_order_needs_one_group_of_siblings(group: TaskFilter) -> None:
    with pytest.raises(InvalidInput) as refused:
        TaskQuery(group, Sort("position", descending=False))
    assert refused.value.code == "position_needs_group"
    TaskQuery(TaskFilter(list_id=1, top_level=True), Sort("position"))
    TaskQuery(TaskFilter(parent_id=7), Sort("position"))
