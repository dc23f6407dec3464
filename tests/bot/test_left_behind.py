"""What close, /forget and quick exit leave behind (offline, issue 14 A6): every message that carries a
person's words or shows they were here is recorded, so that leaving or being forgotten takes it away.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from actions.db import sessionmaker_for
from bot import cards, cases
from bot.escalation import Priority
from bot.handlers import user
from bot.models import HandoverCase, RelayMessage
from bot.pseudonym import pseudonym
from bot.responses import response_text
from tests.bot.conftest import GROUP, KEY, MODERATOR, PERSON, Clock
from tests.bot.test_handover import case_number, opened, rows, scripted

pytestmark = pytest.mark.anyio

LONG = ("word " * 1200).strip()  # over Telegram's 4096 characters: relayed in two parts


async def claimed(harness: Any, **changes: Any) -> tuple[Any, int]:
    h = await opened(harness, **changes)
    number = case_number(h)
    await h.text(MODERATOR, f"/claim {number}")
    return h, number


async def test_every_part_of_a_split_line_is_linked_to_its_case_and_goes_with_forget(harness) -> None:
    h, number = await claimed(harness)
    before = len(h.request.sent(MODERATOR))
    await h.text(PERSON, LONG)
    parts = h.request.sent_ids(MODERATOR)[before:]
    assert len(parts) == 2
    linked = {(r.message_id, r.case_id) for r in rows(h.relay.settings.database_url, RelayMessage)}
    assert {(p, number) for p in parts} <= linked
    await h.press(PERSON, "forget:yes")
    assert set(parts) <= h.request.deleted(MODERATOR)


async def test_every_part_of_a_long_claim_transcript_is_linked(harness) -> None:
    h = await opened(harness)
    number = case_number(h)
    with sessionmaker_for(h.relay.settings.database_url).begin() as session:  # a long wait, many lines
        for n in range(cards.INTRO_LINES):
            cases.add_message(session, h.relay.cipher, number, "user", f"{n} " + "x" * 300, h.clock())
    before = len(h.request.sent(MODERATOR))
    await h.text(MODERATOR, f"/claim {number}")
    intro = [
        p for p in h.request.sent(MODERATOR)[before:] if not p["text"].startswith(f"Case #{number} is yours")
    ]
    ids = h.request.sent_ids(MODERATOR)[before : before + len(intro)]
    assert len(ids) == 2
    linked = {r.message_id for r in rows(h.relay.settings.database_url, RelayMessage)}
    assert set(ids) <= linked


async def test_the_crisis_answer_of_the_error_handler_goes_with_quick_exit(harness, monkeypatch) -> None:
    async def broken(update: Any, context: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(user, "on_text", broken)
    h = await harness()  # the handlers are registered when the application is built
    await h.text(PERSON, "hello")
    crisis = h.request.sent_ids(PERSON)[-1]
    assert h.request.sent(PERSON)[-1]["text"] == response_text("utter_adapter_error")
    await h.press(PERSON, "/quick_exit")
    assert crisis in h.request.deleted(PERSON)


async def test_the_forget_confirmations_go_with_a_later_quick_exit(harness) -> None:
    h = await harness()
    await h.text(PERSON, "/forget")
    await h.press(PERSON, "forget:no")
    cancelled = h.request.sent_ids(PERSON)[-1]
    await h.text(PERSON, "/forget")
    pressed = await h.press(PERSON, "forget:yes")
    done = h.request.sent_ids(PERSON)[-1]
    assert pressed in h.request.deleted(PERSON)  # the question they answered
    await h.text(PERSON, "/exit")
    assert {cancelled, done} <= h.request.deleted(PERSON)


def failing_once(monkeypatch: Any, error: Exception, before: Any = None) -> None:
    """Make the next open_or_raise fail with `error` (after running `before`), then work again."""
    real = cases.open_or_raise
    calls = []

    def once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            if before is not None:
                before()
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(cases, "open_or_raise", once)


async def test_a_card_that_could_not_be_saved_is_edited_when_the_case_is_saved(harness, monkeypatch) -> None:
    failing_once(monkeypatch, OperationalError("INSERT", {}, Exception("database is locked")))
    h = await harness(scripted())
    await h.text(PERSON, "i want to die")
    unsaved = h.request.sent_ids(GROUP)[-1]
    assert "NOT SAVED" in h.cards()[-1]["text"]
    await h.relay.check_waiting()  # the database is back: the case is saved
    number = case_number(h)
    edits = [p for p in h.request.of("editMessageText") if p["message_id"] == unsaved]
    assert edits and f"#{number}" in edits[-1]["text"] and "i want to die" not in edits[-1]["text"]


async def test_a_card_that_could_not_be_saved_is_cleared_when_its_person_is_forgotten(
    harness, monkeypatch
) -> None:
    failing_once(monkeypatch, OperationalError("INSERT", {}, Exception("database is locked")))
    h = await harness(scripted())
    await h.text(PERSON, "i want to die")
    unsaved = h.request.sent_ids(GROUP)[-1]
    await h.press(PERSON, "forget:yes")
    edits = [p for p in h.request.of("editMessageText") if p["message_id"] == unsaved]
    assert edits and "forget" in edits[-1]["text"] and "i want to die" not in edits[-1]["text"]
    await h.relay.check_waiting()
    assert rows(h.relay.settings.database_url, HandoverCase) == []  # and it is never saved after


async def test_an_integrity_error_on_open_means_the_case_is_already_open(harness, monkeypatch) -> None:
    h = await harness(scripted())
    url, ref, clock = h.relay.settings.database_url, pseudonym(KEY.encode(), PERSON), Clock()

    def another_instance_opens_it() -> None:
        with sessionmaker_for(url).begin() as session:
            cases.open_or_raise(
                session, h.relay.cipher, ref, PERSON, Priority.NORMAL, "request_human", [], clock()
            )

    failing_once(monkeypatch, IntegrityError("INSERT", {}, Exception("UNIQUE")), another_instance_opens_it)
    await h.text(PERSON, "i want to die")
    assert not any("NOT SAVED" in c["text"] for c in h.cards())
    (case,) = rows(url, HandoverCase)
    assert case.priority == "urgent"  # our request raised the case the other instance opened
    await h.relay.check_waiting()
    assert not any("NOT SAVED" in c["text"] for c in h.cards())


async def test_open_and_claimed_cases_untouched_for_the_retention_time_are_closed_and_purged(harness) -> None:
    clock = Clock()
    h, claimed_number = await claimed(harness, clock=clock)
    await h.text(PERSON + 1, "i want a person")
    queued_number = case_number(h)
    clock.advance(days=20)
    await h.text(PERSON + 2, "i want a person")  # touched recently: stays
    recent = case_number(h)
    clock.advance(days=11)
    purged = await h.relay.purge()
    assert purged is not None and purged.abandoned == 2
    assert [c.id for c in rows(h.relay.settings.database_url, HandoverCase)] == [recent]
    await h.relay.flush_cards()
    edited = {p["message_id"]: p["text"] for p in h.request.of("editMessageText")}
    for number in (claimed_number, queued_number):
        card = next(p for p in h.cards() if p["text"].startswith(f"Case #{number} "))
        posted = next(c.result["message_id"] for c in h.request.calls if c.params is card)
        assert "deleted" in edited[posted] and "i want a person" not in edited[posted]
