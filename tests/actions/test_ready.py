"""`python -m actions.directory ready` from several processes at once, as `make run-rasa`, `make run-actions`
and `make run-bot` started together do: every one succeeds, and the seed is loaded once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from actions.db import engine_for
from actions.hsds_format import SEED_FILE
from actions.models import Service
from tests.conftest import postgres_url

ROOT = Path(__file__).resolve().parent.parent.parent
AT_ONCE = 3


def ready_at_once(url: str, count: int = AT_ONCE) -> list[subprocess.CompletedProcess[str]]:
    """Run `ready` in `count` processes started together; return how each ended."""
    env = {**os.environ, "DATABASE_URL": url.replace("postgresql+psycopg://", "postgresql://")}
    command = [sys.executable, "-m", "actions.directory", "ready"]
    processes = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(count)
    ]
    done = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(command, process.returncode, out, err))
    return done


def seed_size() -> int:
    """Return how many services the national seed holds."""
    records = json.loads(SEED_FILE.read_text(encoding="utf-8"))
    assert records, "the seed file holds no services"
    return len(records)


def assert_ready_once(url: str, done: list[subprocess.CompletedProcess[str]]) -> None:
    """Every process succeeded, exactly one loaded the seed, and the directory holds it once."""
    for result in done:
        assert result.returncode == 0, result.stderr
    assert sum("national services loaded" in result.stdout for result in done) == 1
    with engine_for(url).connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Service)) == seed_size()
        assert connection.scalar(text("SELECT count(*) FROM alembic_version")) == 1


def test_three_processes_readying_a_fresh_sqlite_database_at_once_all_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert_ready_once(url, ready_at_once(url))


@pytest.fixture
def fresh_postgres_database() -> Iterator[str]:
    """An empty PostgreSQL database of its own (dropped after), so other tests' schema is untouched."""
    base = postgres_url()
    if base is None:
        pytest.skip("TEST_DATABASE_URL is not set (a PostgreSQL server to create a database in)")
    name = f"signpost_ready_{uuid.uuid4().hex[:12]}"
    admin = engine_for(base).execution_options(isolation_level="AUTOCOMMIT")
    quoted = admin.dialect.identifier_preparer.quote(name)  # an identifier: DDL takes no parameters
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {quoted}"))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        engine_for(url).dispose()
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE {quoted} WITH (FORCE)"))


def test_three_processes_readying_a_fresh_postgresql_database_at_once_all_succeed(
    fresh_postgres_database: str,
) -> None:
    assert_ready_once(fresh_postgres_database, ready_at_once(fresh_postgres_database))
