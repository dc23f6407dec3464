"""Two Rasa servers sharing the PostgreSQL tracker store and a Redis lock store (the production profile).

Runs only when TEST_DATABASE_URL and TEST_REDIS_URL are set (`.ci/run` sets them on these machines).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import text

from actions.db import sessionmaker_for
from actions.settings import load_settings
from scripts.stack import MODEL, RASA, Stack, running_stack
from tests.e2e.conftest import new_sender, texts

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def two_rasas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    database, redis = os.environ.get("TEST_DATABASE_URL"), os.environ.get("TEST_REDIS_URL")
    if not database or not redis:
        pytest.skip(
            "TEST_DATABASE_URL and TEST_REDIS_URL are not set: two Rasa servers need PostgreSQL and Redis"
        )
    if not MODEL.exists() or not RASA.exists():
        pytest.skip("no trained model or Rasa environment: run `make train` (make test does)")
    url = load_settings({"DATABASE_URL": database}).database_url
    with running_stack(
        tmp_path_factory.mktemp("scale-out"),
        database_url=url,
        tracker_store_url=url,
        lock_store_url=redis,
        rasa_instances=2,
    ) as stack:
        yield stack


def say(url: str, sender: str, message: str) -> list[dict]:
    response = httpx.post(
        f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": message}, timeout=120
    )
    response.raise_for_status()
    return list(response.json())


def events(stack: Stack, sender: str) -> list[dict]:
    """Return the conversation's events as the shared tracker store holds them, in order."""
    query = text("SELECT data FROM events WHERE sender_id = :sender ORDER BY id")
    with sessionmaker_for(stack.tracker_store_url).begin() as session:
        return [json.loads(data) for (data,) in session.execute(query, {"sender": sender})]


def test_one_conversation_alternating_between_two_rasa_servers_stays_consistent(two_rasas: Stack) -> None:
    first, second = two_rasas.rasa_urls
    sender = new_sender()
    asked = texts(say(first, sender, "I need help, I'm in Leeds"))
    assert "What kind of help are you looking for?" in asked
    # The other server carries the form on: it reads the same conversation from PostgreSQL.
    listed = texts(say(second, sender, '/find_services{"service_need": "any"}'))
    assert "Here is help near you, in Leeds" in listed and "MindMate (Leeds)" in listed
    assert texts(say(first, sender, "thanks")) != ""
    said = [e["text"] for e in events(two_rasas, sender) if e["event"] == "user"]
    assert said == ["I need help, I'm in Leeds", '/find_services{"service_need": "any"}', "thanks"]


def test_messages_sent_to_both_servers_at_once_are_handled_one_at_a_time(two_rasas: Stack) -> None:
    first, second = two_rasas.rasa_urls
    sender = new_sender()
    say(first, sender, "hi")
    messages = [f"someone keeps messaging me, part {n}" for n in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        replies = list(pool.map(lambda i: say((first, second)[i % 2], sender, messages[i]), range(6)))
    assert all(texts(r) for r in replies)  # every message was answered
    log = events(two_rasas, sender)
    said = [e["text"] for e in log if e["event"] == "user"]
    assert sorted(said[1:]) == sorted(messages)  # none lost, none doubled
    # The Redis lock kept turns whole: after each user message, the bot's actions for it come
    # before the next user message (no interleaving of two turns in the shared tracker).
    turns = [e["event"] for e in log if e["event"] in {"user", "action"}]
    for position, kind in enumerate(turns[:-1]):
        if kind == "user":
            assert turns[position + 1] == "action", "a turn was interleaved with another"
