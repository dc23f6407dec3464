"""`make run` without a Telegram token: the terminal chat, against the real assistant and without it."""

from __future__ import annotations

import os
import subprocess

import pytest

from scripts.stack import APP_PYTHON, ROOT, free_port
from tests.e2e.conftest import Assistant

KEY = "k" * 64


def chat(rasa_url: str, typed: str) -> str:
    env = {**os.environ, "RASA_URL": rasa_url, "PSEUDONYM_KEY": KEY, "TELEGRAM_BOT_TOKEN": ""}
    done = subprocess.run(
        [str(APP_PYTHON), "-m", "bot"],
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
def test_the_terminal_chat_talks_to_the_running_assistant(assistant: Assistant) -> None:
    out = chat(assistant.rasa_url, "hi\n2\n/quit\n")
    assert "0800 1111" in out
    assert "[1] I work with young people" in out
    assert "[2] Yes, I can talk" in out
    assert "Tell me what's going on" in out


def test_the_terminal_chat_gives_crisis_numbers_when_rasa_is_down() -> None:
    out = chat(f"http://127.0.0.1:{free_port()}", "i need help\n/quit\n")
    for number in ("999", "0800 1111", "85258", "116 123"):
        assert number in out
    assert "Your message is kept" in out


def test_the_bot_refuses_to_start_without_a_pseudonym_key() -> None:
    env = {**os.environ, "PSEUDONYM_KEY": ""}
    done = subprocess.run(
        [str(APP_PYTHON), "-m", "bot"],
        input="",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert "PSEUDONYM_KEY" in done.stderr
