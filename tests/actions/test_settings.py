"""The action server's settings: read from the environment, and never shown with a password."""

from __future__ import annotations

from pathlib import Path

import pytest

from actions import settings as settings_module
from actions.settings import DEFAULT_DATABASE_PATH, environment, get_settings, load_settings


def test_settings_repr_hides_the_database_password() -> None:
    settings = load_settings({"DATABASE_URL": "postgresql://signpost:db-password@db.internal:5432/signpost"})
    assert "db-password" not in repr(settings)
    assert "db.internal:5432/signpost" in repr(settings)
    assert settings.database_url == "postgresql+psycopg://signpost:db-password@db.internal:5432/signpost"


def test_a_process_started_directly_reads_dot_env_beneath_its_environment(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# comment\nDATABASE_URL=sqlite:///from-dot-env.db\nTRACKER_STORE_URL=sqlite:///t$$x.db\nRASA_URL=\n"
    )
    seen = environment({"DATABASE_URL": "sqlite:///from-environment.db", "RASA_URL": ""}, env_file)
    assert seen["DATABASE_URL"] == "sqlite:///from-environment.db"  # the environment wins over .env
    assert seen["TRACKER_STORE_URL"] == "sqlite:///t$x.db"  # .env fills in what the environment lacks
    assert (
        load_settings(environment({}, tmp_path / "absent")).database_url
        == f"sqlite:///{DEFAULT_DATABASE_PATH}"
    )
    assert load_settings(environment({}, env_file)).database_url == "sqlite:///from-dot-env.db"


def test_get_settings_reads_the_repositorys_dot_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DATABASE_URL=sqlite:///from-dot-env.db\n")
    monkeypatch.setattr(settings_module, "ENV_FILE", env_file)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        assert get_settings().database_url == "sqlite:///from-dot-env.db"
    finally:
        get_settings.cache_clear()
