"""Alembic environment: the URL from the caller (actions.db.alembic_config) or DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from actions import models as _directory_tables  # noqa: F401 - the directory's tables, on the kernel's base
from actions.db import Base, engine_for
from actions.settings import MIGRATION_TIMEOUTS, get_settings
from bot import models as _case_tables  # noqa: F401 - the adapter's case tables share the base

target_metadata = Base.metadata


def database_url() -> str:
    """Return the URL the caller asked for, else the configured one."""
    url = context.config.attributes.get("database_url")
    return str(url) if url else get_settings().database_url


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Compare only our own tables: Rasa's tracker store (`events`) may share a PostgreSQL database."""
    return not (type_ == "table" and name not in target_metadata.tables)


def run_migrations_offline() -> None:
    """Emit SQL for the URL's dialect without connecting."""
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Apply migrations over a connection (SQLite through batch mode, so ALTERs work there too)."""
    engine = engine_for(database_url(), MIGRATION_TIMEOUTS)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            without_foreign_keys(connection)
        try:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=sqlite,
                compare_type=True,
                include_name=include_name,
            )
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if sqlite:
                with_foreign_keys(connection)


def without_foreign_keys(connection: Connection) -> None:
    """Stop SQLite enforcing foreign keys while batch mode copies a table: dropping the old copy would
    otherwise cascade to every row that refers to it (SQLite's advice for rebuilding a table)."""
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")  # outside a transaction, or SQLite ignores it
    connection.commit()


def with_foreign_keys(connection: Connection) -> None:
    """Check that the migrated rows still refer to rows that exist, then enforce foreign keys again."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    connection.exec_driver_sql("PRAGMA foreign_keys=ON")  # the connection goes back to the pool
    connection.commit()
    if broken:
        raise RuntimeError(
            f"after migrating, {len(broken)} row(s) refer to rows that do not exist: {broken[:5]}"
        )


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
