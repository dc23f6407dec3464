"""The action server's settings, read once from the environment (see README "Configuration")."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_PATH = ROOT / "var" / "signpost.db"
DEFAULT_GEO_TABLES = ROOT / "build" / "geo" / "places.json"


class SettingsError(ValueError):
    """A missing or bad setting, with a message saying how to fix it."""


@dataclass(frozen=True)
class Settings:
    """Typed, frozen configuration for the action server and the directory command."""

    database_url: str
    geo_tables: Path


def sqlalchemy_url(env: Mapping[str, str], name: str, default: str) -> str:
    """Return the database URL a variable names (postgresql:// read with psycopg 3), or its default."""
    url = env.get(name, "").strip() or default
    if "://" not in url:
        raise SettingsError(
            f"{name} must be an SQLAlchemy URL such as sqlite:///var/signpost.db or "
            f"postgresql://user@host/db, got {url!r}"
        )
    if url.startswith("postgresql://"):  # psycopg 3 here; Rasa's own environment reads it with psycopg2
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def load_settings(env: Mapping[str, str]) -> Settings:
    """Return settings from an environment mapping, or raise SettingsError saying what is wrong."""
    url = sqlalchemy_url(env, "DATABASE_URL", f"sqlite:///{DEFAULT_DATABASE_PATH}")
    return Settings(database_url=url, geo_tables=DEFAULT_GEO_TABLES)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process's settings, read from the environment once."""
    return load_settings(os.environ)
