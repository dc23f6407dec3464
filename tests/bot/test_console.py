import asyncio
import io
import json

import httpx

from bot.console import MAX_MESSAGE_CHARS, ConsoleChat
from bot.rasa_client import RasaClient
from bot.responses import CRISIS_RESPONSE, response_text


def chat_with(handler) -> tuple[ConsoleChat, io.StringIO, list[dict]]:
    """Return a console chat whose Rasa is the given handler, its output, and the requests sent."""
    sent: list[dict] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return handler(request)

    out = io.StringIO()
    client = RasaClient("http://rasa.test", transport=httpx.MockTransport(record))
    return ConsoleChat(client, "pseudo-1", out), out, sent


async def talk(chat: ConsoleChat, *lines: str) -> None:
    async with chat.client:
        for line in lines:
            await chat.handle_line(line)


def test_replies_are_shown_with_numbered_buttons_and_a_number_presses_one() -> None:
    reply = [
        {
            "recipient_id": "pseudo-1",
            "text": "Are you somewhere safe to talk?",
            "buttons": [
                {"title": "Yes, I can talk", "payload": "/affirm"},
                {"title": "Leave quickly", "payload": "/quick_exit"},
            ],
        },
    ]
    chat, out, sent = chat_with(lambda r: httpx.Response(200, json=reply))
    asyncio.run(talk(chat, "hi", "2"))
    assert "Signpost: Are you somewhere safe to talk?" in out.getvalue()
    assert "[2] Leave quickly" in out.getvalue()
    assert [s["message"] for s in sent] == ["hi", "/quick_exit"]
    assert {s["sender"] for s in sent} == {"pseudo-1"}


def test_a_handover_signal_is_shown() -> None:
    reply = [{"custom": {"handover": {"priority": "urgent", "reason": "risk_immediate"}}}]
    chat, out, _ = chat_with(lambda r: httpx.Response(200, json=reply))
    asyncio.run(talk(chat, "i want to die"))
    assert "priority urgent, reason risk_immediate" in out.getvalue()


def test_when_rasa_is_down_the_crisis_numbers_still_come_and_the_message_is_kept() -> None:
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json=[{"text": "I'm here."}])

    chat, out, sent = chat_with(flaky)
    asyncio.run(talk(chat, "please help", "hello?"))
    text = out.getvalue()
    assert response_text(CRISIS_RESPONSE) in text
    assert "999" in text and "0800 1111" in text
    # The first message was kept and sent again before the second.
    assert [s["message"] for s in sent] == ["please help", "please help", "hello?"]


def test_a_server_error_counts_as_down() -> None:
    chat, out, _ = chat_with(lambda r: httpx.Response(500, text="boom"))
    asyncio.run(talk(chat, "hi"))
    assert "0800 1111" in out.getvalue()


def test_oversized_text_is_trimmed_kindly_not_dropped() -> None:
    chat, out, sent = chat_with(lambda r: httpx.Response(200, json=[]))
    asyncio.run(talk(chat, "a" * (MAX_MESSAGE_CHARS + 50)))
    assert len(sent[0]["message"]) == MAX_MESSAGE_CHARS
    assert "very long" in out.getvalue()


def test_blank_lines_are_not_sent() -> None:
    chat, _, sent = chat_with(lambda r: httpx.Response(200, json=[]))
    asyncio.run(talk(chat, "   "))
    assert sent == []


def test_buttons_of_several_messages_in_one_reply_are_numbered_apart() -> None:
    reply = [
        {
            "text": "How old are you?",
            "buttons": [
                {"title": "Under 13", "payload": "/age_a"},
                {"title": "13 to 17", "payload": "/age_b"},
            ],
        },
        {"text": "Talk to a person?", "buttons": [{"title": "Yes", "payload": "/request_human"}]},
    ]
    chat, out, sent = chat_with(lambda r: httpx.Response(200, json=reply))
    asyncio.run(talk(chat, "hi", "2", "3"))
    assert "[3] Yes" in out.getvalue()
    assert [s["message"] for s in sent] == ["hi", "/age_b", "/request_human"]
