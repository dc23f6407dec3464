"""`python -m bot` as a person starts it: the terminal chat (`chat`) shows the chat, not the machinery's logs;
the web chat refuses a database nobody migrated."""

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
        [sys.executable, "-m", "bot", "chat"],
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


def test_the_web_chat_alone_on_a_database_nobody_migrated_refuses_to_start_and_says_what_to_run(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": "",  # the web chat alone
        "PSEUDONYM_KEY": "k" * 40,
        "TRANSCRIPT_KEYS": TRANSCRIPT_KEY,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}",
        "TRACKER_STORE_URL": f"sqlite:///{tmp_path / 'trackers.db'}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "not up to date" in done.stderr and "make ready" in done.stderr


def test_the_web_chat_alone_prints_its_address_and_serves_the_page(tmp_path: Path) -> None:
    import httpx

    from actions.db import upgrade
    from scripts.stack import free_port

    database = f"sqlite:///{tmp_path / 'signpost.db'}"
    upgrade(database)  # `make ready`'s work
    port = free_port()
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": "",  # the web chat alone
        "PSEUDONYM_KEY": "k" * 40,
        "TRANSCRIPT_KEYS": TRANSCRIPT_KEY,
        "RASA_URL": "http://127.0.0.1:9",  # unreachable: the adapter starts at once and says so
        "DATABASE_URL": database,
        "TRACKER_STORE_URL": f"sqlite:///{tmp_path / 'trackers.db'}",
        "WEB_PORT": str(port),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bot"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        address = f"http://127.0.0.1:{port}/"
        printed: list[str] = []
        while not any(address in line for line in printed):  # it says where the chat is
            line = process.stdout.readline()
            assert line, "".join(printed)  # it stopped without saying
            printed.append(line)
        page = httpx.get(address, timeout=10)
        assert page.status_code == 200 and "Exit this page" in page.text
    finally:
        process.terminate()
        process.wait(timeout=30)
