"""End-to-end fixtures: the real Rasa server and action server, talked to over Rasa's REST channel."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from scripts.stack import MODEL, RASA, running_stack


@dataclass(frozen=True)
class Assistant:
    """The running assistant and a way to talk to it."""

    rasa_url: str
    database_url: str
    tracker_store_url: str
    workdir: Path  # rasa.log and actions.log are here

    def say(self, sender: str, message: str) -> list[dict]:
        response = httpx.post(
            f"{self.rasa_url}/webhooks/rest/webhook",
            json={"sender": sender, "message": message},
            timeout=60,
        )
        response.raise_for_status()
        return list(response.json())


def texts(replies: list[dict]) -> str:
    return "\n".join(r["text"] for r in replies if r.get("text"))


def handovers(replies: list[dict]) -> list[dict]:
    return [r["custom"]["handover"] for r in replies if "handover" in (r.get("custom") or {})]


def new_sender() -> str:
    return uuid.uuid4().hex


# Telegram chat ids of young people in the E2E tests. One counter for the whole run: every adapter
# test talks to the same session-wide Rasa, whose trackers are keyed by the pseudonym of the chat id,
# so a chat id used twice would carry one test's conversation (e.g. a handover) into another's.
_chat_ids = itertools.count(50_001)


def new_person() -> int:
    """A Telegram chat id no other test in this run has used."""
    return next(_chat_ids)


@pytest.fixture(scope="session")
def assistant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Assistant]:
    if not MODEL.exists() or not RASA.exists():
        pytest.skip("no trained model or Rasa environment: run `make train` (make test does)")
    workdir = tmp_path_factory.mktemp("assistant")
    with running_stack(workdir) as stack:
        yield Assistant(stack.rasa_url, stack.database_url, stack.tracker_store_url, workdir)
