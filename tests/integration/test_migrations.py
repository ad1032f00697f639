"""The migration chain: every revision upgrades, downgrades and upgrades again; no drift from tables.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from alembic.script import ScriptDirectory

from tests.integration.database import alembic_config, create_database, drop_database


@pytest.fixture
def empty_database(server_url: str) -> Iterator[str]:
    url = create_database(server_url)
    yield url
    drop_database(server_url, url)


def test_every_revision_upgrades_downgrades_and_upgrades_again(empty_database: str) -> None:
    config = alembic_config(empty_database)
    revisions = list(reversed(list(ScriptDirectory.from_config(config).walk_revisions())))
    assert revisions, "there is at least one revision"
    for revision in revisions:
        command.upgrade(config, revision.revision)
        command.downgrade(config, "-1")
        command.upgrade(config, revision.revision)


def test_the_migrated_schema_matches_the_tables_in_code(empty_database: str) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, "head")
    command.check(config)  # raises when autogenerate would find a difference


def test_downgrade_to_base_leaves_no_tables_behind(empty_database: str) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    command.upgrade(config, "head")
