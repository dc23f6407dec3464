"""Local mode: the terminal chat runs the same relay and handover as Telegram, with /mod for the moderator."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import httpx
import pytest

from actions.db import sessionmaker_for
from bot.console import PERSON_CHAT, ConsoleChat, ConsoleOutbox, local_settings
from bot.people import Person
from bot.rasa_client import RasaClient
from bot.relay import assemble
from bot.responses import CRISIS_RESPONSE, response_text
from tests.bot.conftest import FakeRasa, settings_for

pytestmark = pytest.mark.anyio

HANDOVER = [
    {"custom": {"handover": {"priority": "normal", "reason": "request_human"}}},
    {"text": "I've asked a person from our team to join."},
]


@pytest.fixture
async def console(cases_url: str) -> AsyncIterator[tuple[ConsoleChat, io.StringIO, FakeRasa]]:
    rasa = FakeRasa(
        replies={
            "hi": [
                {"text": "Hello!", "buttons": [{"title": "Talk to a person", "payload": "/request_human"}]}
            ],
            "/request_human": HANDOVER,
        }
    )
    out = io.StringIO()
    settings = local_settings(settings_for(cases_url, telegram_bot_token=None))
    async with RasaClient(settings.rasa_url, transport=httpx.MockTransport(rasa.handle)) as client:
        outbox = ConsoleOutbox(out)
        relay = assemble(settings, client, outbox, sessionmaker_for(settings.database_url))
        yield ConsoleChat(relay, outbox, Person(PERSON_CHAT, "pseudo-console")), out, rasa


async def test_replies_are_shown_with_numbered_buttons_and_a_number_presses_one(console) -> None:
    chat, out, rasa = console
    await chat.handle_line("hi")
    await chat.handle_line("1")
    assert "Signpost: Hello!" in out.getvalue()
    assert "[1] Talk to a person" in out.getvalue()
    assert rasa.messages() == ["hi", "/request_human"]


async def test_the_whole_handover_can_be_played_in_the_terminal(console) -> None:
    chat, out, rasa = console
    await chat.handle_line("/request_human")
    assert "[moderators' group] Case #" in out.getvalue()
    number = out.getvalue().split("Case #", 1)[1].split(" ", 1)[0]
    await chat.handle_line("/mod queue")
    assert f"#{number} · NORMAL" in out.getvalue()
    await chat.handle_line(f"/mod claim {number}")
    assert response_text("utter_moderator_joined").splitlines()[0] in out.getvalue()
    await chat.handle_line("my friend is being bullied")
    assert f"#{number} › my friend is being bullied" in out.getvalue()
    await chat.handle_line("/mod Thanks for telling me. Is your friend safe now?")
    assert "Signpost: Signpost team: Thanks for telling me." in out.getvalue()
    await chat.handle_line("/photo")
    assert "[the user sent a photo — deleted, not viewed]" in out.getvalue()
    await chat.handle_line("/mod close")
    assert response_text("utter_handover_closed").splitlines()[0] in out.getvalue()
    assert "[5] 5" in out.getvalue()
    await chat.handle_line("5")
    assert response_text("utter_feedback_thanks") in out.getvalue()
    assert "my friend is being bullied" not in rasa.messages()  # the bot stayed silent while claimed


async def test_the_terminal_chat_gives_crisis_numbers_when_rasa_is_down(console) -> None:
    chat, out, rasa = console
    rasa.down = True
    await chat.handle_line("i need help")
    assert response_text(CRISIS_RESPONSE).splitlines()[1] in out.getvalue()


async def test_the_moderator_can_give_a_case_back_to_the_queue_in_the_terminal(console) -> None:
    chat, out, _rasa = console
    await chat.handle_line("/request_human")
    number = out.getvalue().split("Case #", 1)[1].split(" ", 1)[0]
    await chat.handle_line(f"/mod claim {number}")
    await chat.handle_line("/mod release")
    assert response_text("utter_moderator_left").splitlines()[0] in out.getvalue()  # the person is told
    released = len(out.getvalue())
    await chat.handle_line("/mod queue")
    assert f"#{number} · NORMAL" in out.getvalue()[released:]  # waiting in the queue again
