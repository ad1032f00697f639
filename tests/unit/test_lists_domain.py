"""List rules: names, the case-insensitive key they are unique by, colours."""

from __future__ import annotations

import pytest

from todo_api.domain.errors import InvalidInput
from todo_api.domain.lists import MAX_LIST_NAME_CHARS, PALETTE, name_key, normalise_color, normalise_list_name


def test_a_name_is_trimmed() -> None:
    assert normalise_list_name("  Home  Office ") == "Home  Office"


@pytest.mark.parametrize("raw", ["", "   ", "x" * (MAX_LIST_NAME_CHARS + 1)])
def test_a_blank_or_too_long_name_is_refused(raw: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        normalise_list_name(raw)
    assert refused.value.code == "invalid_list_name"


def test_a_name_of_exactly_the_maximum_is_accepted() -> None:
    assert normalise_list_name("x" * MAX_LIST_NAME_CHARS) == "x" * MAX_LIST_NAME_CHARS


def test_names_that_differ_only_in_case_share_a_key() -> None:
    assert name_key("Work") == name_key("WORK") == name_key("work")
    assert name_key("Work") != name_key("Works")


@pytest.mark.parametrize(("raw", "stored"), [("blue", "blue"), (" Sky_Blue ", "sky_blue"), ("#3B82F6", "#3b82f6")])
def test_a_palette_name_or_a_hex_colour_is_accepted_and_lower_cased(raw: str, stored: str) -> None:
    assert normalise_color(raw) == stored


@pytest.mark.parametrize("raw", ["bleu", "#3b82f", "#3b82f6ff", "rgb(0,0,0)", ""])
def test_any_other_colour_is_refused(raw: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        normalise_color(raw)
    assert refused.value.code == "invalid_color"


def test_no_colour_is_allowed() -> None:
    assert normalise_color(None) is None


def test_the_palette_has_no_duplicates() -> None:
    assert len(set(PALETTE)) == len(PALETTE)
