"""Migrations build the schema the models describe, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from actions.db import alembic_config, engine_for, upgrade
from actions.models import Base
from bot import models as _case_tables  # noqa: F401 - the case tables are part of the schema too


def test_upgrade_on_an_empty_database_creates_every_table(database_url: str) -> None:
    tables = set(inspect(engine_for(database_url)).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_autogenerate_finds_nothing_left_to_migrate(database_url: str) -> None:
    with engine_for(database_url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_upgrading_twice_changes_nothing(database_url: str) -> None:
    upgrade(database_url)
    with engine_for(database_url).connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    assert current == ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
