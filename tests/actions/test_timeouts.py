"""The database never keeps a caller waiting past its settings: connect, statement and lock timeouts.

PostgreSQL's statement_timeout and lock_timeout run when TEST_DATABASE_URL is set; its connect_timeout
needs only a port that never answers; SQLite has a lock (busy) timeout only. No test measures time: the
error's kind says which limit fired.
"""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from actions.db import engine_for, sessionmaker_for
from actions.settings import SettingsError, Timeouts, load_settings
from tests.conftest import postgres_url

NEEDS_POSTGRES = pytest.mark.skipif(
    postgres_url() is None, reason="TEST_DATABASE_URL is not set: PostgreSQL's timeouts need PostgreSQL"
)


def test_the_timeouts_are_settings_with_defaults() -> None:
    assert load_settings({}).database_timeouts == Timeouts()
    chosen = load_settings(
        {
            "DATABASE_CONNECT_TIMEOUT_SECONDS": "2",
            "DATABASE_STATEMENT_TIMEOUT_SECONDS": "7.5",
            "DATABASE_LOCK_TIMEOUT_SECONDS": "1",
        }
    ).database_timeouts
    assert chosen == Timeouts(connect=2.0, statement=7.5, lock=1.0)
    with pytest.raises(SettingsError, match="DATABASE_STATEMENT_TIMEOUT_SECONDS"):
        load_settings({"DATABASE_STATEMENT_TIMEOUT_SECONDS": "soon"})


def test_an_sqlite_write_waits_no_longer_than_the_lock_timeout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    with engine_for(url).begin() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
    holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write in progress
    try:
        with (
            pytest.raises(OperationalError, match="locked"),
            sessionmaker_for(url, Timeouts(lock=0.1)).begin() as session,
        ):
            session.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@NEEDS_POSTGRES
def test_a_statement_past_its_timeout_is_cancelled_on_postgresql() -> None:
    url = postgres_url()
    assert url
    with (
        pytest.raises(OperationalError, match="statement timeout"),
        sessionmaker_for(url, Timeouts(statement=0.2)).begin() as session,
    ):
        session.execute(text("SELECT pg_sleep(30)"))


@NEEDS_POSTGRES
def test_a_lock_held_elsewhere_is_waited_for_no_longer_than_the_lock_timeout_on_postgresql() -> None:
    url = postgres_url()
    assert url
    with engine_for(url).begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS timeout_probe (x INTEGER)"))
    try:
        with engine_for(url).connect() as holder:
            holder.execute(text("BEGIN"))
            holder.execute(text("LOCK TABLE timeout_probe IN ACCESS EXCLUSIVE MODE"))
            with (
                pytest.raises(OperationalError, match="lock timeout"),
                sessionmaker_for(url, Timeouts(lock=0.2, statement=30)).begin() as session,
            ):
                session.execute(text("SELECT * FROM timeout_probe"))
            holder.rollback()
    finally:
        with engine_for(url).begin() as connection:
            connection.execute(text("DROP TABLE timeout_probe"))


def test_a_postgresql_server_that_never_answers_fails_within_the_connect_timeout() -> None:
    # A port that takes the connection and never speaks: without connect_timeout the client waits forever.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        url = f"postgresql+psycopg://nobody@127.0.0.1:{port}/none"
        with (
            pytest.raises(OperationalError, match="timeout"),
            sessionmaker_for(url, Timeouts(connect=1)).begin() as session,
        ):
            session.execute(text("SELECT 1"))
