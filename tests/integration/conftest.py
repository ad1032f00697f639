"""Fixtures over a real PostgreSQL: one fresh, migrated database per run, emptied after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests.integration.database import asyncpg_dsn, create_database, drop_database, migrate, postgres_server
from todo_api.adapters.sql.tables import metadata
from todo_api.config import Settings
from todo_api.main import create_app

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"


def pytest_report_header() -> str:
    return "integration database: TEST_DATABASE_URL, else testcontainers (Docker), else embedded PostgreSQL"


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    with postgres_server() as (url, source):
        print(f"\nintegration tests run on PostgreSQL from {source}")
        yield url


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    url = create_database(server_url)
    migrate(url)
    yield url
    drop_database(server_url, url)


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "secret_key": TEST_SECRET,
        "cors_origins": ["http://spa.test"],
        "log_format": "json",
        "bcrypt_cost": 4,  # the cost is a setting; the tests prove behaviour, not bcrypt's slowness
        "throttle_signup_per_address": 10_000,
        "throttle_login_per_address": 10_000,
        # Tests run the workers' passes themselves (or a live server does): none in the background.
        "run_workers": False,
    }
    values.update(overrides)
    return Settings.model_validate(values)


@asynccontextmanager
async def two_instances(database_url: str, **overrides: object) -> AsyncIterator[tuple[httpx.AsyncClient, ...]]:
    """Two separately built apps (own connection pool, hasher, settings) sharing the test database."""
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(2):
            app = create_app(make_settings(**overrides), database_url=database_url)
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            clients.append(
                await stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url="http://test"))
            )
        yield tuple(clients)


@pytest.fixture(scope="session")
async def app(database_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(make_settings(), database_url=database_url)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection for asserting on rows; every table is emptied after the test."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    yield connection
    await connection.close()


@pytest.fixture(autouse=True)
async def _empty_tables(database_url: str) -> AsyncIterator[None]:
    yield
    tables = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    if tables:
        connection = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            await connection.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        finally:
            await connection.close()
