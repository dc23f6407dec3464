"""Alembic environment: the URL from the caller (actions.db.alembic_config) or DATABASE_URL."""

from __future__ import annotations

from alembic import context

from actions.db import engine_for
from actions.models import Base
from actions.settings import get_settings
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
    engine = engine_for(database_url())
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            include_name=include_name,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
