"""Seed, settings and gazetteer fixtures for the directory tests (database ones: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from actions.hsds_format import SEED_FILE
from actions.hsds_read import read_records
from actions.hsds_write import ensure_ready, import_records
from actions.locate import Gazetteer, gazetteer
from actions.settings import DEFAULT_GEO_TABLES, get_settings


@pytest.fixture
def seeded(session: Session) -> Session:
    """The session with the project's seed services loaded."""
    import_records(session, read_records(SEED_FILE))
    return session


@pytest.fixture
def fresh_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty SQLite database file, set as DATABASE_URL for code that reads the settings."""
    url = f"sqlite:///{tmp_path / 'signpost.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


@pytest.fixture
def ready_url(fresh_url: str) -> str:
    """The empty database migrated and seeded, as `make ready` leaves it before the action server starts."""
    ensure_ready(fresh_url)
    return fresh_url


@pytest.fixture(scope="session")
def places() -> Gazetteer:
    """The real location tables built by `make setup` (scripts/build_geo.py)."""
    return gazetteer(DEFAULT_GEO_TABLES)
