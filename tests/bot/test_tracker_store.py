"""/forget clears Rasa's conversations only if the adapter's TRACKER_STORE_URL is the store Rasa uses: the
adapter reads Rasa's endpoints file as Rasa 3.6 resolves it, and refuses to start when they differ."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import ROOT, SettingsError, load_settings
from bot.tracker_store import rasa_tracker_store_url

KEY = "k" * 40
TRANSCRIPT_KEY = "wJmQlB0KkBd1mV7mS4mF9lY0b8GqRt5nqvG3mZb2yUQ="
BASE = {"PSEUDONYM_KEY": KEY, "TRANSCRIPT_KEYS": TRANSCRIPT_KEY}
OURS = "tracker_store:\n  type: rasa_addons.tracker_store.SQLTrackerStore\n"  # Rasa's SQL store, quieter


def endpoints(tmp_path: Path, tracker_store: str) -> Path:
    path = tmp_path / "endpoints.yml"
    path.write_text('action_endpoint:\n  url: "http://localhost:5055/webhook"\n' + tracker_store)
    return path


def test_the_repositorys_endpoint_files_use_the_adapters_tracker_store() -> None:
    for name in ("endpoints.yml", "endpoints.prod.yml"):
        env = {**BASE, "RASA_ENDPOINTS": name, "TRACKER_STORE_URL": "postgresql://rasa@db.internal:5432/rasa"}
        assert load_settings(env).rasa_endpoints == ROOT / name
    default = load_settings(BASE)  # endpoints.yml's ${TRACKER_STORE_URL} is the adapter's default too
    assert default.rasa_endpoints == ROOT / "endpoints.yml"


def test_a_tracker_store_elsewhere_stops_start_up_with_a_clear_message(tmp_path: Path) -> None:
    path = endpoints(tmp_path, "tracker_store:\n  type: SQL\n  url: postgresql://rasa:pw@other-host/rasa\n")
    env = {**BASE, "RASA_ENDPOINTS": str(path), "TRACKER_STORE_URL": "postgresql://rasa:pw@db.internal/rasa"}
    with pytest.raises(SettingsError, match="TRACKER_STORE_URL") as raised:
        load_settings(env)
    assert "other-host" in str(raised.value) and "/forget" in str(raised.value)
    assert "pw" not in str(raised.value)


@pytest.mark.parametrize(
    ("tracker_store", "problem"),
    [
        ("", "no tracker_store"),  # Rasa keeps conversations in memory
        ("tracker_store:\n  type: redis\n  url: localhost\n", "SQL"),
        ("tracker_store:\n  type: SQL\n  url: ${TRACKER_STORE_URL}\n  db: other\n", None),  # url wins
        (OURS + "  url: ${TRACKER_STORE_URL}\n", None),
        ("tracker_store:\n  type: SQL\n", "rasa.db"),  # Rasa's own default: rasa.db where it runs
        ("tracker_store:\n  type: SQL\n  url: ${RASA_STORE}\n", "RASA_STORE"),  # not set here
    ],
)
def test_only_an_sql_store_at_the_same_url_passes(
    tmp_path: Path, tracker_store: str, problem: str | None
) -> None:
    env = {**BASE, "RASA_ENDPOINTS": str(endpoints(tmp_path, tracker_store))}
    if problem is None:
        load_settings(env)
        return
    with pytest.raises(SettingsError, match=problem):
        load_settings(env)


def test_urls_are_compared_as_rasa_reads_them(tmp_path: Path) -> None:
    env = {"TRACKER_STORE_URL": "postgresql://rasa@db.internal/rasa"}
    hosted = endpoints(
        tmp_path, "tracker_store:\n  type: SQL\n  dialect: postgresql\n  url: db.internal:5432\n"
    )
    assert "db.internal:5432" in rasa_tracker_store_url(hosted, env)
    path = endpoints(
        tmp_path, "tracker_store:\n  type: SQL\n  dialect: postgresql\n  url: db.internal\n  db: rasa\n"
    )
    settings = load_settings({**BASE, **env, "RASA_ENDPOINTS": str(path)})  # the same store, told in parts
    assert settings.tracker_store_url.endswith("@db.internal/rasa")


def test_a_missing_endpoints_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="RASA_ENDPOINTS"):
        load_settings({**BASE, "RASA_ENDPOINTS": str(tmp_path / "absent.yml")})
