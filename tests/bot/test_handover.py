"""Handover through the real Application (offline): cards, claim, relay, notes, close, waiting, restarts."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import select

from actions.db import sessionmaker_for
from bot.escalation import Hours
from bot.models import CaseEvent, CaseMessage, HandoverCase
from bot.pseudonym import pseudonym
from bot.responses import response_text
from tests.bot.conftest import (
    GROUP,
    KEY,
    MODERATOR,
    OTHER_MODERATOR,
    PERSON,
    STRANGER,
    Clock,
    FakeRasa,
    handover,
    message,
)

pytestmark = pytest.mark.anyio

SECOND_PERSON = 4343


def scripted() -> FakeRasa:
    return FakeRasa(
        replies={
            "i want a person": handover("normal", "request_human"),
            "i want to die": handover("urgent", "risk_immediate"),
            "he has my pics": handover("high", "disclose_sextortion"),
        }
    )


async def opened(harness: Any, text: str = "i want a person", **changes: Any) -> Any:
    h = await harness(scripted(), **changes)
    await h.text(PERSON, "my name is Sam and I'm scared")
    await h.text(PERSON, text)
    return h


def case_number(h: Any) -> int:
    return int(h.cards()[-1]["text"].split("#", 1)[1].split(" ", 1)[0])


def rows(url: str, model: Any) -> list[Any]:
    with sessionmaker_for(url).begin() as session:
        return list(session.scalars(select(model)))


async def test_a_request_for_a_person_opens_a_case_card_for_the_moderators(harness) -> None:
    h = await opened(harness)
    card = h.cards()[-1]
    assert card["text"].startswith(f"Case #{case_number(h)} · NORMAL")
    assert "asked for a person (request_human)" in card["text"]
    assert "Waiting since" in card["text"] and "(0 min)" in card["text"]
    assert "› my name is Sam and I'm scared" in card["text"]
    assert h.last_card_buttons() == [f"case:claim:{case_number(h)}", f"case:close:{case_number(h)}"]
    for identity in (str(PERSON), "Alex", f"user{PERSON}"):
        assert identity not in card["text"]


async def test_danger_opens_an_urgent_case_and_the_queue_serves_it_first(harness) -> None:
    h = await opened(harness)
    h.clock.advance(minutes=3)
    await h.text(SECOND_PERSON, "i want to die")
    assert h.cards()[-1]["text"].startswith("Case #")
    assert "URGENT" in h.cards()[-1]["text"].splitlines()[0]
    await h.text(MODERATOR, "/queue", chat_id=GROUP)
    listing = h.request.texts(GROUP).split("Open cases", 1)[1].splitlines()
    assert "URGENT" in listing[1] and "NORMAL" in listing[2]


async def test_a_more_urgent_request_raises_the_open_case_and_posts_a_new_card(harness) -> None:
    h = await opened(harness)
    first = case_number(h)
    await h.text(PERSON, "i want to die")
    assert case_number(h) == first
    assert "URGENT" in h.cards()[-1]["text"].splitlines()[0]
    assert any("is now URGENT" in e["text"] for e in h.request.of("editMessageText"))
    await h.text(PERSON, "i want a person")  # less urgent again: nothing new
    assert len(h.cards()) == 2


async def test_someone_not_on_the_allowlist_cannot_claim_and_it_is_logged(harness, caplog) -> None:
    h = await opened(harness)
    with caplog.at_level(logging.WARNING):
        await h.press(STRANGER, f"case:claim:{case_number(h)}", chat_id=GROUP)
    assert h.alerts()[-1] == "Only Signpost moderators can do this."
    assert "not on MODERATOR_USER_IDS" in caplog.text
    assert rows(h.relay.settings.database_url, HandoverCase)[0].state == "queued"
    assert h.request.sent(STRANGER) == []


@pytest.mark.parametrize(
    "data", ["case:claim:999999", "case:claim:0", "case:claim:1;DROP", "case:nuke:1", "x" * 64]
)
async def test_forged_or_stale_card_buttons_do_nothing_harmful(harness, data) -> None:
    h = await opened(harness)
    await h.press(MODERATOR, data, chat_id=GROUP)
    assert rows(h.relay.settings.database_url, HandoverCase)[0].state == "queued"
    assert h.alerts()[-1] in {"There is no case #999999.", "This button has expired."}
    assert h.request.sent(MODERATOR) == [] and h.request.of("editMessageText") == []


async def test_a_moderator_claims_and_the_conversation_moves_to_their_private_chat(harness) -> None:
    h = await opened(harness)
    number = case_number(h)
    await h.press(MODERATOR, f"case:claim:{number}", chat_id=GROUP)
    assert h.alerts()[-1] == f"Case #{number} is yours. Carry on in your private chat with the bot."
    intro = h.request.texts(MODERATOR)
    assert f"You hold case #{number}" in intro and "› my name is Sam and I'm scared" in intro
    assert response_text("utter_moderator_joined") in h.request.texts(PERSON)
    edited = h.request.of("editMessageText")[-1]
    assert "Claimed by Alex at" in edited["text"]
    assert [b["callback_data"] for r in edited["reply_markup"]["inline_keyboard"] for b in r] == [
        f"case:takeover:{number}",
        f"case:close:{number}",
    ]
    sent_to_rasa = len(h.rasa.received)
    await h.text(PERSON, "he said he would tell everyone")
    assert h.request.texts(MODERATOR).endswith(f"#{number} › he said he would tell everyone")
    assert len(h.rasa.received) == sent_to_rasa  # the bot is silent while a person holds the case
    before = len(h.request.sent(PERSON))
    await h.text(MODERATOR, "That sounds frightening. You did the right thing telling us.")
    assert h.request.sent(PERSON)[before:] == [
        {
            "chat_id": PERSON,
            "text": "Signpost team: That sounds frightening. You did the right thing telling us.",
            # Quick exit is one tap away while talking to a person too.
            "reply_markup": {
                "inline_keyboard": [[{"callback_data": "/quick_exit", "text": "Leave quickly"}]]
            },
        }
    ]
    await h.press(OTHER_MODERATOR, f"case:claim:{number}", chat_id=GROUP)
    assert h.alerts()[-1] == f"Case #{number} is already claimed or closed."


async def test_claiming_without_a_private_chat_leaves_the_case_queued(harness) -> None:
    h = await opened(harness)
    h.request.blocked.add(MODERATOR)
    await h.press(MODERATOR, f"case:claim:{case_number(h)}", chat_id=GROUP)
    assert "Open a private chat with the bot" in h.alerts()[-1]
    case = rows(h.relay.settings.database_url, HandoverCase)[0]
    assert case.state == "queued" and case.claimed_by is None
    moves = [e.move for e in rows(h.relay.settings.database_url, CaseEvent)]
    assert moves == ["open", "claim", "release"]


async def test_a_reply_picks_the_case_when_a_moderator_holds_two(harness) -> None:
    h = await opened(harness)
    first = case_number(h)
    await h.text(SECOND_PERSON, "i want to die")
    second = case_number(h)
    await h.text(MODERATOR, f"/claim {first}")
    await h.text(MODERATOR, f"/claim {second}")
    await h.text(SECOND_PERSON, "are you there")
    relayed = h.request.calls[-1]
    assert relayed.params["text"] == f"#{second} › are you there"
    await h.text(MODERATOR, "yes, I'm here")
    assert "You hold 2 cases" in h.request.texts(MODERATOR)
    reply_to = _message_id_of(h, MODERATOR, f"#{second} › are you there")
    await h.text(MODERATOR, "yes, I'm here", reply_to=reply_to)
    assert h.request.texts(SECOND_PERSON).endswith("Signpost team: yes, I'm here")
    assert "Signpost team: yes" not in h.request.texts(PERSON)


async def test_a_reply_to_a_line_not_linked_yet_reaches_the_person_of_the_case_it_names(harness) -> None:
    h = await opened(harness)
    number = case_number(h)
    await h.text(MODERATOR, f"/claim {number}")
    # The moderator answers a relayed line whose link is not saved yet (another instance sent it, or
    # Telegram's answer to the send is slow): the number at the start of the line says the case.
    unlinked, line = 987_654, f"#{number} › are you there"
    await h.text(MODERATOR, "yes, I'm here", reply_to=unlinked, quoting=line)
    assert h.request.texts(PERSON).endswith("Signpost team: yes, I'm here")

    # Only the bot's own lines count, and only for a case the moderator holds.
    await h.text(MODERATOR, "from my own message", reply_to=unlinked + 1, quoting=line, quoted_from=MODERATOR)
    await h.text(MODERATOR, "to a case i don't hold", reply_to=unlinked + 2, quoting=f"#{number + 1} › hi")
    assert "from my own message" not in h.request.texts(PERSON)
    assert "to a case i don't hold" not in h.request.texts(PERSON)
    told = h.request.texts(MODERATOR)
    assert "That message isn't from a case. Nothing was sent." in told
    assert "That message belongs to a case you don't hold now. Nothing was sent." in told


def _message_id_of(h: Any, chat_id: int, text: str) -> int:
    """Return the id the fake gave to a message the bot sent (ids follow the order of sendMessage calls)."""
    ids = iter(range(100, 100_000))
    for call in h.request.calls:
        if call.method == "sendMessage" and call.ok:
            message_id = next(ids)
            if call.params["chat_id"] == chat_id and call.params["text"] == text:
                return message_id
    raise AssertionError(f"{text!r} was not sent to {chat_id}")


async def test_a_note_is_kept_for_moderators_and_never_reaches_the_young_person(harness) -> None:
    h = await opened(harness)
    await h.text(MODERATOR, f"/claim {case_number(h)}")
    await h.text(MODERATOR, "/note school DSL already aware")
    assert "Note added to case" in h.request.texts(MODERATOR)
    assert "school DSL" not in h.request.texts(PERSON)
    notes = [m.body for m in rows(h.relay.settings.database_url, CaseMessage) if m.sender == "note"]
    assert [h.relay.cipher.open(note) for note in notes] == ["school DSL already aware"]


async def test_close_returns_the_person_to_the_bot_and_asks_how_it_went(harness) -> None:
    h = await opened(harness)
    number = case_number(h)
    await h.text(MODERATOR, f"/claim {number}")
    await h.text(MODERATOR, "/close")
    assert f"Case #{number} is closed." in h.request.texts(MODERATOR)
    assert response_text("utter_handover_closed") in h.request.texts(PERSON)
    rating = h.request.sent(PERSON)[-1]
    assert [b["callback_data"] for r in rating["reply_markup"]["inline_keyboard"] for b in r] == [
        f"rate:{number}:{n}" for n in range(1, 6)
    ]
    assert h.rasa.messages()[-1] == "/session_start"  # a fresh Rasa session: handover slots reset
    assert "Closed at" in h.request.of("editMessageText")[-1]["text"]
    await h.press(PERSON, f"rate:{number}:4")
    await h.press(PERSON, f"rate:{number}:1")  # a second rating is not taken
    await h.press(SECOND_PERSON, f"rate:{number}:1")  # nor someone else's
    case = rows(h.relay.settings.database_url, HandoverCase)[0]
    assert (case.state, case.feedback, case.chat_token) == ("closed", 4, None)
    await h.text(PERSON, "thanks")
    assert h.rasa.messages()[-1] == "thanks"  # back with the bot
    moves = [(e.move, e.actor) for e in rows(h.relay.settings.database_url, CaseEvent)]
    assert moves == [
        ("open", "user"),
        ("claim", f"moderator:{MODERATOR}"),
        ("close", f"moderator:{MODERATOR}"),
    ]


async def test_the_cards_close_button_ends_a_queued_case(harness) -> None:
    h = await opened(harness)
    await h.press(OTHER_MODERATOR, f"case:close:{case_number(h)}", chat_id=GROUP)
    assert h.alerts()[-1] == f"Case #{case_number(h)} is closed."
    assert response_text("utter_handover_closed") in h.request.texts(PERSON)
    await h.press(OTHER_MODERATOR, f"case:close:{case_number(h)}", chat_id=GROUP)
    assert h.alerts()[-1] == f"Case #{case_number(h)} is already closed."


async def test_media_during_a_claimed_case_reaches_the_moderator_only_as_a_notice(harness) -> None:
    h = await opened(harness)
    await h.text(MODERATOR, f"/claim {case_number(h)}")
    photo = [{"file_id": "secret-file", "file_unique_id": "u", "width": 9, "height": 9}]
    await h.feed({"message": message(PERSON, photo=photo)})
    assert h.request.texts(MODERATOR).endswith("[the user sent a photo — deleted, not viewed]")
    assert "secret-file" not in str([c.params for c in h.request.calls if c.method != "deleteMessage"])


async def test_a_moderators_photo_is_not_passed_on(harness) -> None:
    h = await opened(harness)
    await h.text(MODERATOR, f"/claim {case_number(h)}")
    before = len(h.request.sent(PERSON))
    await h.feed(
        {
            "message": message(
                MODERATOR, photo=[{"file_id": "p", "file_unique_id": "u", "width": 1, "height": 1}]
            )
        }
    )
    assert "Only text reaches the young person" in h.request.texts(MODERATOR)
    assert len(h.request.sent(PERSON)) == before


async def test_nobody_claiming_in_time_is_told_honestly_and_moderators_are_reminded(harness) -> None:
    h = await opened(harness)
    await h.relay.check_waiting()
    assert response_text("utter_handover_waiting") not in h.request.texts(PERSON)
    h.clock.advance(minutes=6)
    await h.relay.check_waiting()
    await h.relay.check_waiting()
    assert h.request.texts(PERSON).count(response_text("utter_handover_waiting")) == 1
    reminders = [p["text"] for p in h.cards() if p["text"].startswith("Still waiting")]
    assert len(reminders) == 1 and f"#{case_number(h)} · NORMAL" in reminders[0]
    assert rows(h.relay.settings.database_url, HandoverCase)[0].state == "queued"
    h.clock.advance(minutes=11)
    await h.relay.check_waiting()
    assert len([p for p in h.cards() if p["text"].startswith("Still waiting")]) == 2


async def test_outside_moderators_hours_the_person_is_told_at_once(harness) -> None:
    clock = Clock()  # 12:00 UK time
    h = await harness(scripted(), clock=clock, moderator_hours=Hours.parse("18:00-23:00"))
    await h.text(PERSON, "i want a person")
    assert response_text("utter_handover_out_of_hours") in h.request.texts(PERSON)
    assert "Case #" in h.cards()[-1]["text"]  # still queued for when they are back


async def test_a_restart_keeps_open_and_claimed_cases(harness) -> None:
    h = await opened(harness)
    number = case_number(h)
    await h.text(MODERATOR, f"/claim {number}")
    restarted = await harness(scripted())
    await restarted.text(PERSON, "are you still there?")
    assert restarted.request.texts(MODERATOR) == f"#{number} › are you still there?"
    await restarted.text(MODERATOR, "Yes, still here.")
    assert restarted.request.texts(PERSON) == "Signpost team: Yes, still here."
    assert restarted.rasa.received == []


async def test_with_the_database_down_the_request_still_reaches_the_moderators(harness, tmp_path) -> None:
    broken = f"sqlite:///{tmp_path / 'missing' / 'never-migrated.db'}"
    h = await harness(scripted(), database_url=broken)
    await h.text(PERSON, "i want to die")
    card = h.cards()[-1]["text"]
    assert "URGENT · NOT SAVED" in card and "danger now" in card
    assert "I've asked a person" in h.request.texts(PERSON)


async def test_the_case_tables_hold_a_pseudonym_never_the_telegram_identity(harness) -> None:
    h = await opened(harness)
    case = rows(h.relay.settings.database_url, HandoverCase)[0]
    assert case.user_ref == pseudonym(KEY.encode(), PERSON)
    # How to reach them is needed while the case is open, and it is stored encrypted.
    assert case.chat_token is not None and h.relay.cipher.open(case.chat_token) == str(PERSON)
    values = [str(v) for v in vars(case).values()]
    assert "Alex" not in values and f"user{PERSON}" not in values
    assert not any(str(PERSON) in v for v in values)


async def test_a_moderators_unknown_command_never_reaches_the_young_person(harness) -> None:
    h = await opened(harness)
    await h.text(MODERATOR, f"/claim {case_number(h)}")
    before = len(h.request.sent(PERSON))
    await h.text(MODERATOR, "/start")
    assert "Commands: /queue" in h.request.texts(MODERATOR)
    assert len(h.request.sent(PERSON)) == before
