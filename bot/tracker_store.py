"""Where Rasa keeps conversations, read from its endpoints file as Rasa 3.6 resolves it.

`/forget` and the retention purge delete from the store at TRACKER_STORE_URL. If Rasa keeps its
conversations anywhere else they would report success and delete nothing, so the adapter checks at
start-up that both name the same database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

ENV_REFERENCE = re.compile(r"\$\{([^}]*)\}")
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
# Rasa's own SQL store, and ours (Rasa's, with database errors that never quote an event).
SQL_STORES = {"sql", "rasa_addons.tracker_store.sqltrackerstore"}


class TrackerStoreError(ValueError):
    """Rasa's tracker store can't be read, isn't SQL, or isn't the adapter's; the message says which."""


def _expand(value: Any, env: Mapping[str, str]) -> Any:
    """Return a value with each ${NAME} replaced from env, as Rasa does (an unset name is an error)."""
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(1) not in env:
            raise TrackerStoreError(f"the tracker_store refers to ${{{match.group(1)}}}, which is not set")
        return env[match.group(1)]

    return ENV_REFERENCE.sub(replace, value)


def rasa_tracker_store_url(endpoints: Path, env: Mapping[str, str]) -> str:
    """Return the URL of the SQL tracker store Rasa uses with this endpoints file and environment."""
    config = yaml.safe_load(endpoints.read_text(encoding="utf-8")) or {}
    store = config.get("tracker_store")
    if not store:
        raise TrackerStoreError(
            f"{endpoints.name} has no tracker_store: Rasa would keep conversations in memory, out of reach"
        )
    store = {key: _expand(value, env) for key, value in store.items()}
    if str(store.get("type", "")).lower() not in SQL_STORES:
        raise TrackerStoreError(
            f"{endpoints.name}'s tracker_store is type {store.get('type')!r}; only an SQL store (type: SQL) "
            "can be cleared"
        )
    host = str(store.get("url") or store.get("host") or "")
    if "://" in host:  # SQLTrackerStore.get_db_url: a whole URL in `url` wins over the other fields
        return host
    name, _, port = host.partition(":")
    return URL.create(
        str(store.get("dialect") or "sqlite"),
        username=store.get("username"),
        password=store.get("password"),
        host=name or None,
        port=int(port) if port else store.get("port"),
        database=str(store.get("db") or "rasa.db"),
    ).render_as_string(hide_password=False)


def _identity(url: str, here: Path) -> tuple[object, ...]:
    """Return what makes a database URL name one database: backend, host, port and database (any user)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        return (backend, str((here / database).resolve()) if database not in {"", ":memory:"} else database)
    port = parsed.port or DEFAULT_PORTS.get(backend)
    return (backend, parsed.host or "localhost", port, parsed.database)


def check_same_store(adapter_url: str, endpoints: Path, env: Mapping[str, str], here: Path) -> None:
    """Raise TrackerStoreError unless Rasa, with this endpoints file, keeps conversations at adapter_url."""
    rasa_url = rasa_tracker_store_url(endpoints, env)
    try:
        same = _identity(rasa_url, here) == _identity(adapter_url, here)
    except ArgumentError:
        raise TrackerStoreError(
            f"{endpoints.name}'s tracker_store is not a database URL Rasa can use"
        ) from None
    if not same:
        shown = make_url(rasa_url).render_as_string(hide_password=True)
        raise TrackerStoreError(f"Rasa keeps conversations in {shown} ({endpoints.name}, tracker_store)")
