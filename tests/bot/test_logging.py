"""Nobody's words in the logs: a whole conversation, handover included, leaves no message text at INFO+."""

from __future__ import annotations

import logging

import pytest

from bot.pseudonym import pseudonym
from tests.bot.conftest import GROUP, KEY, MODERATOR, PERSON, FakeRasa, message

pytestmark = pytest.mark.anyio

WORDS = [
    "my stepdad takes my phone and reads everything",
    "he sent me pictures i didn't want",
    "please can a real person help",
    "it started in year 8",
    "i was too scared to say",
]
MODERATOR_WORDS = ["You did the right thing telling us", "private note about school"]


async def test_no_message_text_reaches_the_logs_at_info_or_above(harness, caplog) -> None:
    rasa = FakeRasa(
        replies={
            WORDS[2]: [
                {"custom": {"handover": {"priority": "high", "reason": "disclose_grooming"}}},
                {"text": "I've asked a person from our team to join."},
            ]
        }
    )
    with caplog.at_level(logging.INFO):
        h = await harness(rasa)
        await h.text(PERSON, WORDS[0])
        await h.text(PERSON, WORDS[1])
        await h.text(PERSON, WORDS[2])
        number = int(h.cards()[-1]["text"].split("#", 1)[1].split(" ", 1)[0])
        await h.press(MODERATOR, f"case:claim:{number}", chat_id=GROUP)
        await h.text(PERSON, WORDS[3])
        await h.feed({"edited_message": message(PERSON, text=WORDS[4], edit_date=1_700_000_100)})
        await h.text(MODERATOR, MODERATOR_WORDS[0])
        await h.text(MODERATOR, f"/note {MODERATOR_WORDS[1]}")
        await h.text(MODERATOR, "/close")
        h.rasa.down = True
        await h.text(PERSON, WORDS[0])
    assert h.request.texts(MODERATOR)  # the conversation really happened
    logged = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert "case #" in logged  # the logs do say what happened, by case number
    for words in WORDS + MODERATOR_WORDS:
        assert words not in logged
        for record in caplog.records:
            assert words not in str(record.args or "")
    assert str(PERSON) not in logged


async def test_quick_exit_forget_floods_and_blocks_log_no_words_either(harness, caplog) -> None:
    words = [f"private words number {n}" for n in range(14)]
    rasa = FakeRasa(replies={words[0]: [{"custom": {"handover": {"priority": "normal", "reason": "x"}}}]})
    with caplog.at_level(logging.INFO):
        h = await harness(rasa)
        for line in words:  # more than the burst: flood control holds some
            await h.text(PERSON, line)
        number = int(h.cards()[-1]["text"].split("#", 1)[1].split(" ", 1)[0])
        await h.text(MODERATOR, f"/block {number}")
        await h.text(PERSON, words[1])
        await h.text(PERSON, "/exit")
        await h.text(PERSON, "/forget")
        await h.press(PERSON, "forget:yes")
        await h.relay.purge()
    logged = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert "flood" in logged and "quick exit" in logged and "forget me" in logged  # it did happen
    for line in words:
        assert line not in logged
    assert str(PERSON) not in logged and pseudonym(KEY.encode(), PERSON) not in logged
