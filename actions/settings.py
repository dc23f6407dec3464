"""The action server's settings, read once from the environment (see README "Configuration")."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = ROOT / ".env"
ENV_LINE = re.compile(r"([A-Z_][A-Z0-9_]*)\s*=(.*)")
DEFAULT_DATABASE_PATH = ROOT / "var" / "signpost.db"
DEFAULT_GEO_TABLES = ROOT / "build" / "geo" / "places.json"
# Field metadata for settings' repr: a SECRET is never shown, a URL is shown without its password.
SECRET = {"repr": "secret"}
URL = {"repr": "url"}
HIDDEN = "***"


class SettingsError(ValueError):
    """A missing or bad setting, with a message saying how to fix it."""


@dataclass(frozen=True)
class Timeouts:
    """How long a database call may wait, in seconds (None: no limit).

    `connect`: to open a connection (PostgreSQL connect_timeout; also the wait for a pooled connection).
    `statement`: for one statement to run (PostgreSQL statement_timeout; SQLite has none).
    `lock`: for a lock another connection holds (PostgreSQL lock_timeout; SQLite's busy timeout).
    """

    connect: float | None = 5.0
    statement: float | None = 10.0
    lock: float | None = 5.0


DEFAULT_TIMEOUTS = Timeouts()
# Migrations and the migration lock wait for each other and may take long: only connecting is limited.
MIGRATION_TIMEOUTS = Timeouts(statement=None, lock=None)
TIMEOUT_SETTINGS = (
    ("connect", "DATABASE_CONNECT_TIMEOUT_SECONDS"),
    ("statement", "DATABASE_STATEMENT_TIMEOUT_SECONDS"),
    ("lock", "DATABASE_LOCK_TIMEOUT_SECONDS"),
)


@dataclass(frozen=True)
class Settings:
    """Typed, frozen configuration for the action server and the directory command."""

    database_url: str = field(metadata=URL)
    geo_tables: Path
    database_timeouts: Timeouts = DEFAULT_TIMEOUTS

    def __repr__(self) -> str:
        return redacted_repr(self)


def url_for_display(url: str) -> str:
    """Return a database URL with its password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return HIDDEN


def redacted_repr(settings: object) -> str:
    """Return a settings dataclass's repr with SECRET fields hidden and URL fields' passwords hidden."""
    shown = []
    for item in dataclasses.fields(settings):  # type: ignore[arg-type]
        value = getattr(settings, item.name)
        kind = item.metadata.get("repr")
        if kind == "secret" and value:
            value = HIDDEN
        elif kind == "url" and value:
            value = url_for_display(value)
        shown.append(f"{item.name}={value!r}")
    return f"{type(settings).__name__}({', '.join(shown)})"


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


def read_env_file(path: Path) -> dict[str, str]:
    """Return the NAME=value lines of an .env file as make reads them (`$$` is `$`); none if it is absent."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {}
    found = {}
    for line in lines:
        match = ENV_LINE.fullmatch(line.strip())
        if match:
            found[match.group(1)] = match.group(2).strip().replace("$$", "$")
    return found


def environment(env: Mapping[str, str] | None = None, env_file: Path | None = None) -> dict[str, str]:
    """Return what settings are read from: the environment wins over .env, which wins over defaults."""
    return {**read_env_file(env_file or ENV_FILE), **(os.environ if env is None else env)}


def database_timeouts(env: Mapping[str, str]) -> Timeouts:
    """Return the database timeouts the environment sets (each a positive number of seconds)."""
    chosen: dict[str, float] = {}
    for name, variable in TIMEOUT_SETTINGS:
        raw = env.get(variable, "").strip()
        if not raw:
            continue
        try:
            chosen[name] = float(raw)
        except ValueError:
            chosen[name] = -1.0
        if not 0 < chosen[name] < 86_400:
            raise SettingsError(f"{variable} must be a positive number of seconds, got {raw!r}")
    return dataclasses.replace(DEFAULT_TIMEOUTS, **chosen)


def load_settings(env: Mapping[str, str]) -> Settings:
    """Return settings from an environment mapping, or raise SettingsError saying what is wrong."""
    url = sqlalchemy_url(env, "DATABASE_URL", f"sqlite:///{DEFAULT_DATABASE_PATH}")
    return Settings(database_url=url, geo_tables=DEFAULT_GEO_TABLES, database_timeouts=database_timeouts(env))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process's settings, read from the environment (and .env beneath it) once."""
    return load_settings(environment())
