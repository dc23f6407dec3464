"""Claims that outlive their moderator (offline): the allow-list on every relay, cases given back to the
queue, /release, takeover, and the reminder about a claimed case nobody answers."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from bot import cases
from bot.models import CaseEvent, HandoverCase, ModeratorAction, UserBlock
from bot.responses import response_text
from tests.bot.conftest import GROUP, MODERATOR, OTHER_MODERATOR, PERSON, STRANGER, Clock, message
from tests.bot.test_handover import case_number, opened, rows, scripted

pytestmark = pytest.mark.anyio

LEFT = response_text("utter_moderator_left")


async def claimed(harness: Any, **changes: Any) -> tuple[Any, int]:
    """Return a harness whose person's case MODERATOR holds, and the case's number."""
    h = await opened(harness, **changes)
    number = case_number(h)
    await h.text(MODERATOR, f"/claim {number}")
    assert f"You hold case #{number}" in h.request.texts(MODERATOR)
    return h, number


def case_row(h: Any) -> HandoverCase:
    (case,) = rows(h.relay.settings.database_url, HandoverCase)
    return case


def moves(h: Any) -> list[tuple[str, str]]:
    return [(e.move, e.actor) for e in rows(h.relay.settings.database_url, CaseEvent)]


def audit(h: Any) -> list[tuple[str, int | None, int]]:
    return [
        (a.action, a.case_number, a.moderator_id)
        for a in rows(h.relay.settings.database_url, ModeratorAction)
    ]


def buttons(card: dict[str, Any]) -> list[str]:
    return [
        b["callback_data"] for row in card.get("reply_markup", {}).get("inline_keyboard", []) for b in row
    ]


def fresh_card(h: Any, number: int) -> dict[str, Any]:
    """Return the newest card of a case posted in the group (asserting there is one)."""
    found = [c for c in h.cards() if c["text"].startswith(f"Case #{number} ·")]
    assert found, "no card was posted"
    return found[-1]


# ---------------------------------------------------------------- the allow-list on every relay


async def test_a_removed_moderator_receives_nothing_after_a_restart_and_the_case_is_back_in_the_queue(
    harness,
) -> None:
    _, number = await claimed(harness)
    restarted = await harness(scripted(), moderator_user_ids=frozenset({OTHER_MODERATOR}))
    # At start-up the case went back to the queue, with a fresh card the others can claim.
    assert case_row(restarted).state == "queued" and case_row(restarted).claimed_by is None
    card = fresh_card(restarted, number)
    assert "Waiting since" in card["text"] and buttons(card) == [
        f"case:claim:{number}",
        f"case:close:{number}",
    ]
    assert "isn't on the moderators' list" in restarted.request.texts(GROUP)
    assert LEFT in restarted.request.texts(PERSON)
    await restarted.text(PERSON, "are you still there? he is messaging again")
    assert restarted.request.sent(MODERATOR) == []  # not a word of the young person's reaches them
    assert ("requeue", "system") in moves(restarted)
    await restarted.text(OTHER_MODERATOR, f"/claim {number}")
    assert "he is messaging again" in restarted.request.texts(OTHER_MODERATOR)


async def test_the_allowlist_is_checked_when_a_line_is_relayed_not_only_at_start_up(harness) -> None:
    h, number = await claimed(harness)
    before = len(h.request.sent(MODERATOR))
    # The list changed under the running relay (as another instance, restarted, would see it).
    h.relay.roster.allowlist = frozenset({OTHER_MODERATOR})
    await h.text(PERSON, "hello? are you there")
    assert len(h.request.sent(MODERATOR)) == before
    assert case_row(h).state == "queued"
    assert LEFT in h.request.texts(PERSON)
    assert "hello? are you there" in fresh_card(h, number)["text"]  # the next moderator sees it


async def test_a_moderator_who_blocked_the_bot_loses_the_case_to_the_queue(harness) -> None:
    h, number = await claimed(harness)
    h.request.blocked.add(MODERATOR)  # their private chat now answers 403 Forbidden
    await h.text(PERSON, "i need help now")
    assert case_row(h).state == "queued"
    assert moves(h)[-1] == ("requeue", "system")
    assert "can't be reached" in h.request.texts(GROUP)
    assert buttons(fresh_card(h, number)) == [f"case:claim:{number}", f"case:close:{number}"]
    assert LEFT in h.request.texts(PERSON)
    await h.text(PERSON, "hello?")
    assert h.rasa.messages()[-1] == "hello?"  # back with the bot while they wait, as any queued case


async def test_a_claim_held_by_an_unreachable_moderator_is_given_back_by_the_waiting_check(
    harness, monkeypatch
) -> None:
    h, number = await claimed(harness)
    h.request.blocked.add(MODERATOR)
    real, failures = cases.move, []

    def first_requeue_fails(*args: Any, **kwargs: Any) -> Any:
        if args[3] == "requeue" and not failures:
            failures.append(args[3])
            raise OperationalError("UPDATE", {}, Exception("database is locked"))
        return real(*args, **kwargs)

    monkeypatch.setattr(cases, "move", first_requeue_fails)
    await h.text(PERSON, "hello?")
    assert failures and case_row(h).state == "claimed"  # giving it back met a database error
    await h.relay.check_waiting()
    assert case_row(h).state == "queued"
    assert buttons(fresh_card(h, number))[0] == f"case:claim:{number}"


# ---------------------------------------------------------------- /release


async def test_release_gives_the_case_back_to_the_queue_with_a_fresh_card_and_an_audit_row(harness) -> None:
    h, number = await claimed(harness)
    cards_before = len(h.cards())
    await h.text(MODERATOR, "/release")
    assert f"Case #{number} is back in the queue" in h.request.texts(MODERATOR)
    assert case_row(h).state == "queued" and case_row(h).claimed_by is None
    assert len(h.cards()) > cards_before and buttons(fresh_card(h, number))[0] == f"case:claim:{number}"
    assert LEFT in h.request.texts(PERSON)
    assert moves(h)[-1] == ("release", f"moderator:{MODERATOR}")
    assert audit(h)[-1] == ("release", number, MODERATOR)
    before = len(h.request.sent(MODERATOR))
    await h.text(PERSON, "ok")
    assert len(h.request.sent(MODERATOR)) == before


async def test_only_the_moderator_holding_a_case_can_release_it(harness) -> None:
    h, number = await claimed(harness)
    await h.text(OTHER_MODERATOR, f"/release {number}")
    assert f"You don't hold case #{number}" in h.request.texts(OTHER_MODERATOR)
    assert case_row(h).claimed_by == MODERATOR


# ---------------------------------------------------------------- takeover


async def test_another_moderator_takes_over_from_the_card_and_the_first_is_told(harness) -> None:
    h, number = await claimed(harness)
    assert buttons(h.request.of("editMessageText")[-1]) == [f"case:takeover:{number}", f"case:close:{number}"]
    await h.press(OTHER_MODERATOR, f"case:takeover:{number}", chat_id=GROUP)
    assert h.alerts()[-1].startswith(f"Case #{number} is yours now")
    assert f"You hold case #{number}" in h.request.texts(OTHER_MODERATOR)
    assert f"Case #{number} was taken over by Alex" in h.request.texts(MODERATOR)
    assert case_row(h).claimed_by == OTHER_MODERATOR
    assert moves(h)[-1] == ("takeover", f"moderator:{OTHER_MODERATOR}")
    assert audit(h)[-1] == ("takeover", number, OTHER_MODERATOR)
    before = len(h.request.sent(MODERATOR))
    await h.text(PERSON, "who is this now?")
    assert h.request.texts(OTHER_MODERATOR).endswith(f"#{number} › who is this now?")
    assert len(h.request.sent(MODERATOR)) == before
    await h.text(OTHER_MODERATOR, "I'm from the same team, I'm here.")
    assert h.request.texts(PERSON).endswith("Signpost team: I'm from the same team, I'm here.")
    await h.text(MODERATOR, "still here!")  # the first moderator's words no longer reach the person
    assert "still here!" not in h.request.texts(PERSON)


async def test_takeover_by_command_and_its_refusals(harness) -> None:
    h, number = await claimed(harness)
    await h.text(MODERATOR, f"/takeover {number}")
    assert f"You already hold case #{number}" in h.request.texts(MODERATOR)
    await h.text(OTHER_MODERATOR, "/takeover")
    assert "Say which case" in h.request.texts(OTHER_MODERATOR)
    await h.text(OTHER_MODERATOR, f"/takeover {number}")
    assert case_row(h).claimed_by == OTHER_MODERATOR
    await h.text(OTHER_MODERATOR, "/release")
    await h.text(MODERATOR, f"/takeover {number}")  # a queued case is claimed, not taken over
    assert f"Case #{number} isn't held by anyone" in h.request.texts(MODERATOR)
    assert case_row(h).state == "queued"


async def test_a_takeover_by_a_moderator_without_a_private_chat_leaves_the_case_where_it_was(harness) -> None:
    h, number = await claimed(harness)
    h.request.blocked.add(OTHER_MODERATOR)
    await h.press(OTHER_MODERATOR, f"case:takeover:{number}", chat_id=GROUP)
    assert "Open a private chat with the bot" in h.alerts()[-1]
    assert case_row(h).claimed_by == MODERATOR and case_row(h).state == "claimed"
    await h.text(PERSON, "hi again")
    assert h.request.texts(MODERATOR).endswith(f"#{number} › hi again")


# ---------------------------------------------------------------- attacks


async def test_a_stranger_typing_release_or_takeover_only_talks_to_the_bot(harness) -> None:
    h, number = await claimed(harness)
    await h.text(STRANGER, "/release")
    await h.text(STRANGER, f"/takeover {number}")
    assert case_row(h).claimed_by == MODERATOR
    assert h.rasa.messages()[-2:] == ["release", f"takeover {number}"]
    assert all(a[2] == MODERATOR for a in audit(h))


@pytest.mark.parametrize(
    "data",
    [
        "case:takeover:{n}",
        "case:takeover:0",
        "case:takeover:{n}0000000000000",
        "case:takeover:-1",
        "case:release:{n}",
    ],
)
async def test_forged_takeover_buttons_change_nothing(harness, data) -> None:
    h, number = await claimed(harness)
    await h.press(STRANGER, data.format(n=number), chat_id=GROUP)
    await h.press(PERSON, data.format(n=number))  # from a person's own chat
    assert h.alerts()[-2:] in (
        ["Only Signpost moderators can do this."] * 2,
        ["This button has expired."] * 2,
    )
    assert case_row(h).claimed_by == MODERATOR
    assert h.request.sent(STRANGER) == []


async def test_a_takeover_button_of_a_closed_case_does_nothing(harness) -> None:
    h, number = await claimed(harness)
    await h.text(MODERATOR, "/close")
    await h.press(OTHER_MODERATOR, f"case:takeover:{number}", chat_id=GROUP)
    assert h.alerts()[-1] == f"Case #{number} isn't held by anyone: it is closed."
    assert case_row(h).state == "closed"


# ---------------------------------------------------------------- nobody answering a claimed case


async def test_a_claimed_case_nobody_answers_is_brought_to_the_groups_attention(harness) -> None:
    clock = Clock()
    h, number = await claimed(harness, clock=clock)
    await h.text(MODERATOR, "Hi, I'm here. What happened?")
    clock.advance(minutes=1)
    await h.text(PERSON, "he says he will post my pictures")
    clock.advance(minutes=4)
    await h.relay.check_waiting()
    assert not [c for c in h.cards() if c["text"].startswith("No answer")]  # 4 minutes: not yet
    clock.advance(minutes=2)
    await h.relay.check_waiting()
    await h.relay.check_waiting()
    (reminder,) = [c["text"] for c in h.cards() if c["text"].startswith("No answer")]
    assert (
        f"#{number} · NORMAL" in reminder and "held by Alex" in reminder and f"/takeover {number}" in reminder
    )
    assert "pictures" not in reminder  # the group is told that, not what
    await h.text(MODERATOR, "I'm so sorry. You did the right thing telling us.")
    clock.advance(minutes=30)
    await h.relay.check_waiting()
    assert len([c for c in h.cards() if c["text"].startswith("No answer")]) == 1  # answered: quiet


async def test_a_claim_with_no_word_from_its_moderator_is_reminded_about_too(harness) -> None:
    clock = Clock()
    h, number = await claimed(harness, clock=clock)
    clock.advance(minutes=6)
    await h.relay.check_waiting()
    assert any(c["text"].startswith("No answer") and f"#{number}" in c["text"] for c in h.cards())


# ---------------------------------------------------------------- a case another moderator holds (A8)


async def test_only_the_holder_closes_a_claimed_case_others_take_it_over_first(harness) -> None:
    h, number = await claimed(harness)
    told = len(h.request.sent(PERSON))
    await h.press(OTHER_MODERATOR, f"case:close:{number}", chat_id=GROUP)
    refusal = f"Case #{number} is held by Alex: only they can close it. /takeover {number} first"
    assert h.alerts()[-1].startswith(refusal)
    await h.text(OTHER_MODERATOR, f"/close {number}")
    assert h.request.texts(OTHER_MODERATOR).startswith(refusal)
    assert case_row(h).state == "claimed" and len(h.request.sent(PERSON)) == told
    await h.text(OTHER_MODERATOR, f"/takeover {number}")
    await h.text(OTHER_MODERATOR, "/close")
    assert case_row(h).state == "closed"
    assert moves(h)[-2:] == [
        ("takeover", f"moderator:{OTHER_MODERATOR}"),
        ("close", f"moderator:{OTHER_MODERATOR}"),
    ]


async def test_only_the_holder_blocks_the_person_of_a_claimed_case(harness) -> None:
    h, number = await claimed(harness)
    await h.text(OTHER_MODERATOR, f"/block {number}")
    assert f"Case #{number} is held by Alex: only they can block it." in h.request.texts(OTHER_MODERATOR)
    assert rows(h.relay.settings.database_url, UserBlock) == []
    assert case_row(h).state == "claimed"
    await h.text(MODERATOR, f"/block {number}")
    assert len(rows(h.relay.settings.database_url, UserBlock)) == 1 and case_row(h).state == "closed"


async def test_any_moderator_may_close_or_block_a_queued_case(harness) -> None:
    h = await opened(harness)
    number = case_number(h)
    await h.text(OTHER_MODERATOR, f"/block {number}")
    assert case_row(h).state == "closed" and len(rows(h.relay.settings.database_url, UserBlock)) == 1


# ---------------------------------------------------------------- notices marked as the bot's (A8)


async def test_the_bots_notices_in_a_moderators_chat_never_look_like_the_persons_words(harness) -> None:
    h, number = await claimed(harness)
    photo = [{"file_id": "f", "file_unique_id": "u", "width": 9, "height": 9}]
    await h.feed({"message": message(PERSON, photo=photo)})
    notice = h.request.sent(MODERATOR)[-1]["text"]
    await h.text(PERSON, "[the user sent a photo — deleted, not viewed]")  # a person imitating one
    imitation = h.request.sent(MODERATOR)[-1]["text"]
    assert notice == f"#{number} · from the bot: [the user sent a photo — deleted, not viewed]"
    assert imitation == f"#{number} › [the user sent a photo — deleted, not viewed]"
    # A reply to the bot's notice still picks its case.
    await h.text(MODERATOR, "I didn't see it, and that's fine.", reply_to=987_000, quoting=notice)
    assert h.request.texts(PERSON).endswith("Signpost team: I didn't see it, and that's fine.")
