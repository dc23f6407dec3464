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
