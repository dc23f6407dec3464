"""The database kernel both bot/ and actions/ import: declarative base, timestamps, engine, sessions,
migrations. One database holds the directory (actions/models.py) and the adapter's cases (bot/models.py).

Callers own their unit of work: `with sessionmaker_for(url).begin() as session: ...`. Query functions
take the session and never commit or close it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, DateTime, Dialect, Engine, Float, MetaData, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from actions.settings import DEFAULT_TIMEOUTS, MIGRATION_TIMEOUTS, ROOT, Timeouts, url_for_display

logger = logging.getLogger(__name__)

# PostgreSQL advisory lock key (any 64-bit number of our own): the bytes of "SIGNPOST".
MIGRATION_LOCK_KEY = int.from_bytes(b"SIGNPOST", "big")
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Timestamp(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every engine (SQLite would give it back naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        return value.astimezone(dt.UTC) if value is not None and value.tzinfo else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None or value.tzinfo:
            return value
        return value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    """Declarative base with the constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # float stays Float (FLOAT), as migration 0001 made it: SQLAlchemy 2.1 maps it to Double by default.
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, float: Float}


# SQLite's busy timeout where no lock timeout is set (migrations: the flock beside the file orders them).
SQLITE_LONGEST_WAIT_SECONDS = 600.0


class SchemaNotReadyError(RuntimeError):
    """The database's schema is not at the newest migration; the message says what to run."""


@lru_cache(maxsize=16)
def engine_for(url: str, timeouts: Timeouts = DEFAULT_TIMEOUTS) -> Engine:
    """Return the process's engine for a database URL and timeouts (SQLite files get their folder, FK
    checks and WAL). Every connection carries the timeouts: no call waits on the database for ever."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        busy = timeouts.lock if timeouts.lock is not None else SQLITE_LONGEST_WAIT_SECONDS
        engine = create_engine(url, connect_args={"timeout": busy})
        event.listen(engine, "connect", _sqlite_settings)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_timeout=timeouts.connect or 30.0,
            connect_args=postgres_timeouts(timeouts, parsed.query.get("options")),
        )
    return create_engine(url, pool_pre_ping=True)


def postgres_timeouts(timeouts: Timeouts, options: str | tuple[str, ...] | None = None) -> dict[str, Any]:
    """Return libpq connection parameters for the timeouts (kept beside any options the URL sets)."""
    settings = [options] if isinstance(options, str) else list(options or ())
    for name, seconds in (("statement_timeout", timeouts.statement), ("lock_timeout", timeouts.lock)):
        settings.append(f"-c {name}={round(seconds * 1000) if seconds is not None else 0}")
    found: dict[str, Any] = {"options": " ".join(settings)}
    if timeouts.connect is not None:
        found["connect_timeout"] = max(1, math.ceil(timeouts.connect))  # libpq takes whole seconds
    return found


def _sqlite_settings(dbapi_connection: Any, _record: Any) -> None:
    """Foreign keys on; write-ahead logging, so the adapter and the action server read while the other
    writes and a commit costs no fsync of the main file (about 1 ms each in the default mode here)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # kept in the file: every later connection uses it too
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL's recommended level: durable except on power loss
    cursor.close()


def sessionmaker_for(url: str, timeouts: Timeouts = DEFAULT_TIMEOUTS) -> sessionmaker[Session]:
    """Return a session factory bound to the URL's engine (with these timeouts)."""
    return sessionmaker(engine_for(url, timeouts), expire_on_commit=False)


def alembic_config(url: str) -> Config:
    """Return the Alembic configuration (alembic.ini) pointed at this database."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = url
    return config


@contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """Hold this database's migration lock, so that processes starting at once migrate and seed in turn.

    PostgreSQL: a session advisory lock, on a connection of its own. SQLite: an flock on a file beside the
    database (`<file>.lock`). Either is released if the process dies.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        with engine_for(url, MIGRATION_TIMEOUTS).connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
        return
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        yield  # an in-memory database belongs to one process
        return
    path = Path(parsed.database + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def run_migrations(url: str) -> None:
    """Bring the database schema up to the newest migration; the caller holds `migration_lock`."""
    command.upgrade(alembic_config(url), "head")


def upgrade(url: str) -> None:
    """Bring the database schema up to the newest migration, one process at a time."""
    with migration_lock(url):
        run_migrations(url)


def analyze(url: str) -> None:
    """Refresh the query planner's statistics after a bulk import (PostgreSQL and SQLite both plan
    the directory queries badly on a freshly loaded table until this runs)."""
    with engine_for(url, MIGRATION_TIMEOUTS).begin() as connection:
        connection.execute(text("ANALYZE"))


def check_schema(url: str, timeouts: Timeouts = DEFAULT_TIMEOUTS) -> None:
    """Raise SchemaNotReadyError, saying what to run, unless the database is at the newest migration.

    Processes call this when they start (and the action server before its first query): migrating is
    `make ready`'s work, done before any server starts, never on a request.
    """
    heads = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    with engine_for(url, timeouts).connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if current != heads:
        found = ", ".join(sorted(current)) or "no migration at all"
        raise SchemaNotReadyError(
            f"the database at {url_for_display(url)} is not up to date (it is at {found}; this code needs "
            f"{', '.join(sorted(heads))}). Run `make ready` (or `.venv/bin/python -m actions.directory "
            "ready`) with the same DATABASE_URL, then start again"
        )
