"""Every message gets an answer in time (offline): Rasa warmed up before the adapter takes messages, and
the crisis numbers RASA_TIMEOUT_SECONDS after a message arrives, whatever holds its answer up.

Order is proven with events: the crisis answer must be in the chat while the message's own work is still
held (the case database write-locked by another connection), and the real answer follows once released.
`wait_for` bounds only turn a regression into a failure instead of a hang.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from actions.db import sessionmaker_for
from actions.settings import Timeouts
from bot import privacy
from bot.responses import response_text
from tests.bot.conftest import PERSON, FakeRasa
from tests.bot.test_event_loop import until, write_locked

pytestmark = pytest.mark.anyio

BOUND = 30.0
TROUBLE = response_text("utter_assistant_unavailable")


async def test_the_crisis_answer_comes_on_time_while_the_message_is_held_up(
    harness: Any, cases_url: str
) -> None:
    h = await harness(database_timeouts=Timeouts(lock=BOUND * 2))
    with write_locked(cases_url):  # the message's own work waits for the database
        writing = asyncio.create_task(h.text(PERSON, "i want to hurt myself"))
        await until(lambda: TROUBLE in h.request.texts(PERSON))
        assert h.rasa.messages() == []  # the crisis numbers came while the message was still held up
        assert not writing.done()
    await asyncio.wait_for(writing, BOUND)
    # The crisis numbers once, then the answer.
    assert h.request.texts(PERSON).split(TROUBLE) == ["", "\necho: i want to hurt myself"]


async def test_a_prompt_answer_gets_no_crisis_message(harness: Any) -> None:
    h = await harness()
    await h.text(PERSON, "hello")
    await asyncio.sleep(h.relay.settings.rasa_timeout_seconds * 2)  # past the deadline: nothing follows
    assert h.request.texts(PERSON) == "echo: hello"


async def test_rasa_is_warmed_up_before_start_up_ends_and_its_conversation_is_deleted(
    harness: Any, trackers_url: str
) -> None:
    class RecordingRasa(FakeRasa):
        """Writes what it is sent to the tracker store, as Rasa does."""

        async def handle(self, request: httpx.Request) -> httpx.Response:
            body = json.loads(request.content)
            with sessionmaker_for(trackers_url).begin() as t:
                row = {"sender_id": body["sender"], "type_name": "user", "data": "{}"}
                t.execute(insert(privacy.EVENTS).values(**row))
            return await super().handle(request)

    rasa = RecordingRasa()
    h = await harness(rasa, rasa_warm_up_seconds=BOUND)  # post_init has returned: warm-up is over
    (warm_up,) = rasa.received
    assert warm_up["message"] and warm_up["sender"].startswith("warm-up-")
    with sessionmaker_for(trackers_url).begin() as t:
        assert list(t.scalars(select(privacy.EVENTS.c.sender_id))) == []  # no throwaway conversation left
    await h.text(PERSON, "hello")
    assert h.request.texts(PERSON) == "echo: hello"
