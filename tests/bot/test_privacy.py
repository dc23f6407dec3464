"""Privacy through the real Application (offline): quick exit, forget me, retention, encryption at rest."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from actions.db import sessionmaker_for
from actions.models import Base
from bot import privacy
from bot.crypto import UNREADABLE, Cipher, new_key
from bot.models import CaseMessage, ChatTrail, HandledUpdate, HandoverCase, ModeratorAction, UserBlock
from bot.pseudonym import pseudonym
from bot.responses import response_text
from scripts.stack import APP_PYTHON, ROOT
from tests.bot.conftest import GROUP, KEY, MODERATOR, PERSON, TRANSCRIPT_KEY, Clock, FakeRasa, message
from tests.bot.test_handover import SECOND_PERSON, case_number, opened, rows

pytestmark = pytest.mark.anyio

REF = pseudonym(KEY.encode(), PERSON)
NEUTRAL = response_text("utter_quick_exit")
THIRD_PERSON = 4545


def every_value(url: str) -> list[str]:
    """Return every value in every table of our database, as text."""
    with sessionmaker_for(url).begin() as session:
        return [
            str(value)
            for table in Base.metadata.sorted_tables
            for row in session.execute(select(table))
            for value in row
            if value is not None
        ]


def add_events(url: str, sender: str, count: int, at: dt.datetime, kind: str = "user") -> None:
    """Put events in the tracker store's `events` table the way Rasa's SQLTrackerStore writes them."""
    with sessionmaker_for(url).begin() as tracker:
        tracker.execute(
            insert(privacy.EVENTS),
            [{"sender_id": sender, "type_name": kind, "timestamp": at.timestamp()} for _ in range(count)],
        )


def senders(url: str) -> dict[str, int]:
    with sessionmaker_for(url).begin() as tracker:
        found: dict[str, int] = {}
        for (sender,) in tracker.execute(select(privacy.EVENTS.c.sender_id)):
            found[sender] = found.get(sender, 0) + 1
        return found


# ---------------------------------------------------------------- minimisation


async def test_no_table_holds_the_persons_telegram_id_name_or_username_while_their_case_is_live(
    harness,
) -> None:
    h = await opened(harness, text="he has my pics")
    number = case_number(h)
    await h.text(MODERATOR, f"/claim {number}")
    identity = {"id": PERSON, "is_bot": False, "first_name": "Zuleika", "last_name": "Quested"}
    said = message(PERSON, text="he said he will send them to my school")
    await h.feed({"message": {**said, "from": {**identity, "username": "zuleika_q"}}})
    await h.text(MODERATOR, "You're not in trouble. Can you tell me more?")
    await h.text(MODERATOR, "/note seems scared")
    await h.text(MODERATOR, f"/block {number}")
    database = h.relay.settings.database_url
    assert rows(database, ChatTrail) and rows(database, UserBlock) and rows(database, HandledUpdate)
    values = every_value(database)
    assert REF in values  # the pseudonym is there: it is what every table keys the person by
    assert str(PERSON) not in values  # the chat id is there only encrypted (chat_token)
    assert "he said he will send them to my school" not in values  # the transcript is encrypted
    assert not [v for v in values if re.search(rf"\b{PERSON}\b|Zuleika|Quested|zuleika_q", v)]


# ---------------------------------------------------------------- quick exit


async def test_exit_deletes_the_conversation_from_the_chat_and_leaves_a_neutral_message(harness) -> None:
    h = await harness()
    mine = [await h.text(PERSON, "someone keeps messaging me"), await h.text(PERSON, "they want photos")]
    bots = h.request.sent_ids(PERSON)
    assert len(bots) == 2
    exit_id = await h.text(PERSON, "/exit")
    assert h.request.deleted(PERSON) >= {*mine, *bots, exit_id}
    assert h.request.sent(PERSON)[-1]["text"] == NEUTRAL
    await h.relay.leaving.resets_sent()  # Rasa is told in the background
    assert "/exit" not in h.rasa.messages() and h.rasa.messages()[-1] == "/quick_exit"  # Rasa restarts
    # Only the neutral message is remembered now, so a second exit can remove it too.
    assert [t.message_id for t in rows(h.relay.settings.database_url, ChatTrail)] == [
        h.request.sent_ids(PERSON)[-1]
    ]


async def test_the_leave_quickly_button_works_while_the_assistant_is_down(harness) -> None:
    h = await harness(FakeRasa(down=True))
    said = await h.text(PERSON, "he is outside my house")
    assert "999" in h.request.texts(PERSON)  # the crisis numbers came at once
    await h.press(PERSON, "/quick_exit")
    assert said in h.request.deleted(PERSON) and set(h.request.sent_ids(PERSON)[:-1]) <= h.request.deleted(
        PERSON
    )
    assert h.request.sent(PERSON)[-1]["text"] == NEUTRAL
    h.rasa.down = False
    await h.relay.retry_pending()
    assert h.rasa.messages() == []  # nothing pops back into the chat after leaving


async def test_quick_exit_during_a_claimed_case_tells_the_moderator(harness) -> None:
    h = await opened(harness)
    await h.text(MODERATOR, f"/claim {case_number(h)}")
    await h.text(MODERATOR, "Are you somewhere safe?")
    relayed = h.request.sent_ids(PERSON)[-1]
    await h.text(PERSON, "/exit")
    assert relayed in h.request.deleted(PERSON)  # the moderator's words go from the chat too
    assert "quick exit" in h.request.texts(MODERATOR)


# ---------------------------------------------------------------- forget me


async def test_forget_asks_first_and_no_keeps_everything(harness) -> None:
    h = await opened(harness)
    await h.text(PERSON, "/forget")
    question = h.request.sent(PERSON)[-1]
    buttons = [b["callback_data"] for row in question["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == ["forget:yes", "forget:no"] and "can't be undone" in question["text"]
    await h.press(PERSON, "forget:no")
    assert h.request.sent(PERSON)[-1]["text"] == response_text("utter_forget_cancelled")
    assert len(rows(h.relay.settings.database_url, HandoverCase)) == 1
    assert "/forget" not in h.rasa.messages()  # Rasa never sees it


async def test_forget_deletes_every_row_and_tracker_event_about_the_person(harness, trackers_url) -> None:
    h = await opened(harness, text="he has my pics")
    number = case_number(h)
    await h.text(MODERATOR, f"/claim {number}")
    await h.text(MODERATOR, "You're not in trouble.")
    await h.text(MODERATOR, "/note check in tomorrow")
    await h.text(PERSON, "thank you")
    await h.text(SECOND_PERSON, "i want a person")  # someone else, who must be untouched
    other = pseudonym(KEY.encode(), SECOND_PERSON)
    now = h.clock()
    add_events(trackers_url, REF, 3, now)
    add_events(trackers_url, REF, 4, now, kind="bot")
    add_events(trackers_url, other, 2, now)
    database = h.relay.settings.database_url
    assert any(REF in v for v in every_value(database))

    await h.text(PERSON, "/forget")
    await h.press(PERSON, "forget:yes")

    left = every_value(database)
    assert not any(REF in v for v in left)
    assert not any(v == str(PERSON) for v in left)
    assert any(other in v for v in left)  # the other person's case is still there
    assert senders(trackers_url) == {other: 2}
    done = h.request.sent(PERSON)[-1]["text"]
    assert done == response_text("utter_forget_done").format(said=3, cases=1)
    assert f"Case #{number} is gone" in h.request.texts(MODERATOR)
    relayed = [
        i
        for i, m in zip(h.request.sent_ids(MODERATOR), h.request.sent(MODERATOR), strict=True)
        if "thank you" in m["text"]
    ]
    assert relayed and set(relayed) <= h.request.deleted(MODERATOR)  # from the moderator's chat too
    assert f"Case #{number} is gone" in h.request.of("editMessageText")[-1]["text"]
    assert set(h.request.sent_ids(PERSON)[:-1]) <= h.request.deleted(PERSON)
    # The person can start again as a stranger.
    await h.text(PERSON, "hi")
    assert h.request.sent(PERSON)[-1]["text"] == "echo: hi"


async def test_forget_works_while_the_assistant_is_down(harness, trackers_url) -> None:
    h = await harness(FakeRasa(down=True))
    add_events(trackers_url, REF, 2, h.clock())
    await h.text(PERSON, "/forget")
    await h.press(PERSON, "forget:yes")
    assert senders(trackers_url) == {}
    assert "Done." in h.request.sent(PERSON)[-1]["text"]


# ---------------------------------------------------------------- retention


async def test_the_retention_purge_deletes_what_is_older_and_keeps_the_rest(harness, trackers_url) -> None:
    clock = Clock()
    start = clock()
    h = await opened(harness, clock=clock)  # case 1: closed now, so 31 days old at the purge
    database = h.relay.settings.database_url
    first = case_number(h)
    await h.text(MODERATOR, f"/close {first}")
    await h.text(MODERATOR, f"/block {first}")
    (lifted,) = rows(database, UserBlock)
    await h.text(MODERATOR, f"/unblock {lifted.id}")  # an ended block has nothing left to do
    add_events(trackers_url, "inactive", 5, start)
    clock.advance(days=2)
    await h.text(SECOND_PERSON, "i want a person")  # case 2: stays open
    add_events(trackers_url, "active", 5, start + dt.timedelta(days=29))
    assert len(rows(database, ChatTrail)) > 0
    assert len(rows(database, HandledUpdate)) > 0

    clock.advance(days=29, hours=1)
    # What is recent stays: a case closed just now, its person's block, their chat's trail, the updates.
    await h.text(THIRD_PERSON, "i want a person")  # case 3
    third = case_number(h)
    await h.text(MODERATOR, f"/close {third}")
    await h.text(MODERATOR, f"/block {third}")
    purged = await h.relay.purge()

    assert purged is not None
    assert (purged.cases, purged.conversations, purged.blocks) == (1, 1, 1)
    left = {c.id: c.state for c in rows(database, HandoverCase)}
    assert sorted(left.values()) == ["closed", "queued"]
    lines = rows(database, CaseMessage)
    assert lines and {m.case_id for m in lines} <= set(left)  # case 1's transcript went with it
    assert senders(trackers_url) == {"active": 5}
    third_ref = pseudonym(KEY.encode(), THIRD_PERSON)
    # Trail ids older than the 48 hours Telegram allows deletes for go; the newest chat's stay.
    assert {t.user_ref for t in rows(database, ChatTrail)} == {third_ref}
    updates = rows(database, HandledUpdate)  # kept a day, as long as Telegram keeps an update
    assert updates and all(u.at >= clock() - dt.timedelta(days=1) for u in updates)
    assert [(b.user_ref, b.lifted_at) for b in rows(database, UserBlock)] == [(third_ref, None)]
    audited = ["close", "block", "unblock", "close", "block"]
    assert [a.action for a in rows(database, ModeratorAction)] == audited  # the audit trail lasts longer
    clock.advance(days=366)
    await h.relay.purge()
    assert rows(database, ModeratorAction) == []


def test_the_purge_command_deletes_old_closed_cases(cases_url: str, trackers_url: str) -> None:
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    with sessionmaker_for(cases_url).begin() as session:
        session.add(
            HandoverCase(
                user_ref="old",
                state="closed",
                priority="normal",
                priority_rank=2,
                reason="request_human",
                opened_at=long_ago,
                closed_at=long_ago,
            )
        )
    add_events(trackers_url, "old", 3, long_ago)
    env = {
        **os.environ,
        "DATABASE_URL": cases_url,
        "TRACKER_STORE_URL": trackers_url,
        "PSEUDONYM_KEY": KEY,
        "TRANSCRIPT_KEYS": TRANSCRIPT_KEY,
    }
    done = subprocess.run(
        [str(APP_PYTHON), "-m", "bot.privacy", "purge"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "closed cases 1" in done.stdout and "Rasa conversations 1 (3 events)" in done.stdout
    assert rows(cases_url, HandoverCase) == [] and senders(trackers_url) == {}


# ---------------------------------------------------------------- encryption at rest


async def test_a_copied_database_shows_no_words_and_no_chat_id(harness, database_url: str) -> None:
    h = await opened(harness, text="he has my pics")
    await h.text(MODERATOR, f"/claim {case_number(h)}")
    await h.text(PERSON, "my teacher is called Mrs Okafor")
    await h.text(MODERATOR, "Thank you for telling me")
    with sessionmaker_for(database_url).begin() as session:
        bodies = list(session.scalars(text("SELECT body FROM case_message")))
        tokens = list(session.scalars(text("SELECT chat_token FROM handover_case")))
    assert len(bodies) >= 4
    raw = " ".join(bodies + tokens)
    for words in ("Okafor", "scared", "Thank you", str(PERSON)):
        assert words not in raw
    assert all(b.startswith("gAAAA") for b in bodies)  # Fernet tokens
    if database_url.startswith("sqlite:///"):
        file = Path(database_url.removeprefix("sqlite:///"))
        wal = file.with_name(file.name + "-wal")  # recent writes live here until a checkpoint
        copied = file.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
        assert b"Okafor" not in copied and b"Thank you for telling me" not in copied
    # Someone with the file but another key reads nothing; the right key reads it all.
    assert {Cipher([new_key()]).open(b) for b in bodies} == {UNREADABLE}
    assert "my teacher is called Mrs Okafor" in [h.relay.cipher.open(b) for b in bodies]


def test_update_ids_count_per_bot_so_a_new_bot_token_starts_afresh(session: Session) -> None:
    now = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
    privacy.note_update(session, 111, 5, now)
    privacy.note_update(session, 222, 5, now)  # another bot's update 5: not a second delivery
    with pytest.raises(IntegrityError), session.begin_nested():
        privacy.note_update(session, 111, 5, now)


def test_rotating_the_key_re_encrypts_every_line_and_chat_id(session: Session) -> None:
    old, new = TRANSCRIPT_KEY, new_key()
    before = Cipher([old])
    case = HandoverCase(
        user_ref="r",
        chat_token=before.seal("4242"),
        state="queued",
        priority="normal",
        priority_rank=2,
        reason="request_human",
        opened_at=dt.datetime(2026, 11, 25, tzinfo=dt.UTC),
    )
    session.add(case)
    session.flush()
    session.add_all(
        CaseMessage(case_id=case.id, at=case.opened_at, sender="user", body=before.seal(f"line {n}"))
        for n in range(3)
    )
    session.flush()
    assert privacy.rotate_keys(session, Cipher([new, old])) == (4, 0)
    only_new = Cipher([new])
    assert sorted(only_new.open(m.body) for m in session.scalars(select(CaseMessage))) == [
        "line 0",
        "line 1",
        "line 2",
    ]
    assert only_new.open(case.chat_token or "") == "4242"
    assert privacy.rotate_keys(session, Cipher([new_key()])) == (0, 4)  # a lost key is reported


# ---------------------------------------------------------------- blocks and the audit trail


async def test_a_block_stops_a_person_reaching_anyone_but_not_the_crisis_numbers(harness) -> None:
    clock = Clock()
    h = await opened(harness, clock=clock)
    number = case_number(h)
    await h.text(MODERATOR, f"/claim {number}")
    await h.text(MODERATOR, "/block")
    assert "Block #" in h.request.texts(MODERATOR) and f"case #{number}" in h.request.texts(MODERATOR)
    blocked = response_text("utter_blocked")
    assert h.request.sent(PERSON)[-1]["text"] == blocked and "0800 1111" in blocked
    assert rows(h.relay.settings.database_url, HandoverCase)[0].state == "closed"
    to_rasa, to_moderator = len(h.rasa.received), len(h.request.sent(MODERATOR))
    await h.text(PERSON, "you can't stop me")
    await h.text(PERSON, "spam spam")
    assert len(h.rasa.received) == to_rasa and len(h.request.sent(MODERATOR)) == to_moderator
    assert h.request.texts(PERSON).count(blocked) == 1  # not repeated to every message
    clock.advance(hours=2)
    await h.text(PERSON, "still here")
    assert h.request.texts(PERSON).count(blocked) == 2
    await h.text(PERSON, "/exit")  # quick exit still works for everyone
    assert h.request.sent(PERSON)[-1]["text"] == NEUTRAL

    block_id = rows(h.relay.settings.database_url, UserBlock)[0].id
    await h.text(MODERATOR, "/blocks")
    assert f"#{block_id} · case #{number} · until" in h.request.texts(MODERATOR)
    await h.text(MODERATOR, f"/unblock {block_id}")
    assert f"Block #{block_id} is lifted." in h.request.texts(MODERATOR)
    await h.text(PERSON, "sorry")
    assert h.rasa.messages()[-1] == "sorry"


async def test_a_block_is_kept_when_the_person_asks_to_be_forgotten(harness) -> None:
    h = await opened(harness)
    await h.text(MODERATOR, f"/block {case_number(h)}")
    await h.text(PERSON, "/forget")
    assert h.request.sent(PERSON)[-1]["text"] == response_text("utter_ask_forget")  # asked, though blocked
    await h.press(PERSON, "forget:yes")
    assert rows(h.relay.settings.database_url, HandoverCase) == []
    assert [b.user_ref for b in rows(h.relay.settings.database_url, UserBlock)] == [REF]
    h.relay.gate._blocked.clear()
    await h.relay.refresh_blocks()  # another instance, or a restart, still knows the block
    before = len(h.rasa.received)
    await h.text(PERSON, "new me")
    assert len(h.rasa.received) == before


async def test_every_moderator_action_is_audited_without_anyones_words(harness) -> None:
    h = await opened(harness)
    number = case_number(h)
    await h.press(MODERATOR, f"case:claim:{number}", chat_id=GROUP)
    await h.text(MODERATOR, "Hello, I'm here")
    await h.text(MODERATOR, "/note seems calmer")
    await h.text(MODERATOR, "/queue")
    await h.text(MODERATOR, "/close")
    await h.text(MODERATOR, f"/block {number}")
    await h.text(MODERATOR, "/blocks")
    (block,) = rows(h.relay.settings.database_url, UserBlock)
    await h.text(MODERATOR, f"/unblock {block.id}")
    trail = rows(h.relay.settings.database_url, ModeratorAction)
    assert [(a.action, a.case_number) for a in trail] == [
        ("claim", number),
        ("reply", number),
        ("note", number),
        ("queue", None),
        ("close", number),
        ("block", number),
        ("blocks", None),
        ("unblock", number),
    ]
    assert {a.moderator_id for a in trail} == {MODERATOR}
    details = " ".join(a.detail or "" for a in trail)
    assert "Hello" not in details and "calmer" not in details and REF not in details


async def test_someone_not_on_the_allowlist_cannot_block(harness) -> None:
    h = await opened(harness)
    await h.text(SECOND_PERSON, f"/block {case_number(h)}")  # a person typing it: just words for Rasa
    assert rows(h.relay.settings.database_url, UserBlock) == []
    assert h.rasa.messages()[-1] == f"block {case_number(h)}"
