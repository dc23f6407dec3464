"""A person's side of the Telegram adapter: relay to Rasa, buttons, media guard, failures (offline)."""

from __future__ import annotations

import logging

import pytest
from telegram import Update

from bot.conversation import RETRY_FIRST_SECONDS, TYPING_AFTER_SECONDS
from bot.pseudonym import pseudonym
from bot.responses import response_text
from tests.bot.conftest import GROUP, KEY, MODERATOR, PERSON, FakeRasa, message

pytestmark = pytest.mark.anyio

BUTTONS = [
    {
        "text": "Are you somewhere safe to talk?",
        "buttons": [
            {"title": "Yes, I can talk", "payload": "/affirm"},
            {"title": "Leave quickly", "payload": "/quick_exit"},
        ],
    }
]


async def test_text_goes_to_rasa_under_a_pseudonym_and_the_reply_comes_back(harness) -> None:
    h = await harness()
    await h.text(PERSON, "someone is threatening me")
    ((body),) = h.rasa.received
    assert (body["sender"], body["message"]) == (pseudonym(KEY.encode(), PERSON), "someone is threatening me")
    assert set(body) == {"sender", "message", "metadata"} and set(body["metadata"]) == {"message_id"}
    assert str(PERSON) not in h.rasa.received[0]["sender"]
    assert h.request.texts(PERSON) == "echo: someone is threatening me"
    assert "sendChatAction" not in h.request.methods()  # the answer came at once: no "typing…"


async def test_typing_shows_while_rasa_takes_a_noticeable_time(harness) -> None:
    h = await harness(FakeRasa(delay=TYPING_AFTER_SECONDS + 0.5), rasa_timeout_seconds=4.0)
    await h.text(PERSON, "someone is threatening me")
    assert [c["chat_id"] for c in h.request.of("sendChatAction")] == [PERSON]
    assert h.request.texts(PERSON) == "echo: someone is threatening me"


async def test_an_update_telegram_delivers_twice_is_acted_on_once(harness) -> None:
    h = await harness()
    again = {"update_id": 990_001, "message": message(PERSON, text="are you there")}
    await h.app.process_update(Update.de_json(again, h.app.bot))
    await h.app.process_update(Update.de_json(again, h.app.bot))  # its first answer never reached Telegram
    assert h.rasa.messages() == ["are you there"]
    assert h.request.texts(PERSON) == "echo: are you there"


async def test_rasa_buttons_become_an_inline_keyboard_and_a_press_sends_the_payload(harness) -> None:
    h = await harness(FakeRasa(replies={"hi": BUTTONS}))
    await h.text(PERSON, "hi")
    keyboard = h.request.sent(PERSON)[0]["reply_markup"]["inline_keyboard"]
    assert [[b["text"], b["callback_data"]] for row in keyboard for b in row] == [
        ["Yes, I can talk", "/affirm"],
        ["Leave quickly", "/quick_exit"],
    ]
    await h.press(PERSON, "/affirm")
    assert h.rasa.messages() == ["hi", "/affirm"]
    assert h.request.of("answerCallbackQuery")  # the spinner on the button stops


async def test_forged_button_data_never_reaches_rasa(harness) -> None:
    h = await harness()
    await h.press(PERSON, '/risk_immediate{"x": 1}')
    await h.press(PERSON, "case:claim:1")  # a card button, pressed by a person in their own chat
    assert h.rasa.messages() == []
    assert response_text("utter_button_expired") in h.request.texts(PERSON)
    assert "Only Signpost moderators can do this." in h.alerts()


async def test_a_long_reply_is_split_and_its_buttons_stay_on_the_last_part(harness) -> None:
    long_text = ("word " * 1500).strip()
    h = await harness(FakeRasa(replies={"tell me": [{"text": long_text, "buttons": BUTTONS[0]["buttons"]}]}))
    await h.text(PERSON, "tell me")
    parts = h.request.sent(PERSON)
    assert len(parts) == 2
    assert all(len(p["text"]) <= 4096 for p in parts)
    assert " ".join(p["text"] for p in parts) == long_text
    assert "reply_markup" not in parts[0] and parts[1]["reply_markup"]


async def test_start_greets_and_an_unknown_command_is_read_as_words(harness) -> None:
    h = await harness()
    await h.text(PERSON, "/start")
    await h.text(PERSON, "/request_human")  # a real payload typed by hand is allowed
    await h.text(PERSON, "/deleteeverything now")
    assert h.rasa.messages() == ["/greet", "/request_human", "deleteeverything now"]


async def test_control_characters_are_removed_and_empty_text_gets_a_kind_answer(harness) -> None:
    h = await harness()
    await h.text(PERSON, "he\x00llo\x1b")
    await h.text(PERSON, "\x00\x01")
    assert h.rasa.messages() == ["hello"]
    assert response_text("utter_unsupported_message") in h.request.texts(PERSON)


@pytest.mark.parametrize(
    "content",
    [
        {"photo": [{"file_id": "p1", "file_unique_id": "u1", "width": 90, "height": 90}]},
        {"video": {"file_id": "v", "file_unique_id": "u", "width": 1, "height": 1, "duration": 3}},
        {"voice": {"file_id": "v", "file_unique_id": "u", "duration": 3}},
        {"video_note": {"file_id": "v", "file_unique_id": "u", "length": 1, "duration": 3}},
        {"document": {"file_id": "d", "file_unique_id": "u", "file_name": "me.jpg"}},
        {
            "sticker": {
                "file_id": "s",
                "file_unique_id": "u",
                "type": "regular",
                "width": 1,
                "height": 1,
                "is_animated": False,
                "is_video": False,
            }
        },
    ],
    ids=["photo", "video", "voice", "video_note", "document", "sticker"],
)
async def test_media_is_deleted_unopened_and_the_person_gets_advice(harness, content) -> None:
    h = await harness()
    incoming = message(PERSON, **content)
    await h.feed({"message": incoming})
    assert h.request.of("deleteMessage") == [{"chat_id": PERSON, "message_id": incoming["message_id"]}]
    assert "takeitdown.ncmec.org" in h.request.texts(PERSON)
    assert "childline.org.uk/remove" in h.request.texts(PERSON)
    touched = {"getFile", "forwardMessage", "copyMessage", "forwardMessages", "copyMessages"}
    assert touched.isdisjoint(h.request.methods())
    assert h.rasa.received == []
    assert h.request.sent(GROUP) == []


async def test_a_caption_on_deleted_media_is_still_read(harness) -> None:
    h = await harness()
    photo = [{"file_id": "p1", "file_unique_id": "u1", "width": 90, "height": 90}]
    await h.feed({"message": message(PERSON, photo=photo, caption="he says he will post this")})
    assert h.rasa.messages() == ["he says he will post this"]


async def test_media_that_cannot_be_deleted_is_still_never_opened(harness) -> None:
    h = await harness()
    h.request.fail("deleteMessage", 400, "Bad Request: message can't be deleted")
    await h.feed(
        {"message": message(PERSON, photo=[{"file_id": "p", "file_unique_id": "u", "width": 1, "height": 1}])}
    )
    assert response_text("utter_media_not_deleted") in h.request.texts(PERSON)


async def test_a_shared_location_is_removed_from_the_chat(harness) -> None:
    h = await harness()
    incoming = message(PERSON, location={"latitude": 51.5, "longitude": -0.1})
    await h.feed({"message": incoming})
    assert h.request.of("deleteMessage")[0]["message_id"] == incoming["message_id"]
    assert response_text("utter_personal_details_removed") in h.request.texts(PERSON)
    assert h.rasa.received == []


async def test_an_edit_is_answered_kindly_and_not_sent_to_rasa(harness) -> None:
    h = await harness()
    edited = message(PERSON, text="changed words", edit_date=1_700_000_100)
    await h.feed({"edited_message": edited})
    assert h.rasa.received == []
    assert h.request.texts(PERSON) == response_text("utter_edited_message")


async def test_a_poll_gets_please_type_and_unknown_updates_are_ignored(harness) -> None:
    h = await harness()
    await h.feed({"message": message(PERSON, dice={"emoji": "🎲", "value": 3})})
    assert h.request.texts(PERSON) == response_text("utter_unsupported_message")
    member = {
        "chat": {"id": PERSON, "type": "private", "first_name": "Alex"},
        "from": {"id": PERSON, "is_bot": False, "first_name": "Alex"},
        "date": 1_700_000_000,
        "old_chat_member": {"status": "member", "user": {"id": 999, "is_bot": True, "first_name": "S"}},
        "new_chat_member": {
            "status": "kicked",
            "user": {"id": 999, "is_bot": True, "first_name": "S"},
            "until_date": 0,
        },
    }
    await h.feed({"my_chat_member": member})
    await h.text(PERSON, "hello group", chat_id=-100777)  # a group that isn't the moderators'
    assert h.request.texts(PERSON) == response_text("utter_unsupported_message")
    assert h.rasa.received == []


async def test_rasa_down_still_gives_the_crisis_numbers_and_the_message_is_retried(harness) -> None:
    h = await harness(FakeRasa(down=True))
    await h.text(PERSON, "please help")
    said = h.request.texts(PERSON)
    for number in ("999", "0800 1111", "85258", "116 123"):
        assert number in said
    h.rasa.down = False
    await h.relay.retry_pending()
    assert h.rasa.messages() == []  # not yet: the retry waits out its backoff, on the one clock
    h.clock.advance(seconds=RETRY_FIRST_SECONDS)  # the retry job's time has come
    await h.relay.retry_pending()
    assert h.rasa.messages() == ["please help"]
    assert h.request.texts(PERSON).endswith("echo: please help")


async def test_every_message_during_an_outage_gets_an_answer_and_all_are_sent_in_order(harness) -> None:
    h = await harness(FakeRasa(down=True))
    await h.text(PERSON, "first")
    await h.text(PERSON, "second")
    assert h.request.texts(PERSON).count("0800 1111") == 2
    h.rasa.down = False
    await h.text(PERSON, "third")
    assert h.rasa.messages() == ["first", "second", "third"]


async def test_slow_rasa_gets_an_answer_at_once_and_the_real_reply_later(harness) -> None:
    h = await harness(FakeRasa(delay=0.6), rasa_timeout_seconds=0.1)
    await h.text(PERSON, "hello?")
    texts = [p["text"] for p in h.request.sent(PERSON)]
    assert "0800 1111" in texts[0]
    assert texts[-1] == "echo: hello?"


async def test_asking_for_a_person_works_while_rasa_is_down(harness) -> None:
    h = await harness(FakeRasa(down=True))
    await h.text(PERSON, "help")
    buttons = h.request.sent(PERSON)[0]["reply_markup"]["inline_keyboard"]
    assert buttons[0][0]["callback_data"] == "/request_human"
    await h.press(PERSON, "/request_human")
    card = h.cards()[-1]["text"]
    assert "Case #" in card and "NORMAL" in card
    assert response_text("utter_handover") in h.request.texts(PERSON)


async def test_telegram_errors_are_retried_with_backoff(harness) -> None:
    h = await harness()
    h.request.fail("sendMessage", 502, "Bad Gateway", times=2)
    await h.text(PERSON, "hello")
    assert h.request.texts(PERSON) == "echo: hello"
    assert [c.method for c in h.request.calls].count("sendMessage") == 3


async def test_a_flood_answer_from_telegram_is_waited_out(harness) -> None:
    h = await harness()
    h.request.fail("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    await h.text(PERSON, "hello")
    assert h.request.texts(PERSON) == "echo: hello"


async def test_an_unexpected_error_still_gets_the_person_an_answer(harness, monkeypatch, caplog) -> None:
    h = await harness()

    async def broken(person: object, text: str, message_id: int | None = None) -> None:
        raise RuntimeError(text)

    monkeypatch.setattr(h.relay, "user_text", broken)
    with caplog.at_level(logging.INFO):
        await h.text(PERSON, "secret words the person wrote")
    assert h.request.texts(PERSON) == response_text("utter_adapter_error")
    assert "RuntimeError" in caplog.text
    assert "secret words" not in caplog.text


async def test_a_moderator_in_private_is_never_sent_to_rasa(harness) -> None:
    h = await harness()
    await h.text(MODERATOR, "hello bot")
    assert h.rasa.received == []
    assert "You don't hold a case" in h.request.texts(MODERATOR)
