"""Where the integration tests get a real PostgreSQL: TEST_DATABASE_URL, else testcontainers when a
Docker daemon answers, else the embedded server. Never a mock, never SQLite."""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy import make_url

from todo_api.adapters.sql.embedded import embedded_postgres

ROOT = Path(__file__).resolve().parents[2]


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


@contextmanager
def postgres_server() -> Iterator[tuple[str, str]]:
    """Yield (admin URL, where it came from)."""
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url, "TEST_DATABASE_URL"
    elif _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:18-alpine", driver=None) as container:
            yield container.get_connection_url(), "testcontainers"
    else:
        with tempfile.TemporaryDirectory(prefix="todo-api-test-") as data, embedded_postgres(Path(data) / "pg") as url:
            yield url, "embedded"


def asyncpg_dsn(url: str) -> str:
    """A plain libpq-style DSN asyncpg accepts, whatever driver suffix the URL carries."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def create_database(server_url: str, name: str | None = None) -> str:
    name = name or f"todo_test_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        connection = await asyncpg.connect(asyncpg_dsn(server_url))
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(create())
    return with_database(server_url, name)


def drop_database(server_url: str, url: str) -> None:
    name = make_url(url).database

    async def drop() -> None:
        connection = await asyncpg.connect(asyncpg_dsn(server_url))
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    asyncio.run(drop())


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def migrate(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
