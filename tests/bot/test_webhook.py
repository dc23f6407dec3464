"""Telegram's webhook on our own Starlette route (`bot.app.TelegramWebhook`), offline: the real Application
over a recording Bot API and a fake Rasa, driven over ASGI as Telegram (and a stranger) would post.

An update the route accepts goes on the Application's `update_queue`; the test takes it from there and
has the Application process it, as its running update fetcher would, so no test waits on a clock.
The route served by the real process, on its own port and on the web chat's, is in tests/bot/test_main.py
and tests/e2e/test_telegram.py.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from telegram import Update

from bot.app import MAX_UPDATE_BYTES, TelegramWebhook, with_webhook
from bot.settings import SettingsError, load_settings
from bot.web.app import WebChat
from bot.web.chats import WebChats
from tests.bot.conftest import KEY, PERSON, TRANSCRIPT_KEY, FakeRasa, message

pytestmark = pytest.mark.anyio

SECRET = "the-webhook-secret-" + "x" * 20
HEADER = "X-Telegram-Bot-Api-Secret-Token"
WORDS = "someone keeps messaging me and won't stop"


def client(app: Any, address: str = "149.154.167.197") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 443))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8443")


def update(update_id: int, text: str = WORDS) -> dict[str, Any]:
    return {"update_id": update_id, "message": message(PERSON, text=text)}


def queued(application: Any) -> list[Update]:
    found = []
    while not application.update_queue.empty():
        found.append(application.update_queue.get_nowait())
    return found


async def test_a_missing_or_forged_secret_is_refused_and_the_real_one_delivers_the_update(harness) -> None:
    rasa = FakeRasa(replies={WORDS: [{"text": "That sounds hard. You can block them."}]})
    h = await harness(rasa)
    hook = TelegramWebhook(h.app, "/telegram", SECRET)
    async with client(hook.app()) as telegram:
        refused = [
            await telegram.post("/telegram", json=update(1)),  # no secret
            await telegram.post("/telegram", json=update(2), headers={HEADER: "wrong"}),
            await telegram.post("/telegram", json=update(3), headers={HEADER: SECRET[:-1]}),  # nearly
            await telegram.post("/telegram", json=update(4), headers={HEADER: SECRET + "x"}),
            await telegram.post(
                "/telegram", json=update(5), headers={HEADER: "é".encode("latin-1") * 8}
            ),  # not ASCII
        ]
        assert [r.status_code for r in refused] == [403] * 5
        assert queued(h.app) == []  # a forged update never reaches the bot
        delivered = await telegram.post("/telegram", json=update(6), headers={HEADER: SECRET})
    assert delivered.status_code == 200
    [got] = queued(h.app)
    assert isinstance(got, Update) and got.update_id == 6 and got.message is not None
    assert got.get_bot() is h.app.bot
    await h.app.process_update(got)  # what the running Application does with its queue
    assert rasa.messages() == [WORDS]
    assert "You can block them" in h.request.texts(PERSON)


async def test_what_is_not_an_update_is_refused_even_with_the_secret(harness) -> None:
    h = await harness()
    hook = TelegramWebhook(h.app, "telegram", SECRET)  # the path as WEBHOOK_URL's, slashes or not
    secret = {HEADER: SECRET}
    async with client(hook.app()) as telegram:
        answers = {
            "form": await telegram.post("/telegram", data={"update_id": "1"}, headers=secret),
            "not JSON": await telegram.post(
                "/telegram", content=b"{", headers={**secret, "content-type": "application/json"}
            ),
            "a list": await telegram.post("/telegram", json=[1, 2], headers=secret),
            "not a message": await telegram.post(
                "/telegram", json={"update_id": 1, "message": "hi"}, headers=secret
            ),
            "too big": await telegram.post(
                "/telegram",
                content=json.dumps({"update_id": 1, "pad": "x" * MAX_UPDATE_BYTES}).encode(),
                headers={**secret, "content-type": "application/json"},
            ),
            "GET": await telegram.get("/telegram", headers=secret),
            "elsewhere": await telegram.post("/send", json=update(1), headers=secret),
        }
    assert {name: a.status_code for name, a in answers.items()} == {
        "form": 415,
        "not JSON": 400,
        "a list": 400,
        "not a message": 400,
        "too big": 413,
        "GET": 405,
        "elsewhere": 404,
    }
    assert queued(h.app) == []


async def test_on_one_port_the_web_chat_serves_its_pages_and_the_webhook(harness) -> None:
    chats = WebChats()
    h = await harness(web=chats)
    web = WebChat(h.relay, chats, "https://www.bbc.co.uk/weather")
    hook = TelegramWebhook(h.app, "/telegram", SECRET)
    both = with_webhook(web.app(), hook, web.paths)
    async with client(both, address="127.0.0.1") as browser_and_telegram:
        page = await browser_and_telegram.get("/")
        forged = await browser_and_telegram.post("/telegram", json=update(1))
        delivered = await browser_and_telegram.post("/telegram", json=update(2), headers={HEADER: SECRET})
        # More than a web chat post may carry (16 KB): the webhook keeps its own cap.
        big = json.dumps({"update_id": 3, "message": message(PERSON, text="x" * 20_000)}).encode()
        longer_than_a_web_post = await browser_and_telegram.post(
            "/telegram", content=big, headers={HEADER: SECRET, "content-type": "application/json"}
        )
    assert page.status_code == 200 and "Exit this page" in page.text
    assert forged.status_code == 403
    assert delivered.status_code == 200 and longer_than_a_web_post.status_code == 200
    assert [u.update_id for u in queued(h.app)] == [2, 3]
    for taken in ("/send", "/", "/static/chat.js", "/events"):
        with pytest.raises(ValueError, match="web chat uses"):
            with_webhook(web.app(), TelegramWebhook(h.app, taken, SECRET), web.paths)


async def test_the_webhook_logs_no_secret_no_words_and_no_address(harness, caplog) -> None:
    h = await harness()
    hook = TelegramWebhook(h.app, "/telegram", SECRET)
    forged = "forged-secret-" + "q" * 20
    with caplog.at_level(logging.DEBUG):
        async with client(hook.app(), address="203.0.113.77") as telegram:
            assert (
                await telegram.post("/telegram", json=update(1), headers={HEADER: forged})
            ).status_code == 403
            bad = {"update_id": 2, "message": WORDS}
            assert (await telegram.post("/telegram", json=bad, headers={HEADER: SECRET})).status_code == 400
            assert (
                await telegram.post("/telegram", json=update(3), headers={HEADER: SECRET})
            ).status_code == 200
        await h.app.process_update(queued(h.app)[0])
    # The webhook's own lines at every level; everyone else's at INFO and above (the house rule).
    kept = [r for r in caplog.records if r.name == "bot.app" or r.levelno >= logging.INFO]
    logged = "\n".join(r.getMessage() for r in kept)
    assert "not an update" in logged and "refused" in logged  # it did log what happened
    for secret in (forged, SECRET, WORDS, "203.0.113.77"):
        assert secret not in logged


def test_one_port_for_the_web_chat_and_the_webhook_needs_one_address() -> None:
    base = {
        "PSEUDONYM_KEY": KEY,
        "TRANSCRIPT_KEYS": TRANSCRIPT_KEY,
        "WEBHOOK_URL": "https://bot.example.org/telegram",
        "WEBHOOK_SECRET": SECRET,
        "WEB_PORT": "8443",
        "WEBHOOK_PORT": "8443",
    }
    shared = load_settings({**base, "WEB_HOST": "0.0.0.0", "WEBHOOK_LISTEN": "0.0.0.0"})  # noqa: S104
    assert shared.webhook_port == shared.web_port == 8443
    with pytest.raises(SettingsError, match=r"WEBHOOK_LISTEN .* must then be WEB_HOST"):
        load_settings({**base, "WEB_HOST": "127.0.0.1", "WEBHOOK_LISTEN": "0.0.0.0"})  # noqa: S104
    apart = load_settings({**base, "WEBHOOK_PORT": "8444", "WEBHOOK_LISTEN": "0.0.0.0"})  # noqa: S104
    assert (apart.web_port, apart.webhook_port) == (8443, 8444)
