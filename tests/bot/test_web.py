"""The web chat offline: the real Starlette app over the real core (Telegram's side recorded, Rasa faked),
driven over ASGI as a browser would, with and without the page's script.

The live feed (server-sent events) and the page in a real browser are tested end to end
(tests/e2e/test_web_chat.py, tests/e2e/test_web_browser.py).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import httpx
import pytest

from bot.pseudonym import pseudonym
from bot.responses import response_text
from bot.web.app import CSP, MAX_BODY_BYTES, WebChat
from bot.web.chats import WEB_CHAT_BASE, WebChats
from bot.web.sessions import COOKIE
from tests.bot.conftest import GROUP, KEY, MODERATOR, FakeRasa, handover

pytestmark = pytest.mark.anyio

EXIT_URL = "https://www.bbc.co.uk/weather"
SCRIPT = {"x-requested-with": "signpost"}  # what the page's script sends: answers come down the feed


class Browser:
    """One browser on the web chat: its cookie jar, the page's form token, and what the page shows."""

    def __init__(self, app: Any, address: str = "127.0.0.1") -> None:
        transport = httpx.ASGITransport(app=app, client=(address, 50_000))
        self.client = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000")
        self.token = ""

    async def open(self) -> httpx.Response:
        page = await self.client.get("/")
        found = re.search(r'name="token" value="([0-9a-f]+)"', page.text)
        assert found, page.text
        self.token = found.group(1)
        return page

    @property
    def session(self) -> str:
        return self.client.cookies[COOKIE]

    async def post(self, path: str, script: bool = True, **fields: str) -> httpx.Response:
        return await self.client.post(
            path, data={"token": self.token, **fields}, headers=SCRIPT if script else {}
        )


@pytest.fixture
async def web(harness):
    """A harness whose core also serves a web chat; returns (harness, chats, web chat, browser)."""

    async def build(rasa: FakeRasa | None = None, **changes: Any):
        chats = WebChats()
        h = await harness(rasa, web=chats, **changes)
        chat = WebChat(h.relay, chats, EXIT_URL)
        browser = Browser(chat.app())
        await browser.open()
        return h, chats, chat, browser

    return build


def person_chat(browser: Browser, chat: WebChat) -> int:
    return chat.sessions.person(browser.session).chat_id


def texts(chats: WebChats, chat_id: int) -> list[str]:
    return [line.text for line in chats.lines(chat_id)]


async def test_the_page_has_what_a_person_and_a_screen_reader_need_and_loads_nothing_from_elsewhere(
    web,
) -> None:
    _h, _chats, _chat, browser = await web()
    page = await browser.client.get("/")
    assert page.status_code == 200
    html = page.text
    assert '<label for="message">Message</label>' in html and 'id="message"' in html
    assert ">Send</button>" in html and 'role="log"' in html and ">Exit this page</button>" in html
    assert "<title>Chat</title>" in html  # a neutral title
    assert re.search(r"(src|href)=\"(https?:)?//", html) is None  # nothing from another site
    assert page.headers["content-security-policy"] == CSP
    assert page.headers["cache-control"] == "no-store"
    cookie = page.headers.get("set-cookie", "")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Secure" not in cookie  # http://127.0.0.1 in development; Secure on any other host
    script = await browser.client.get("/static/chat.js")
    assert script.status_code == 200 and script.headers["cache-control"] == "no-store"
    assert "localStorage" not in script.text and "sessionStorage" not in script.text
    assert "indexedDB" not in script.text and "caches." not in script.text


async def test_a_cookie_on_a_public_host_is_secure(web) -> None:
    _h, _chats, chat, _ = await web()
    transport = httpx.ASGITransport(app=chat.app(), client=("203.0.113.9", 50_000))
    async with httpx.AsyncClient(transport=transport, base_url="https://chat.example.org") as client:
        page = await client.get("/")
    assert "Secure" in page.headers["set-cookie"]


async def test_a_message_reaches_rasa_under_a_pseudonym_and_the_answer_shows_in_the_chat(web) -> None:
    rasa = FakeRasa(
        replies={
            "someone is threatening me": [
                {
                    "text": "That sounds scary.",
                    "buttons": [{"title": "Find help near me", "payload": "/find_services"}],
                }
            ]
        }
    )
    h, chats, chat, browser = await web(rasa)
    answer = await browser.post("/send", message="someone is threatening me")
    assert answer.status_code == 202
    await chat.done()
    sender = rasa.received[0]["sender"]
    assert sender == pseudonym(KEY.encode(), f"web:{browser.session}")
    assert browser.session not in str(rasa.received)
    chat_id = person_chat(browser, chat)
    assert chat_id >= WEB_CHAT_BASE
    assert texts(chats, chat_id) == ["someone is threatening me", "That sounds scary."]
    assert chats.lines(chat_id)[-1].buttons == (("Find help near me", "/find_services"),)
    assert not h.request.calls or all(c.params.get("chat_id") != chat_id for c in h.request.calls)


async def test_without_javascript_a_form_post_shows_the_page_with_the_answer_and_real_buttons(web) -> None:
    rasa = FakeRasa(
        replies={
            "hi": [{"text": "Hello.", "buttons": [{"title": "Leave quickly", "payload": "/quick_exit"}]}]
        }
    )
    _h, _chats, _chat, browser = await web(rasa)
    posted = await browser.post("/send", script=False, message="hi")
    assert posted.status_code == 303 and posted.headers["location"].startswith("/")
    page = await browser.client.get("/")
    assert "Hello." in page.text
    assert '<button type="submit" name="data" value="/quick_exit">Leave quickly</button>' in page.text


async def test_a_pressed_button_goes_to_rasa_and_a_forged_one_does_not(web) -> None:
    rasa = FakeRasa(
        replies={
            "hi": [
                {
                    "text": "Hello.",
                    "buttons": [{"title": "Someone is threatening me", "payload": "/disclose_sextortion"}],
                }
            ]
        }
    )
    _h, chats, chat, browser = await web(rasa)
    await browser.post("/send", message="hi")
    await chat.done()
    await browser.post("/press", script=False, data="/disclose_sextortion")
    await browser.post("/press", data="/restart")  # not a button we offer
    await chat.done()
    assert rasa.messages() == ["hi", "/disclose_sextortion"]
    chat_id = person_chat(browser, chat)
    assert "Someone is threatening me" in texts(
        chats, chat_id
    )  # the plain form's press shows the button's title
    assert texts(chats, chat_id)[-1] == response_text("utter_button_expired")


async def test_forged_posts_are_refused_without_touching_the_conversation(web) -> None:
    rasa = FakeRasa()
    _h, _chats, chat, browser = await web(rasa)
    no_token = await browser.client.post("/send", data={"message": "hi"}, headers=SCRIPT)
    wrong_token = await browser.client.post(
        "/send", data={"message": "hi", "token": "0" * 32}, headers=SCRIPT
    )
    other_site = await browser.client.post(
        "/send",
        data={"message": "hi", "token": browser.token},
        headers={**SCRIPT, "origin": "https://evil.example"},
    )
    no_cookie = await httpx.AsyncClient(
        transport=httpx.ASGITransport(app=chat.app()), base_url="http://127.0.0.1:8000"
    ).post("/send", data={"message": "hi", "token": browser.token})
    assert [no_token.status_code, wrong_token.status_code, other_site.status_code] == [403, 403, 403]
    assert no_cookie.status_code == 303  # to a new page: a new session
    too_long = await browser.client.post(
        "/send",
        content=b"token=" + browser.token.encode() + b"&message=" + b"a" * MAX_BODY_BYTES,
        headers={**SCRIPT, "content-type": "application/x-www-form-urlencoded"},
    )
    assert too_long.status_code == 413
    await chat.done()
    assert rasa.received == []


async def test_one_address_flooding_new_sessions_is_slowed_with_a_kind_answer(web) -> None:
    _h, _chats, chat, browser = await web()
    answers = []
    for _ in range(chat.addresses.limits.burst + 3):  # a script that opens a new session each time
        fresh = Browser(chat.app(), address="198.51.100.7")
        await fresh.open()
        answers.append(await fresh.post("/send", message="x"))
    await chat.done()
    assert answers[0].status_code == 202
    assert answers[-1].status_code == 429 and answers[-1].text == response_text("utter_web_busy")
    assert (await browser.post("/send", message="me")).status_code == 202  # another address still goes


async def test_exit_this_page_leaves_at_once_while_rasa_thinks_and_ends_the_session(web) -> None:
    thinking = asyncio.Event()
    rasa = FakeRasa(slow={"a long story": thinking})
    h, chats, chat, browser = await web(rasa)
    chat_id = person_chat(browser, chat)
    await browser.post("/send", message="a long story")
    await asyncio.wait_for(rasa.thinking.wait(), 5)
    session = browser.session
    left = await asyncio.wait_for(browser.post("/exit", script=False), 1.0)  # never waits for Rasa
    assert left.status_code == 303 and left.headers["location"] == EXIT_URL
    assert COOKIE not in browser.client.cookies  # the cookie is cleared
    assert texts(chats, chat_id) == []  # the conversation is gone from memory
    thinking.set()
    await chat.done()
    await h.relay.leaving.resets_sent()
    assert texts(chats, chat_id) == []  # nothing arrives after leaving
    assert "/quick_exit" in rasa.messages()  # Rasa's side of the conversation was reset too
    browser.client.cookies.set(COOKIE, session)  # the old session can't be used again
    again = await browser.client.get("/")
    assert again.cookies.get(COOKIE) not in (None, session)


async def test_delete_my_chat_asks_then_forgets_as_forget_does(web) -> None:
    rasa = FakeRasa()
    _h, chats, chat, browser = await web(rasa)
    await browser.post("/send", message="something happened")
    await chat.done()
    await browser.post("/forget")
    await chat.done()
    chat_id = person_chat(browser, chat)
    assert texts(chats, chat_id)[-1] == response_text("utter_ask_forget")
    await browser.post("/press", data="forget:yes")
    await chat.done()
    shown = texts(chats, chat_id)
    assert "something happened" not in shown  # the person's words are gone from the page
    assert shown[-1].startswith(response_text("utter_forget_done").split("{")[0])


async def test_a_web_persons_case_reaches_the_moderators_group_and_the_moderators_reply_comes_back(
    web,
) -> None:
    rasa = FakeRasa(replies={"i need a person": handover("normal", "user_request")})
    h, chats, chat, browser = await web(rasa)
    await browser.post("/send", message="i need a person")
    await chat.done()
    card = h.cards()[-1]["text"]
    number = int(card.split("#", 1)[1].split(" ", 1)[0])
    assert "web" not in card.lower()  # moderators can't tell the channel unless a card says so on purpose
    await h.text(MODERATOR, f"/claim {number}")
    await browser.post("/send", message="are you a real person")
    await chat.done()
    assert "are you a real person" in h.request.texts(MODERATOR)
    await h.text(MODERATOR, "Yes, I'm here. You did the right thing telling us.")
    chat_id = person_chat(browser, chat)
    assert any("You did the right thing" in text for text in texts(chats, chat_id))
    assert all(c.params.get("chat_id") != chat_id for c in h.request.calls)  # never sent to Telegram
    assert h.request.sent(GROUP)


async def test_nothing_a_web_person_writes_or_their_address_is_logged(web, caplog) -> None:
    words = "my private words about what happened"
    rasa = FakeRasa(replies={words: handover("urgent", "risk")})
    with caplog.at_level(logging.INFO):
        _h, _chats, chat, _ = await web(rasa)
        browser = Browser(chat.app(), address="192.0.2.44")
        await browser.open()
        await browser.post("/send", message=words)
        await chat.done()
        await browser.post("/exit")
    logged = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert rasa.received and "quick exit" in logged  # it did happen
    assert words not in logged and "192.0.2.44" not in logged and browser.token not in logged
