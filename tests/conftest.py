"""Fixtures every test folder shares: the test database.

The database is a fresh SQLite file, or PostgreSQL when TEST_DATABASE_URL is set (`.ci/run` sets it).
Each test that takes `session` runs inside a transaction that is rolled back at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from actions.db import engine_for, upgrade
from actions.settings import load_settings


def postgres_url() -> str | None:
    """Return the PostgreSQL URL to test against, if this machine has one."""
    raw = os.environ.get("TEST_DATABASE_URL", "").strip()
    return load_settings({"DATABASE_URL": raw}).database_url if raw else None


def reset_postgres(url: str) -> None:
    """Drop every table in the test database's public schema, so migrations start from empty."""
    with engine_for(url).begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated, empty database for this test run."""
    url = postgres_url()
    if url:
        reset_postgres(url)
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'directory.db'}"
    upgrade(url)
    return url


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    """A session whose work is rolled back after the test."""
    with engine_for(database_url).connect() as connection:
        transaction = connection.begin()
        with Session(bind=connection, join_transaction_mode="create_savepoint") as db:
            yield db
        transaction.rollback()


NO_BROWSER = "NO BROWSER"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say loudly when the web chat's browser tests could not run (no Chromium on this machine)."""
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if NO_BROWSER in str(getattr(report, "longrepr", ""))
    ]
    if skipped:
        terminalreporter.section("THE WEB CHAT WAS NOT TESTED IN A BROWSER", sep="!", red=True, bold=True)
        terminalreporter.write_line(
            f"{len(skipped)} browser tests skipped: no Chromium for Playwright. Install Debian's `chromium` "
            "(`.ci/run` does) or run `.venv/bin/playwright install chromium`, then `make test` again.",
            red=True,
            bold=True,
        )
