"""A message retried after Rasa timed out is answered once (offline, issue 14 A8).

Each message goes to Rasa with its own id (REST metadata `message_id`), the same on every retry. When
a request timed out after Rasa may have taken it, the adapter looks in Rasa's tracker store before
asking again: if Rasa recorded the message, its recorded answer is shown and the message is not sent a
second time (which Rasa would answer as a new turn).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from actions.db import sessionmaker_for
from bot import privacy
from tests.bot.conftest import PERSON, FakeRasa

pytestmark = pytest.mark.anyio

SLOW = "are you there"


class LateRasa(FakeRasa):
    """Rasa that takes SLOW, records it and its answer, and only then times out the first request."""

    def __init__(self, trackers_url: str) -> None:
        super().__init__()
        self.trackers_url = trackers_url
        self.bodies: list[dict[str, Any]] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        if body["message"] == SLOW and [b["message"] for b in self.bodies].count(SLOW) == 1:
            self.received.append(body)
            self.record(body, "the first answer")
            raise httpx.ReadTimeout("Rasa took longer than the adapter's patience", request=request)
        return await super().handle(request)

    def record(self, body: dict[str, Any], answer: str) -> None:
        """Write the turn as Rasa's SQLTrackerStore does: the user event with its metadata, the reply."""
        user = {"event": "user", "text": body["message"], "metadata": body.get("metadata") or {}}
        bot = {"event": "bot", "text": answer, "data": {"buttons": [{"title": "Yes", "payload": "/affirm"}]}}
        with sessionmaker_for(self.trackers_url).begin() as tracker:
            tracker.execute(
                insert(privacy.EVENTS),
                [
                    {
                        "sender_id": body["sender"],
                        "type_name": e["event"],
                        "timestamp": 1.0,
                        "data": json.dumps(e),
                    }
                    for e in (user, bot)
                ],
            )


async def test_a_message_rasa_took_before_timing_out_is_not_sent_again_and_answered_once(
    harness, trackers_url
) -> None:
    rasa = LateRasa(trackers_url)
    h = await harness(rasa)
    await h.text(PERSON, SLOW)  # times out: the person gets the crisis numbers, the message is kept
    await h.text(PERSON, "hello")  # the retry runs first
    assert rasa.messages() == [SLOW, "hello"]  # SLOW reached Rasa once
    said = [p["text"] for p in h.request.sent(PERSON)]
    assert said.count("the first answer") == 1 and said[-1] == "echo: hello"
    shown = next(p for p in h.request.sent(PERSON) if p["text"] == "the first answer")
    assert shown["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "/affirm"


async def test_a_retry_carries_the_same_message_id(harness) -> None:
    rasa = FakeRasa(down=True)
    original = rasa.handle
    bodies: list[dict[str, Any]] = []

    async def seen(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return await original(request)

    rasa.handle = seen  # type: ignore[method-assign]
    h = await harness(rasa)
    await h.text(PERSON, "first")
    rasa.down = False
    await h.text(PERSON, "second")
    firsts = [b["metadata"]["message_id"] for b in bodies if b["message"] == "first"]
    seconds = [b["metadata"]["message_id"] for b in bodies if b["message"] == "second"]
    assert len(firsts) == 2 and len(set(firsts)) == 1
    assert seconds and seconds[0] != firsts[0]
    assert rasa.messages() == ["first", "second"]
