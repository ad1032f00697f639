"""The person's own order: rank strings that always leave room between two neighbours.

A position is a string compared byte by byte (the column is `COLLATE "C"`), so moving one task
writes one row: its new key lies between its new neighbours' keys. Keys are David Greenspan's
fractional indexing (the scheme of rocicorp's and httpie's `fractional-indexing` packages, which
the tests check these against): a variable-length integer part whose first character gives its
length, then a base-62 fraction with no trailing zero. Appending at either end steps the integer
part, so a list built by appends grows its keys logarithmically; inserting between two keys
halves the fraction, so repeated inserts into one gap grow them linearly, and a key longer than
`MAX_KEY_CHARS` asks for a rebalance: the siblings get fresh, evenly spread keys.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Final

DIGITS: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MAX_KEY_CHARS: Final = 64  # past this the siblings are rebalanced; the column allows more (tables.py)
_ZERO, _LAST = DIGITS[0], DIGITS[-1]
_SMALLEST_INTEGER: Final = "A" + _ZERO * 26
_INDEX = {digit: index for index, digit in enumerate(DIGITS)}


class OrderKeyError(ValueError):
    """Two keys with no room between them: equal, out of order, or not keys at all."""


def key_between(before: str | None, after: str | None) -> str:
    """A key strictly between `before` and `after`; None stands for either end of the list."""
    if before is not None:
        _validate(before)
    if after is not None:
        _validate(after)
    if before is not None and after is not None and before >= after:
        raise OrderKeyError(f"{before!r} is not before {after!r}")
    if before is None:
        if after is None:
            return "a" + _ZERO
        integer, fraction = _split(after)
        if integer == _SMALLEST_INTEGER:
            return integer + _midpoint("", fraction)
        if integer < after:
            return integer
        smaller = _decrement(integer)
        if smaller is None:
            raise OrderKeyError("no key fits before the smallest one")
        return smaller
    integer, fraction = _split(before)
    if after is None:
        larger = _increment(integer)
        return integer + _midpoint(fraction, None) if larger is None else larger
    after_integer, after_fraction = _split(after)
    if integer == after_integer:
        return integer + _midpoint(fraction, after_fraction)
    larger = _increment(integer)
    if larger is None:
        raise OrderKeyError("no key fits after the largest one")
    return larger if larger < after else integer + _midpoint(fraction, None)


def keys_between(before: str | None, after: str | None, count: int) -> list[str]:
    """`count` ordered keys between two keys, spread evenly: what a rebalance hands out."""
    if count <= 0:
        return []
    if count == 1:
        return [key_between(before, after)]
    if after is None:
        keys = [key_between(before, None)]
        while len(keys) < count:
            keys.append(key_between(keys[-1], None))
        return keys
    if before is None:
        keys = [key_between(None, after)]
        while len(keys) < count:
            keys.append(key_between(None, keys[-1]))
        return keys[::-1]
    middle = count // 2
    key = key_between(before, after)
    return [*keys_between(before, key, middle), key, *keys_between(key, after, count - middle - 1)]


def needs_rebalance(key: str) -> bool:
    return len(key) > MAX_KEY_CHARS


def key_with_room(low: str | None, high: str | None) -> str | None:
    """A key strictly between two neighbours, or None when their group must be rebalanced first:
    the neighbours are equal (two moves raced to one gap) or the key would pass MAX_KEY_CHARS."""
    try:
        key = key_between(low, high)
    except OrderKeyError:
        return None
    return None if needs_rebalance(key) else key


def is_strictly_ordered(keys: Sequence[str]) -> bool:
    return all(left < right for left, right in itertools.pairwise(keys))


def _midpoint(low: str, high: str | None) -> str:
    """A fraction strictly between two fractions (no trailing zeros); None is one."""
    if high is not None:
        common = 0
        while common < len(high) and (low[common] if common < len(low) else _ZERO) == high[common]:
            common += 1
        if common:
            return high[:common] + _midpoint(low[common:], high[common:])
    low_digit = _INDEX[low[0]] if low else 0
    high_digit = _INDEX[high[0]] if high is not None else len(DIGITS)
    if high_digit - low_digit > 1:
        return DIGITS[(low_digit + high_digit + 1) // 2]
    if high is not None and len(high) > 1:
        return high[:1]
    return DIGITS[low_digit] + _midpoint(low[1:], None)


def _integer_length(head: str) -> int:
    if "a" <= head <= "z":
        return ord(head) - ord("a") + 2
    if "A" <= head <= "Z":
        return ord("Z") - ord(head) + 2
    raise OrderKeyError(f"not an order key head: {head!r}")


def _split(key: str) -> tuple[str, str]:
    length = _integer_length(key[0])
    if length > len(key):
        raise OrderKeyError(f"not an order key: {key!r}")
    return key[:length], key[length:]


def _validate(key: str) -> None:
    if not key or key == _SMALLEST_INTEGER or any(char not in _INDEX for char in key):
        raise OrderKeyError(f"not an order key: {key!r}")
    if _split(key)[1].endswith(_ZERO):
        raise OrderKeyError(f"not an order key (trailing zero): {key!r}")


def _increment(integer: str) -> str | None:
    head, digits = integer[0], list(integer[1:])
    for index in range(len(digits) - 1, -1, -1):
        if digits[index] != _LAST:
            digits[index] = DIGITS[_INDEX[digits[index]] + 1]
            return head + "".join(digits)
        digits[index] = _ZERO
    if head == "Z":
        return "a" + _ZERO
    if head == "z":
        return None
    head = chr(ord(head) + 1)
    if head > "a":
        digits.append(_ZERO)
    else:
        digits.pop()
    return head + "".join(digits)


def _decrement(integer: str) -> str | None:
    head, digits = integer[0], list(integer[1:])
    for index in range(len(digits) - 1, -1, -1):
        if digits[index] != _ZERO:
            digits[index] = DIGITS[_INDEX[digits[index]] - 1]
            return head + "".join(digits)
        digits[index] = _LAST
    if head == "a":
        return "Z" + _LAST
    if head == "A":
        return None
    head = chr(ord(head) - 1)
    if head < "Z":
        digits.append(_LAST)
    else:
        digits.pop()
    return head + "".join(digits)
