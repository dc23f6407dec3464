"""The action server's settings: read from the environment, and never shown with a password."""

from __future__ import annotations

from actions.settings import load_settings


def test_settings_repr_hides_the_database_password() -> None:
    settings = load_settings({"DATABASE_URL": "postgresql://signpost:db-password@db.internal:5432/signpost"})
    assert "db-password" not in repr(settings)
    assert "db.internal:5432/signpost" in repr(settings)
    assert settings.database_url == "postgresql+psycopg://signpost:db-password@db.internal:5432/signpost"
