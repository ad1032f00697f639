"""Order keys as many moves leave them, for tests that force a rebalance."""

from __future__ import annotations

from todo_api.domain.ordering import key_between, needs_rebalance


def crowded_after(key: str) -> str:
    """The key that moving again and again into the gap right after `key` leaves (about 370 moves:
    a key grows a character every six or so): the next key between them would be longer than
    MAX_KEY_CHARS, so the next move there must rebalance."""
    after = key_between(key, None)
    while not needs_rebalance(key_between(key, after)):
        after = key_between(key, after)
    return after
