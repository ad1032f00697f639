"""Page cursors: a signed keyset position that comes back exactly as issued, for the sort it was
issued for, and is refused in any other shape."""

from __future__ import annotations

import base64
import re
import string
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from todo_api.adapters.http.cursors import CursorCodec, InvalidCursor
from todo_api.domain.ordering import DIGITS
from todo_api.domain.tasks import SORT_FIELDS, Position, Sort, SortField

KEY = "a cursor signing key that is long enough"
codec = CursorCodec(KEY)
MOMENT = datetime(2025, 1, 6, 9, 30, 15, 123456, tzinfo=UTC)
URL_SAFE_ALPHABET = string.ascii_letters + string.digits + "-_"
NEWEST_FIRST = Sort("created_at", descending=True)
OLDEST_FIRST = Sort("created_at", descending=False)
IST = timezone(timedelta(hours=5, minutes=30))

EVERY_SORT = [Sort(field, descending) for field in SORT_FIELDS for descending in (False, True)]
every_sort = pytest.mark.parametrize("sort", EVERY_SORT, ids=str)

offsets = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
moments = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets)
task_ids = st.integers(1, 2**63 - 1)


def sort_values(field: SortField) -> st.SearchStrategy[datetime | int | str | None]:
    match field:
        case "created_at" | "updated_at":
            return moments
        case "due_at":
            return st.none() | moments
        case "priority":
            return st.integers(0, 3)
        case "title":
            return st.text(max_size=200)
        case "position":
            return st.text(alphabet=DIGITS, min_size=2, max_size=255)


def a_cursor(sort: Sort = NEWEST_FIRST) -> str:
    return codec.encode(sort, Position(MOMENT, 42))


def refusal(cursor: str, sort: Sort = NEWEST_FIRST) -> InvalidCursor:
    with pytest.raises(InvalidCursor) as refused:
        codec.decode(cursor, sort)
    return refused.value


# --- Round trips -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sort", "position"),
    [
        (Sort("created_at", descending=True), Position(MOMENT, 42)),
        (Sort("updated_at", descending=False), Position(MOMENT.astimezone(IST), 7)),
        (Sort("due_at", descending=False), Position(MOMENT, 3)),
        (Sort("due_at", descending=True), Position(None, 3)),
        (Sort("priority", descending=True), Position(2, 9)),
        (Sort("title", descending=False), Position('buy "oat" milk, 2025-01-06t09:30:00+00:00 ☕', 11)),
    ],
    ids=str,
)
def test_a_cursor_decodes_to_the_position_it_was_issued_for(sort: Sort, position: Position) -> None:
    assert codec.decode(codec.encode(sort, position), sort) == position


@every_sort
@given(data=st.data(), task_id=task_ids)
def test_every_position_of_every_sort_survives_the_round_trip(sort: Sort, data: st.DataObject, task_id: int) -> None:
    position = Position(data.draw(sort_values(sort.field)), task_id)
    decoded = codec.decode(codec.encode(sort, position), sort)
    assert decoded == position


@given(moment=moments)
def test_a_date_comes_back_in_the_time_zone_it_was_issued_in(moment: datetime) -> None:
    sort = Sort("due_at", descending=False)
    decoded = codec.decode(codec.encode(sort, Position(moment, 1)), sort).value
    assert isinstance(decoded, datetime)
    assert (decoded, decoded.utcoffset()) == (moment, moment.utcoffset())


def test_a_title_that_looks_like_a_date_stays_a_title() -> None:
    sort = Sort("title", descending=False)
    assert codec.decode(codec.encode(sort, Position("2025-01-06", 1)), sort).value == "2025-01-06"


@every_sort
def test_a_cursor_is_url_safe_text_without_padding(sort: Sort) -> None:
    assert re.fullmatch(r"[A-Za-z0-9_-]+", a_cursor(sort))


# --- Tampered and made-up cursors --------------------------------------------------------------------


def test_a_refused_cursor_has_code_invalid_cursor() -> None:
    assert refusal("garbage").code == "invalid_cursor"


@given(data=st.data())
def test_a_cursor_with_one_character_changed_is_refused(data: st.DataObject) -> None:
    cursor = a_cursor()
    # Not the last character: some of its bits may be padding, so changing it need not change the bytes.
    index = data.draw(st.integers(0, len(cursor) - 2))
    replacement = data.draw(st.sampled_from(URL_SAFE_ALPHABET.replace(cursor[index], "")))
    refusal(cursor[:index] + replacement + cursor[index + 1 :])


@given(data=st.data())
def test_a_truncated_cursor_is_refused(data: st.DataObject) -> None:
    cursor = a_cursor()
    refusal(cursor[: data.draw(st.integers(0, len(cursor) - 1))])


def test_a_cursor_with_extra_data_appended_is_refused() -> None:
    refusal(a_cursor() + "AAAA")


@given(st.text(max_size=300))
def test_random_text_is_refused(garbage: str) -> None:
    refusal(garbage)


@given(st.binary(max_size=300))
def test_well_formed_base64_that_this_api_did_not_sign_is_refused(payload: bytes) -> None:
    refusal(base64.urlsafe_b64encode(payload).decode().rstrip("="))


def test_an_unsigned_position_in_the_cursor_format_is_refused() -> None:
    payload = b'["-created_at","2025-01-06T09:30:15+00:00",42]'
    refusal(base64.urlsafe_b64encode(payload + bytes(16)).decode().rstrip("="))


@pytest.mark.parametrize("cursor", ["", "=", "====", "not a cursor!", "%%%%", "ümlaut", "a", "abcde"])
def test_an_empty_or_non_base64_cursor_is_refused(cursor: str) -> None:
    refusal(cursor)


def test_a_cursor_signed_with_another_key_is_refused() -> None:
    cursor = CursorCodec("another signing key, just as long").encode(NEWEST_FIRST, Position(MOMENT, 42))
    refusal(cursor)


def test_codecs_with_the_same_key_accept_each_others_cursors() -> None:
    assert CursorCodec(KEY).decode(a_cursor(), NEWEST_FIRST) == Position(MOMENT, 42)


# --- A cursor belongs to one sort --------------------------------------------------------------------


def test_a_cursor_for_newest_first_is_refused_for_oldest_first() -> None:
    assert "another sort order" in refusal(a_cursor(NEWEST_FIRST), OLDEST_FIRST).message


def test_a_cursor_for_oldest_first_is_refused_for_newest_first() -> None:
    assert "another sort order" in refusal(a_cursor(OLDEST_FIRST), NEWEST_FIRST).message


@pytest.mark.parametrize("issued_for", EVERY_SORT, ids=str)
@pytest.mark.parametrize("used_with", EVERY_SORT, ids=str)
def test_a_cursor_is_refused_for_any_sort_but_its_own(issued_for: Sort, used_with: Sort) -> None:
    cursor = codec.encode(issued_for, Position(None if issued_for.field == "due_at" else 1, 42))
    if used_with == issued_for:
        assert codec.decode(cursor, used_with).id == 42
    else:
        refusal(cursor, used_with)
