"""Fixtures every unit test may use."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from todo_api.logging import configure_logging


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def json_lines() -> Iterator[list[str]]:
    """The lines the app logs meanwhile, formatted as production writes them (JSON)."""
    configure_logging(json_logs=True, level="INFO")
    root = logging.getLogger()
    handler = _Lines()
    handler.setFormatter(root.handlers[0].formatter)
    root.addHandler(handler)
    yield handler.lines
    root.removeHandler(handler)
