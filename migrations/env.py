"""Alembic, async: migrates DATABASE_URL, the URL a caller (the tests) set, or the embedded server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from todo_api.adapters.sql.embedded import embedded_postgres
from todo_api.adapters.sql.engine import database_target
from todo_api.adapters.sql.tables import metadata
from todo_api.config import Settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


@contextmanager
def _database_url() -> Iterator[str]:
    explicit = config.get_main_option("sqlalchemy.url")
    if explicit:
        yield explicit
        return
    settings = Settings()
    if settings.database_url is not None:
        yield settings.database_url.get_secret_value()
        return
    with embedded_postgres(settings.embedded_data_dir) as url:
        yield url


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_server_default=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run(url: str) -> None:
    target = database_target(url)
    engine = create_async_engine(target.url, connect_args=target.connect_args, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run against a database")
with _database_url() as database_url:
    asyncio.run(_run(database_url))
