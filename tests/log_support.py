"""The log lines an app writes, as production formats them, for the tests (unit and integration) that read the log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def formatted_log_lines() -> Iterator[list[str]]:
    """Every record the root logger handles meanwhile, formatted by its first handler's formatter:
    the app's own, once an app has configured logging."""
    root = logging.getLogger()
    handler = _ListHandler()
    handler.setFormatter(root.handlers[0].formatter)
    root.addHandler(handler)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
