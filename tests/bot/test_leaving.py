"""Leaving never waits for Rasa (offline): quick exit and "forget me" while Rasa is still thinking, and
nothing that was pending, retried or held by flood control reaches the chat after "Bye for now".

Rasa's slowness is an event the test sets (FakeRasa.slow), never a clock: the exit must be complete while
Rasa's answer is still held back, and the answer, released afterwards, must not show. `wait_for` bounds
only turn a regression (exit waiting for Rasa) into a failure instead of a hang.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from bot.flood import Limits
from bot.responses import response_text
from tests.bot.conftest import PERSON, Clock, FakeRasa

pytestmark = pytest.mark.anyio

NEUTRAL = response_text("utter_quick_exit")
FORGOTTEN = response_text("utter_forget_done").split("{", 1)[0]
BOUND = 5.0  # seconds; only so that a regression fails instead of hanging


async def thinking(harness: Any, *slow: str, **changes: Any) -> tuple[Any, asyncio.Event]:
    """Return a harness whose Rasa answers the given messages only when the returned event is set.

    Rasa's time-out answer is set far off (as with Rasa taking 25 s of its 30), so only leaving acts.
    """
    answer = asyncio.Event()
    h = await harness(
        FakeRasa(slow=dict.fromkeys(slow, answer)),
        rasa_timeout_seconds=25.0,
        rasa_patience_seconds=30.0,
        **changes,
    )
    return h, answer


def sent_after(h: Any, text: str) -> list[str]:
    """Return what reached the person's chat after the last message saying `text` (asserting there is one)."""
    said = [p["text"] for p in h.request.sent(PERSON)]
    last = max(i for i, t in enumerate(said) if t.startswith(text))
    return said[last + 1 :]


async def test_exit_clears_the_chat_while_rasa_is_still_thinking_and_nothing_follows_bye(harness) -> None:
    h, answer = await thinking(harness, "he is outside my house")
    first = asyncio.create_task(h.text(PERSON, "he is outside my house"))
    await asyncio.wait_for(h.rasa.thinking.wait(), BOUND)

    exit_id = await asyncio.wait_for(h.text(PERSON, "/exit"), BOUND)
    assert not answer.is_set()  # the exit is done while Rasa still has not answered
    asked_id = await asyncio.wait_for(first, BOUND)  # the conversation gave up on Rasa too
    assert {asked_id, exit_id} <= h.request.deleted(PERSON)
    assert h.request.sent(PERSON)[-1]["text"] == NEUTRAL
    assert h.rasa.cancelled == ["he is outside my house"]  # the in-flight request was cancelled

    answer.set()  # Rasa would answer now: it is too late, and nothing shows
    await asyncio.sleep(0)
    assert sent_after(h, NEUTRAL) == []
    await h.relay.retry_pending()
    assert sent_after(h, NEUTRAL) == []
    assert "he is outside my house" not in h.rasa.messages()


async def test_a_message_waiting_behind_a_slow_one_is_dropped_by_exit(harness) -> None:
    h, answer = await thinking(harness, "first")
    first = asyncio.create_task(h.text(PERSON, "first"))
    await asyncio.wait_for(h.rasa.thinking.wait(), BOUND)
    second = asyncio.create_task(h.text(PERSON, "second"))  # waits for its turn behind "first"
    await asyncio.sleep(0)
    await asyncio.wait_for(h.text(PERSON, "/exit"), BOUND)
    answer.set()
    await asyncio.wait_for(asyncio.gather(first, second), BOUND)
    assert sent_after(h, NEUTRAL) == []
    assert "second" not in h.rasa.messages()  # written before leaving: never asked afterwards
    await h.text(PERSON, "hi again")  # a new message after the exit is a new conversation
    assert h.request.sent(PERSON)[-1]["text"] == "echo: hi again"


async def test_forget_never_waits_for_rasa_either(harness) -> None:
    h, answer = await thinking(harness, "my name is Sam")
    first = asyncio.create_task(h.text(PERSON, "my name is Sam"))
    await asyncio.wait_for(h.rasa.thinking.wait(), BOUND)
    await asyncio.wait_for(h.text(PERSON, "/forget"), BOUND)
    await asyncio.wait_for(h.press(PERSON, "forget:yes"), BOUND)
    assert not answer.is_set()
    assert h.request.sent(PERSON)[-1]["text"].startswith(FORGOTTEN)
    answer.set()
    await asyncio.wait_for(first, BOUND)
    assert sent_after(h, FORGOTTEN) == []
    assert h.rasa.cancelled == ["my name is Sam"]


async def test_messages_held_by_flood_control_never_come_back_after_exit(harness) -> None:
    clock = Clock()
    burst = Limits().burst
    held = [f"line {n}" for n in range(burst, burst + 3)]
    h, answer = await thinking(harness, held[0], clock=clock)
    for n in range(burst + 3):
        await h.text(PERSON, f"line {n}")
    assert h.rasa.messages() == [f"line {n}" for n in range(burst)]  # the rest are held
    clock.advance(minutes=5)
    releasing = asyncio.create_task(h.relay.release_held())  # the job: the first held one reaches Rasa
    await asyncio.wait_for(h.rasa.thinking.wait(), BOUND)

    await asyncio.wait_for(h.text(PERSON, "/exit"), BOUND)
    answer.set()
    await asyncio.wait_for(releasing, BOUND)
    clock.advance(minutes=5)
    await h.relay.release_held()
    assert sent_after(h, NEUTRAL) == []
    assert not set(held) & set(h.rasa.messages())


async def test_the_leave_quickly_button_deletes_the_message_it_was_pressed_under(harness) -> None:
    h = await harness()
    pressed = await h.press(PERSON, "/quick_exit")  # under a message the trail may not know (A6)
    assert pressed in h.request.deleted(PERSON)
    assert h.request.sent(PERSON)[-1]["text"] == NEUTRAL


async def test_exit_is_done_while_rasa_still_holds_its_reset(harness) -> None:
    h, answer = await thinking(harness, "/quick_exit")
    await asyncio.wait_for(h.text(PERSON, "/exit"), BOUND)  # the handler does not wait for the reset
    assert h.request.sent(PERSON)[-1]["text"] == NEUTRAL
    await asyncio.wait_for(h.rasa.thinking.wait(), BOUND)  # the reset is on its way, in the background
    assert "/quick_exit" not in h.rasa.messages()

    answer.set()
    await asyncio.wait_for(h.relay.leaving.resets_sent(), BOUND)
    assert h.rasa.messages() == ["/quick_exit"]
    assert sent_after(h, NEUTRAL) == []


async def test_a_reset_that_fails_is_logged_by_its_kind_only(harness, caplog) -> None:
    caplog.set_level(logging.INFO)
    h = await harness(FakeRasa(down=True))
    await asyncio.wait_for(h.text(PERSON, "/exit"), BOUND)
    await asyncio.wait_for(h.relay.leaving.resets_sent(), BOUND)
    assert "Rasa not told" in caplog.text and "/quick_exit" not in caplog.text
