"""Telegram end to end: the real Rasa server, action server and adapter (`python -m bot`, long polling)
against a local fake Telegram Bot API (tests/e2e/fake_telegram.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from actions.db import sessionmaker_for
from actions.models import Base
from bot.pseudonym import pseudonym
from scripts.stack import free_port, running_adapter
from tests.e2e.conftest import Assistant, new_person
from tests.e2e.fake_telegram import FakeTelegram

pytestmark = pytest.mark.e2e

GROUP = -1001234567890
MODERATOR = 6001
STRANGER = 6999
KEY = "e2e-" + "k" * 60
TRANSCRIPT_KEY = "ZTJlLXRyYW5zY3JpcHQta2V5LWZvci10ZXN0cy0zMmI="
CRISIS = ("999", "0800 1111", "85258", "116 123")


def adapter_env(fake: FakeTelegram, assistant: Assistant) -> dict[str, str]:
    return {
        "TELEGRAM_BOT_TOKEN": fake.token,
        "TELEGRAM_BASE_URL": fake.base_url,
        "MODERATOR_CHAT_ID": str(GROUP),
        "MODERATOR_USER_IDS": str(MODERATOR),
        "RASA_URL": assistant.rasa_url,
        "DATABASE_URL": assistant.database_url,
        "TRACKER_STORE_URL": assistant.tracker_store_url,
        "PSEUDONYM_KEY": KEY,
        "TRANSCRIPT_KEYS": TRANSCRIPT_KEY,
        "HANDOVER_WAIT_SECONDS": "3600",
    }


@dataclass
class Telegram:
    """The fake Bot API with the adapter polling it; `restart()` stops and starts the adapter."""

    fake: FakeTelegram
    env: dict[str, str]
    workdir: Path
    stack: ExitStack

    def start(self) -> None:
        calls = len(self.fake.calls("getUpdates"))
        self.stack.enter_context(running_adapter(self.workdir, self.env))
        self.fake.wait_for_call("getUpdates", timeout=60, after=calls)

    def restart(self) -> None:
        self.stack.close()
        self.stack = ExitStack()
        self.start()


@pytest.fixture(scope="module")
def telegram(assistant: Assistant, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Telegram]:
    with FakeTelegram() as fake:
        fake.add_group(GROUP, "Signpost moderators")
        fake.start_private_chat(MODERATOR)
        env = adapter_env(fake, assistant)
        running = Telegram(fake, env, tmp_path_factory.mktemp("adapter"), ExitStack())
        running.start()
        try:
            yield running
        finally:
            running.stack.close()


def say(fake: FakeTelegram, person: int, text: str, expect: str | None = None) -> dict[str, Any]:
    """The person writes; return the first new bot message in their chat (containing `expect`)."""
    seen = len(fake.messages(person))
    fake.user_sends_text(person, text)
    return fake.wait_for_message(person, lambda m: expect is None or expect in m.get("text", ""), after=seen)


def open_case(
    fake: FakeTelegram, person: int, text: str = "can i talk to a real person please"
) -> dict[str, Any]:
    """The person asks for a person; return the case card that appears in the moderators' group."""
    seen = len(fake.messages(GROUP))
    say(fake, person, text, expect="stays private")
    return fake.wait_for_message(GROUP, lambda m: m["text"].startswith("Case #"), after=seen)


def number_of(card: dict[str, Any]) -> int:
    return int(card["text"].split("#", 1)[1].split(" ", 1)[0])


def claim(fake: FakeTelegram, card: dict[str, Any]) -> int:
    number = number_of(card)
    seen = len(fake.messages(MODERATOR))
    fake.user_presses(MODERATOR, card, f"case:claim:{number}")
    fake.wait_for_message(MODERATOR, lambda m: f"You hold case #{number}" in m["text"], after=seen)
    return number


def test_a_disclosure_gets_advice(telegram: Telegram) -> None:
    person = new_person()
    reply = say(
        telegram.fake,
        person,
        "a guy on insta says he will send my nudes to everyone unless i pay him",
        "Don't pay",
    )
    assert "not your fault" in reply["text"]


def test_a_request_for_a_person_opens_a_case_card(telegram: Telegram) -> None:
    card = open_case(telegram.fake, new_person())
    assert "NORMAL" in card["text"] and "asked for a person" in card["text"]
    assert "can i talk to a real person please" in card["text"]
    buttons = [b["callback_data"] for row in card["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == [f"case:claim:{number_of(card)}", f"case:close:{number_of(card)}"]


def test_someone_not_on_the_moderator_list_cannot_claim(telegram: Telegram) -> None:
    fake = telegram.fake
    card = open_case(fake, new_person())
    fake.user_presses(STRANGER, card, f"case:claim:{number_of(card)}")
    fake.wait_for_call(
        "answerCallbackQuery", lambda c: "Only Signpost moderators" in c.params.get("text", "")
    )
    assert fake.messages(STRANGER) == []
    assert "Claim" in str(fake.messages(GROUP)[-1]["reply_markup"])  # still waiting for a moderator


def test_moderator_claims_and_the_conversation_runs_through_their_private_chat(telegram: Telegram) -> None:
    fake, person = telegram.fake, new_person()
    number = claim(fake, open_case(fake, person))
    fake.wait_for_message(person, lambda m: "has joined" in m["text"])
    fake.wait_for_message(
        GROUP, lambda m: m["text"].startswith(f"Case #{number}") and "Claimed by" in m["text"]
    )

    seen_by_person = len(fake.messages(person))
    fake.user_sends_text(person, "he keeps messaging me at night")
    relayed = fake.wait_for_message(
        MODERATOR, lambda m: m["text"] == f"#{number} › he keeps messaging me at night"
    )
    time.sleep(1.5)  # the bot stays silent to the person while a moderator holds the case
    assert fake.messages(person)[seen_by_person:] == []

    # A reply to the relayed message picks the case (this moderator may hold others from earlier tests).
    fake.user_sends_text(
        MODERATOR,
        "Thank you for telling me. Are you safe right now?",
        reply_to_message_id=relayed["message_id"],
    )
    reply = fake.wait_for_message(
        person, lambda m: "Are you safe right now?" in m["text"], after=seen_by_person
    )
    assert reply["text"] == "Signpost team: Thank you for telling me. Are you safe right now?"
    assert "forward_origin" not in reply and reply["from"]["is_bot"]  # a copy by the bot, not a forward


def test_a_photo_is_deleted_and_never_reaches_the_moderator(telegram: Telegram) -> None:
    fake, person = telegram.fake, new_person()
    number = claim(fake, open_case(fake, person))
    photo = fake.user_sends_photo(person)
    fake.wait_for_message(person, lambda m: "deleted what you sent" in m["text"])
    assert photo["message_id"] in fake.deleted(person)
    notice = fake.wait_for_message(
        MODERATOR, lambda m: m["text"].startswith(f"#{number} · from the bot: [the user sent a photo")
    )
    assert notice["text"].endswith("deleted, not viewed]")
    for method in ("getFile", "forwardMessage", "copyMessage", "sendPhoto", "sendDocument"):
        assert fake.calls(method) == []


def test_close_returns_the_young_person_to_the_bot(telegram: Telegram) -> None:
    fake, person = telegram.fake, new_person()
    number = claim(fake, open_case(fake, person))
    fake.user_sends_text(MODERATOR, f"/close {number}")
    fake.wait_for_message(MODERATOR, lambda m: m["text"] == f"Case #{number} is closed.")
    fake.wait_for_message(person, lambda m: "You're talking to Signpost, the chatbot, again" in m["text"])
    rating = fake.wait_for_message(person, lambda m: "how it went" in m["text"])
    fake.user_presses(person, rating, f"rate:{number}:5")
    fake.wait_for_message(person, lambda m: m["text"] == "Thank you for telling us.")
    say(fake, person, "what numbers can i call", expect="0800 1111")  # the bot answers again


def test_a_risk_message_opens_an_urgent_case_at_once(telegram: Telegram) -> None:
    fake, person = telegram.fake, new_person()
    seen = len(fake.messages(GROUP))
    reply = say(fake, person, "i'm going to kill myself tonight", expect="116 123")
    assert "999" in reply["text"]
    card = fake.wait_for_message(GROUP, lambda m: m["text"].startswith("Case #"), after=seen)
    assert "URGENT" in card["text"] and "danger now" in card["text"]


def test_a_restart_of_the_adapter_keeps_the_claimed_case(telegram: Telegram) -> None:
    fake, person = telegram.fake, new_person()
    number = claim(fake, open_case(fake, person))
    telegram.restart()
    fake.user_sends_text(person, "are you still there")
    relayed = fake.wait_for_message(
        MODERATOR, lambda m: m["text"] == f"#{number} › are you still there", timeout=60
    )
    fake.user_sends_text(MODERATOR, "Yes, I'm still here.", reply_to_message_id=relayed["message_id"])
    fake.wait_for_message(person, lambda m: m["text"] == "Signpost team: Yes, I'm still here.")


def test_rasa_down_still_gives_the_crisis_numbers(assistant: Assistant, tmp_path: Path) -> None:
    with FakeTelegram() as fake, ExitStack() as stack:
        fake.add_group(GROUP, "Signpost moderators")
        nowhere = f"http://127.0.0.1:{free_port()}"
        env = {**adapter_env(fake, assistant), "RASA_URL": nowhere}
        running = Telegram(fake, env, tmp_path, stack)
        running.start()
        person = new_person()
        reply = say(fake, person, "please help me")
        for number in CRISIS:
            assert number in reply["text"]
        assert "try again" in reply["text"]


def post_when_listening(url: str, update: dict[str, Any], secret: str) -> httpx.Response:
    """POST an update as Telegram would, waiting (up to 30 s) for the webhook server to listen."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return httpx.post(
                url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret}, timeout=10
            )
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_in_webhook_mode_telegram_posts_updates_and_strangers_are_refused(
    assistant: Assistant, tmp_path: Path
) -> None:
    port, secret, person = free_port(), "w" * 32, new_person()
    with FakeTelegram() as fake, ExitStack() as stack:
        fake.add_group(GROUP, "Signpost moderators")
        fake.start_private_chat(person)
        env = {
            **adapter_env(fake, assistant),
            "WEBHOOK_URL": "https://signpost.test/telegram",  # the public URL; a TLS proxy forwards to us
            "WEBHOOK_SECRET": secret,
            "WEBHOOK_PORT": str(port),
        }
        stack.enter_context(running_adapter(tmp_path, env, name="webhook"))
        registered = fake.wait_for_call("setWebhook", timeout=60)
        assert registered.params["url"] == "https://signpost.test/telegram"
        assert registered.params["secret_token"] == secret
        update = {
            "update_id": 1,
            "message": {
                "message_id": 1,
                "date": int(time.time()),
                "chat": {"id": person, "type": "private", "first_name": "Alex"},
                "from": {"id": person, "is_bot": False, "first_name": "Alex"},
                "text": "what numbers can i call",
            },
        }
        url = f"http://127.0.0.1:{port}/telegram"
        assert post_when_listening(url, update, "wrong").status_code == 403
        assert post_when_listening(url, update, secret).status_code == 200
        fake.wait_for_message(person, lambda m: "116 123" in m["text"])


def test_exit_clears_the_chat_and_leaves_a_neutral_message(telegram: Telegram) -> None:
    fake, person = telegram.fake, new_person()
    mine = [fake.user_sends_text(person, "my ex is sharing pictures of me")["message_id"]]
    fake.wait_for_message(person, lambda m: "Leave quickly" in str(m.get("reply_markup", "")))
    mine.append(fake.user_sends_text(person, "/exit")["message_id"])
    fake.wait_for_message(person, lambda m: m["text"] == "Bye for now.")
    time.sleep(1)  # nothing else may arrive after the neutral message
    visible = fake.visible_messages(person)
    assert [m["text"] for m in visible] == ["Bye for now."]
    assert set(mine) <= fake.deleted(person)


def tracker_rows(assistant: Assistant) -> list[tuple[str, str]]:
    """Every (sender_id, event data) in the real Rasa's SQL tracker store."""
    with sessionmaker_for(assistant.tracker_store_url).begin() as tracker:
        return [(s, d) for s, d in tracker.execute(text("SELECT sender_id, data FROM events"))]


def test_forget_me_deletes_the_conversation_case_and_chat(telegram: Telegram, assistant: Assistant) -> None:
    fake, person = telegram.fake, 8_675_309_123  # a distinctive Telegram id to search for
    ref = pseudonym(KEY.encode(), person)
    number = number_of(open_case(fake, person))
    assert any(sender == ref for sender, _ in tracker_rows(assistant))  # Rasa keeps it under the pseudonym
    assert not any(str(person) in f"{sender} {data}" for sender, data in tracker_rows(assistant))

    question = say(fake, person, "/forget", expect="can't be undone")
    fake.user_presses(person, question, "forget:yes")
    done = fake.wait_for_message(person, lambda m: m["text"].startswith("Done."))
    assert "chats with our team (1)" in done["text"]
    fake.wait_for_message(GROUP, lambda m: f"Case #{number} is gone" in m["text"])
    assert [m["text"] for m in fake.visible_messages(person)] == [done["text"]]
    assert not any(sender == ref for sender, _ in tracker_rows(assistant))
    with sessionmaker_for(assistant.database_url).begin() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)):
                assert ref not in str(tuple(row)) and str(person) not in str(tuple(row))


def test_what_a_person_writes_reaches_no_process_log(telegram: Telegram, assistant: Assistant) -> None:
    """Rasa, the action server and the adapter log at INFO: none of them writes a person's words or id."""
    fake, person = telegram.fake, 9_131_415_926  # a distinctive Telegram id to search for
    said = [
        "my cousin Ptolemy keeps posting horrible stuff about me",
        "he made a group called zygomorphic losers",
    ]
    for line in said:
        say(fake, person, line)
    number = claim(fake, open_case(fake, person))
    fake.user_sends_text(person, "thanks for listening to me about Ptolemy")
    fake.wait_for_message(MODERATOR, lambda m: "about Ptolemy" in m["text"])
    fake.user_sends_text(MODERATOR, f"/close {number}")
    fake.wait_for_message(person, lambda m: "how it went" in m["text"])
    logs = {
        name: path.read_text(errors="replace")
        for name, path in {
            "rasa": assistant.workdir / "rasa.log",
            "actions": assistant.workdir / "actions.log",
            "adapter": telegram.workdir / "adapter.log",
        }.items()
    }
    assert all(logs.values()), "a process wrote no log at all: the scan would prove nothing"
    assert "case #" in logs["adapter"].lower()  # the adapter did log the handover, without words
    for name, log in logs.items():
        for needle in ("Ptolemy", "zygomorphic", str(person)):
            assert needle not in log, f"{needle!r} is in the {name} log"
