"""Fixtures every unit test may use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.log_support import formatted_log_lines
from todo_api.logging import configure_logging


@pytest.fixture
def json_lines() -> Iterator[list[str]]:
    """The lines the app logs meanwhile, formatted as production writes them (JSON)."""
    configure_logging(json_logs=True, level="INFO")
    with formatted_log_lines() as lines:
        yield lines
