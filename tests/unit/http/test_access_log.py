"""One access line per request, unless ACCESS_LOG is off."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from tests.unit.http.backend import FakeBackend
from tests.unit.http.conftest import client_of
from todo_api.adapters.http.app import HttpOptions, create_http_app
from todo_api.logging import configure_logging


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def lines() -> Iterator[list[str]]:
    configure_logging(json_logs=True, level="INFO")
    root = logging.getLogger()
    handler = _Lines()
    handler.setFormatter(root.handlers[0].formatter)
    root.addHandler(handler)
    yield handler.lines
    root.removeHandler(handler)


@pytest.mark.parametrize(("access_log", "expected"), [(True, 1), (False, 0)])
async def test_the_access_line_follows_the_access_log_option(lines: list[str], access_log: bool, expected: int) -> None:
    app = create_http_app(FakeBackend().use_cases, HttpOptions(cursor_key="k" * 40, access_log=access_log))
    async with client_of(app) as client:
        response = await client.get("/healthz")

    access = [json.loads(line) for line in lines if '"event":"request"' in line]
    assert len(access) == expected
    if access:
        assert (access[0]["path"], access[0]["status"]) == ("/healthz", 200)
        assert access[0]["request_id"] == response.headers["x-request-id"]
