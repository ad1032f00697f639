"""One access line per request, unless ACCESS_LOG is off."""

from __future__ import annotations

import json

import pytest

from tests.unit.http.backend import FakeBackend
from tests.unit.http.conftest import client_of
from todo_api.adapters.http.app import HttpOptions, create_http_app


@pytest.mark.parametrize(("access_log", "expected"), [(True, 1), (False, 0)])
async def test_the_access_line_follows_the_access_log_option(
    json_lines: list[str], access_log: bool, expected: int
) -> None:
    app = create_http_app(FakeBackend().use_cases, HttpOptions(cursor_key="k" * 40, access_log=access_log))
    async with client_of(app) as client:
        response = await client.get("/healthz")

    access = [json.loads(line) for line in json_lines if '"event":"request"' in line]
    assert len(access) == expected
    if access:
        assert (access[0]["path"], access[0]["status"]) == ("/healthz", 200)
        assert access[0]["request_id"] == response.headers["x-request-id"]
