"""`make run` without a Telegram token: the terminal chat, against the real assistant and without it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from scripts.stack import APP_PYTHON, ROOT, free_port
from tests.e2e.conftest import Assistant

KEY = "k" * 64
TRANSCRIPT_KEY = "ZTJlLXRyYW5zY3JpcHQta2V5LWZvci10ZXN0cy0zMmI="


def chat(rasa_url: str, typed: str, database: Path) -> str:
    env = {
        **os.environ,
        "RASA_URL": rasa_url,
        "PSEUDONYM_KEY": KEY,
        "TRANSCRIPT_KEYS": TRANSCRIPT_KEY,
        "TELEGRAM_BOT_TOKEN": "",
        "DATABASE_URL": f"sqlite:///{database}",
        "TRACKER_STORE_URL": f"sqlite:///{database.parent / 'trackers.db'}",
    }
    done = subprocess.run(
        [str(APP_PYTHON), "-m", "bot", "chat"],
        input=typed,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=True,
    )
    return done.stdout


@pytest.mark.e2e
def test_the_terminal_chat_talks_to_the_running_assistant(assistant: Assistant, tmp_path: Path) -> None:
    out = chat(assistant.rasa_url, "hi\n3\n/quit\n", tmp_path / "signpost.db")
    assert "0800 1111" in out
    assert "[1] I work with young people" in out
    assert "[2] Leave quickly" in out  # quick exit is on the first screen
    assert "[3] Yes, I can talk" in out
    assert "Tell me what's going on" in out


@pytest.mark.e2e
def test_a_newcomer_can_play_the_moderator_in_the_terminal(assistant: Assistant, tmp_path: Path) -> None:
    typed = [
        "can i talk to a real person",
        "/mod queue",
        "/mod claim 1",
        "my friend is scared to tell anyone",
        "/mod Thanks for telling me. What happened?",
        "/mod close",
        "/quit",
    ]
    out = chat(assistant.rasa_url, "\n".join(typed) + "\n", tmp_path / "signpost.db")
    assert "[moderators' group] Case #1 · NORMAL" in out
    assert "#1 · NORMAL · asked for a person" in out
    assert "You hold case #1" in out
    assert "has joined" in out
    assert "#1 › my friend is scared to tell anyone" in out
    assert "Signpost: Signpost team: Thanks for telling me. What happened?" in out
    assert "You're talking to Signpost, the chatbot, again" in out


def test_the_terminal_chat_gives_crisis_numbers_when_rasa_is_down(tmp_path: Path) -> None:
    out = chat(f"http://127.0.0.1:{free_port()}", "i need help\n/quit\n", tmp_path / "signpost.db")
    for number in ("999", "0800 1111", "85258", "116 123"):
        assert number in out
    assert "I've kept your message" in out


def test_the_bot_refuses_to_start_without_a_pseudonym_key() -> None:
    env = {**os.environ, "PSEUDONYM_KEY": ""}
    done = subprocess.run(
        [str(APP_PYTHON), "-m", "bot", "chat"],
        input="",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert "PSEUDONYM_KEY" in done.stderr
