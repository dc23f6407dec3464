"""Abuse resistance through the real Application (offline): floods, hostile text, unexpected chats."""

from __future__ import annotations

from typing import Any

import pytest

from bot.flood import FloodGuard, Limits, Verdict
from bot.gate import MAX_HELD_PER_PERSON
from bot.responses import response_text
from bot.text import MAX_TEXT_CHARS
from tests.bot.conftest import BOT_ID, GROUP, MODERATOR, PERSON, STRANGER, Clock, FakeRasa, message
from tests.bot.test_handover import case_number, opened

pytestmark = pytest.mark.anyio

SLOW_DOWN = response_text("utter_flood_slow_down")


# ---------------------------------------------------------------- the flood guard's rules


def test_a_burst_goes_through_then_messages_are_paced_and_the_person_told_once() -> None:
    guard = FloodGuard(Limits(burst=3, per_minute=60))
    verdicts = [guard.admit("p", 0.0) for _ in range(6)]
    assert verdicts == [Verdict.GO] * 3 + [Verdict.SLOW_DOWN, Verdict.HOLD, Verdict.HOLD]
    assert guard.take("p", 0.5) is False
    assert guard.take("p", 1.0) is True  # one a second at 60 a minute
    assert guard.admit("q", 0.0) is Verdict.GO  # everyone has their own bucket


def test_the_third_flood_within_the_hour_raises_an_alert_once() -> None:
    guard = FloodGuard(Limits(burst=1, per_minute=60, strikes=3, strike_window_seconds=3600))
    seen = []
    for start in (0.0, 100.0, 200.0, 300.0):
        assert guard.admit("p", start) is Verdict.GO
        seen.append(guard.admit("p", start))
    assert seen == [Verdict.SLOW_DOWN, Verdict.SLOW_DOWN, Verdict.ALERT, Verdict.SLOW_DOWN]
    guard.admit("p", 4000.0)
    assert guard.admit("p", 4000.0) is Verdict.SLOW_DOWN  # old strikes have expired


# ---------------------------------------------------------------- floods through the relay


async def test_a_flood_is_paced_answered_kindly_and_nothing_is_lost(harness) -> None:
    clock = Clock()
    h = await harness(clock=clock)
    words = [f"message {n}" for n in range(25)]
    for line in words:
        await h.text(PERSON, line)
    burst = Limits().burst
    assert h.rasa.messages() == words[:burst]
    assert h.request.texts(PERSON).count(SLOW_DOWN) == 1
    await h.relay.release_held()
    assert len(h.rasa.messages()) == burst  # no time has passed: still held
    for _ in range(10):
        clock.advance(seconds=30)
        await h.relay.release_held()
    assert h.rasa.messages() == words  # every message, in order
    await h.text(PERSON, "calm now")
    assert h.rasa.messages()[-1] == "calm now"


async def test_repeated_flooding_asks_the_moderators_to_look(harness) -> None:
    clock = Clock()
    h = await harness(clock=clock)
    for _ in range(Limits().strikes):
        for n in range(Limits().burst + 2):
            await h.text(PERSON, f"spam {n}")
        clock.advance(minutes=5)
        await h.relay.release_held()
    card = h.cards()[-1]["text"]
    assert "flood control" in card and f"Case #{case_number(h)}" in card
    assert "spam" in card  # moderators see what was sent, to judge it


async def test_more_than_can_be_held_is_refused_honestly(harness) -> None:
    h = await harness()
    for n in range(Limits().burst + MAX_HELD_PER_PERSON + 1):
        await h.text(PERSON, f"line {n}")
    assert response_text("utter_flood_full") in h.request.texts(PERSON)  # "send it again", not silence


async def test_quick_exit_is_never_held_by_flood_control(harness) -> None:
    h = await harness()
    for n in range(Limits().burst + 5):
        await h.text(PERSON, f"line {n}")
    await h.text(PERSON, "/exit")
    assert h.request.sent(PERSON)[-1]["text"] == response_text("utter_quick_exit")


# ---------------------------------------------------------------- hostile text


INJECTION = '<b>bold</b> <a href="http://evil.example">tap</a> *star* _under_ [link](http://evil.example) `x`'


async def test_markup_in_a_persons_words_reaches_moderators_as_plain_text(harness) -> None:
    h = await opened(harness)
    await h.text(PERSON, INJECTION)
    await h.text(MODERATOR, f"/claim {case_number(h)}")
    await h.text(PERSON, INJECTION)
    assert INJECTION in h.request.texts(MODERATOR)
    for call in h.request.calls:
        if call.method in {"sendMessage", "editMessageText"}:
            assert "parse_mode" not in call.params and "entities" not in call.params


async def test_oversized_text_is_cut_to_telegrams_limit_and_still_answered(harness) -> None:
    h = await harness()
    await h.text(PERSON, "help " * 5000)
    assert len(h.rasa.messages()[0]) <= MAX_TEXT_CHARS
    assert h.request.sent(PERSON)  # answered


def _bot(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "is_bot": True, "first_name": "Bot"}


def _channel_post() -> dict[str, Any]:
    chat = {"id": -1009, "type": "channel", "title": "a channel"}
    return {"channel_post": {"message_id": 1, "date": 0, "chat": chat, "text": "hi"}}


def _added_to_a_stranger_group() -> dict[str, Any]:
    member = {"status": "member", "user": _bot(BOT_ID)}
    return {
        "my_chat_member": {
            "chat": {"id": -100999, "type": "group", "title": "someone's group"},
            "from": {"id": STRANGER, "is_bot": False, "first_name": "S"},
            "date": 0,
            "old_chat_member": {**member, "status": "left"},
            "new_chat_member": member,
        }
    }


def _another_bot_in_a_group() -> dict[str, Any]:
    sent = message(BOT_ID + 1, chat_id=-100888, text="hello")
    return {"message": {**sent, "from": _bot(BOT_ID + 1)}}


UNEXPECTED = {
    "a channel post": _channel_post,
    "a command in a group that isn't ours": lambda: {"message": message(STRANGER, -100777, text="/queue")},
    "a stranger's command in our group": lambda: {"message": message(STRANGER, GROUP, text="/claim 1")},
    "the bot added to a stranger's group": _added_to_a_stranger_group,
    "another bot in a group": _another_bot_in_a_group,
}


@pytest.mark.parametrize("kind", UNEXPECTED)
async def test_updates_from_unexpected_chats_are_ignored(harness, kind: str) -> None:
    h = await harness()
    await h.feed(UNEXPECTED[kind]())
    assert h.rasa.received == []
    assert [c.method for c in h.request.calls if c.method != "getMe"] == []


async def test_a_button_press_from_a_group_is_refused(harness) -> None:
    h = await harness()
    await h.press(STRANGER, "/request_human", chat_id=-100777)
    assert h.rasa.received == [] and h.cards() == []
    assert h.alerts() == ["This button has expired."]


async def test_a_moderators_command_from_a_stranger_in_private_is_just_words(harness) -> None:
    h = await harness(FakeRasa())
    await h.text(STRANGER, "/close 1")
    await h.text(STRANGER, "/unblock 1")
    assert h.rasa.messages() == ["close 1", "unblock 1"]
    assert h.request.sent(MODERATOR) == []
