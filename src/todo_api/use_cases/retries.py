"""Bounded retries of one transaction when the database aborted it as a transient conflict.

Decorate a method that runs exactly one unit of work: after a serialization failure or deadlock
nothing of it was stored, so running it again is safe; after the last attempt the 503 goes out.
Never a use case of several transactions: a retry would repeat the ones that committed (count a
throttle twice, hash a password twice).
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from todo_api.domain.errors import TransientConflict

ATTEMPTS = 3
P = ParamSpec("P")
R = TypeVar("R")


def retry_transient(operation: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    @functools.wraps(operation)
    async def attempt(*args: P.args, **kwargs: P.kwargs) -> R:
        for number in range(1, ATTEMPTS + 1):
            try:
                return await operation(*args, **kwargs)
            except TransientConflict:
                if number == ATTEMPTS:
                    raise
                await asyncio.sleep(random.uniform(0.005, 0.02) * number)  # noqa: S311 - jitter, not secrecy
        raise AssertionError("unreachable")

    return attempt
