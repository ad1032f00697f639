"""Order keys: any sequence of inserts between neighbours keeps a strict total order, a rebalance
keeps the order, and every key is the one the reference implementation gives."""

from __future__ import annotations

import fractional_indexing  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.ordering_support import crowded_after
from todo_api.domain.ordering import (
    MAX_KEY_CHARS,
    OrderKeyError,
    is_strictly_ordered,
    key_between,
    key_with_room,
    keys_between,
    needs_rebalance,
)

# A script of inserts: each step picks a gap (0 = before the first key, len = after the last).
inserts = st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=300)


def insert_all(gaps: list[int], *, reference: bool = False) -> list[str]:
    """Each gap picks where the next key goes; every key lands strictly between its neighbours
    (and, with `reference`, equals what the reference implementation gives)."""
    keys: list[str] = []
    for gap in gaps:
        at = gap % (len(keys) + 1)
        before = keys[at - 1] if at > 0 else None
        after = keys[at] if at < len(keys) else None
        key = key_between(before, after)
        assert before is None or before < key
        assert after is None or key < after
        if reference:
            assert key == fractional_indexing.generate_key_between(before, after)
        keys.insert(at, key)
    return keys


@given(inserts)
@settings(max_examples=300)
def test_any_sequence_of_inserts_between_neighbours_keeps_a_strict_total_order(gaps: list[int]) -> None:
    keys = insert_all(gaps)
    assert is_strictly_ordered(keys)
    assert keys == sorted(keys, key=lambda key: key.encode())  # byte order: the column is COLLATE "C"


@given(inserts)
@settings(max_examples=200)
def test_every_key_is_the_reference_implementations(gaps: list[int]) -> None:
    insert_all(gaps, reference=True)


@given(inserts, st.integers(min_value=1, max_value=2_000))
@settings(max_examples=100)
def test_a_rebalance_keeps_the_order_and_leaves_short_keys(gaps: list[int], extra: int) -> None:
    crowded = insert_all(gaps)
    fresh = keys_between(None, None, len(crowded) + extra)
    assert is_strictly_ordered(fresh)
    assert len(set(fresh)) == len(fresh)
    assert not any(needs_rebalance(key) for key in fresh)


@pytest.mark.parametrize(
    ("before", "after", "count"), [(None, None, 5), ("a0", None, 7), (None, "a0", 3), ("a0", "a1", 9)]
)
def test_n_keys_between_match_the_reference(before: str | None, after: str | None, count: int) -> None:
    assert keys_between(before, after, count) == fractional_indexing.generate_n_keys_between(before, after, count)


def test_inserting_into_one_gap_again_and_again_eventually_asks_for_a_rebalance() -> None:
    low, high = key_between(None, None), None
    high = key_between(low, None)
    for _ in range(1_000):
        low = key_between(low, high)
        if needs_rebalance(low):
            break
    assert len(low) == MAX_KEY_CHARS + 1


def test_a_thousand_appends_keep_keys_short() -> None:
    keys = keys_between(None, None, 1_000)
    assert max(map(len, keys)) <= 3


@pytest.mark.parametrize(
    ("before", "after"),
    [("a1", "a1"), ("a2", "a1"), ("a10", None), ("", None), ("a0 ", None), ("A" + "0" * 26, None), (None, "!x")],
)
def test_keys_without_room_between_them_are_refused(before: str | None, after: str | None) -> None:
    with pytest.raises(OrderKeyError):
        key_between(before, after)


def test_a_key_with_room_is_between_or_none_when_the_group_needs_a_rebalance() -> None:
    assert key_with_room("a0", "a1") == key_between("a0", "a1")
    assert key_with_room("a0", "a0") is None  # a tie: two moves raced to one gap
    assert key_with_room("a0", crowded_after("a0")) is None  # as ~370 moves into one gap leave it
    assert key_with_room(None, None) == key_between(None, None)
