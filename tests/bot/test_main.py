"""`python -m bot` as a person starts it: the terminal chat shows the chat, not the machinery's logs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
TRANSCRIPT_KEY = "wJmQlB0KkBd1mV7mS4mF9lY0b8GqRt5nqvG3mZb2yUQ="


def test_the_terminal_chat_on_a_fresh_database_shows_no_migration_logs(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": "",  # the terminal chat, whatever .env says
        "PSEUDONYM_KEY": "k" * 40,
        "TRANSCRIPT_KEYS": TRANSCRIPT_KEY,
        "RASA_URL": "http://127.0.0.1:9",  # never reached: the person leaves at once
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}",  # migrated at start-up
        "TRACKER_STORE_URL": f"sqlite:///{tmp_path / 'trackers.db'}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    shown = done.stdout + done.stderr
    assert done.returncode == 0, shown
    assert "Signpost terminal chat" in done.stdout and "Bye." in done.stdout  # the chat really ran ...
    assert (tmp_path / "fresh.db").exists()  # ... on a database it migrated
    assert "alembic" not in shown.lower()
    assert "INFO" not in shown


def test_telegram_mode_on_a_database_nobody_migrated_refuses_to_start_and_says_what_to_run(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": "1:TEST",
        "TELEGRAM_BASE_URL": "http://127.0.0.1:9/bot",  # never reached: it stops before connecting
        "MODERATOR_CHAT_ID": "-100",
        "MODERATOR_USER_IDS": "7",
        "PSEUDONYM_KEY": "k" * 40,
        "TRANSCRIPT_KEYS": TRANSCRIPT_KEY,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}",
        "TRACKER_STORE_URL": f"sqlite:///{tmp_path / 'trackers.db'}",
        "RASA_ENDPOINTS": "endpoints.yml",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "not up to date" in done.stderr and "make ready" in done.stderr
