"""Offline adapter fixtures: the real `Application` with a recording fake Bot API request and a fake Rasa.

Updates go in through `Application.process_update`, as python-telegram-bot's own tests do; what the bot
sent is read back from the recording request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import delete
from telegram import Update
from telegram.ext import Application
from telegram.request import BaseRequest, RequestData

from actions.db import engine_for, sessionmaker_for
from bot import privacy
from bot.app import build_application
from bot.handlers import RELAY
from bot.models import (
    CaseEvent,
    CaseMessage,
    ChatTrail,
    HandoverCase,
    ModeratorAction,
    RelayMessage,
    UserBlock,
)
from bot.relay import Relay
from bot.settings import Settings
from bot.web.chats import WebChats

BOT_ID = 999
TOKEN = f"{BOT_ID}:TEST"
GROUP = -100500
MODERATOR = 7001
OTHER_MODERATOR = 7002
STRANGER = 7666
PERSON = 4242
KEY = "k" * 40
TRANSCRIPT_KEY = "wJmQlB0KkBd1mV7mS4mF9lY0b8GqRt5nqvG3mZb2yUQ="


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Call:
    """One Bot API call the adapter made."""

    method: str
    params: dict[str, Any]
    ok: bool = True
    result: Any = None


class RecordingRequest(BaseRequest):
    """A Bot API stand-in: records every call and answers with real-shaped objects."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.ids = itertools.count(100)
        self.failures: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self.blocked: set[int] = set()

    async def initialize(self) -> None:
        """Nothing to open."""

    async def shutdown(self) -> None:
        """Nothing to close."""

    @property
    def read_timeout(self) -> float:
        return 1.0

    def fail(self, method: str, code: int, description: str, times: int = 1, **parameters: Any) -> None:
        """Make the next calls of a method fail as Telegram would."""
        self.failures.setdefault(method, []).extend(
            [(code, {"description": description, **parameters})] * times
        )

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        name = url.rsplit("/", 1)[-1]
        params = dict(request_data.parameters) if request_data else {}
        self.calls.append(Call(name, params))
        queued = self.failures.get(name)
        if queued:
            self.calls[-1].ok = False
            code, error = queued.pop(0)
            body: dict[str, Any] = {"ok": False, "error_code": code, "description": error["description"]}
            if "retry_after" in error:
                body["parameters"] = {"retry_after": error["retry_after"]}
            return code, json.dumps(body).encode()
        if name in {"sendMessage", "editMessageText"} and params.get("chat_id") in self.blocked:
            self.calls[-1].ok = False
            body = {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
            return 403, json.dumps(body).encode()
        self.calls[-1].result = self.result(name, params)
        return 200, json.dumps({"ok": True, "result": self.calls[-1].result}).encode()

    def result(self, name: str, params: dict[str, Any]) -> Any:
        if name == "getMe":
            return {"id": BOT_ID, "is_bot": True, "first_name": "Signpost", "username": "signpost_test_bot"}
        if name in {"sendMessage", "editMessageText"}:
            chat_id = int(params["chat_id"])
            message = {
                "message_id": int(params.get("message_id") or next(self.ids)),
                "date": 1_700_000_000,
                "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "Signpost"},
                "text": params["text"],
            }
            if params.get("reply_markup"):
                message["reply_markup"] = params["reply_markup"]
            return message
        return True

    # What the tests read back.
    def sent(self, chat_id: int) -> list[dict[str, Any]]:
        """Return the parameters of messages delivered to a chat, in order."""
        return [
            c.params
            for c in self.calls
            if c.method == "sendMessage" and c.ok and c.params["chat_id"] == chat_id
        ]

    def sent_ids(self, chat_id: int) -> list[int]:
        """Return the ids of messages delivered to a chat, in order."""
        return [
            int(c.result["message_id"])
            for c in self.calls
            if c.method == "sendMessage" and c.ok and c.params["chat_id"] == chat_id
        ]

    def deleted(self, chat_id: int) -> set[int]:
        """Return the ids the bot asked to delete from a chat (deleteMessage and deleteMessages)."""
        ids: set[int] = set()
        for c in self.calls:
            if c.params.get("chat_id") != chat_id:
                continue
            if c.method == "deleteMessage":
                ids.add(int(c.params["message_id"]))
            elif c.method == "deleteMessages":
                ids.update(int(m) for m in c.params["message_ids"])
        return ids

    def texts(self, chat_id: int) -> str:
        return "\n".join(p["text"] for p in self.sent(chat_id))

    def methods(self) -> list[str]:
        return [c.method for c in self.calls]

    def of(self, method: str) -> list[dict[str, Any]]:
        return [c.params for c in self.calls if c.method == method]


def handover(priority: str, reason: str) -> list[dict[str, Any]]:
    """What Rasa answers when it hands the person over: the handover signal, then the text."""
    return [
        {"custom": {"handover": {"priority": priority, "reason": reason}}},
        {"text": "I've asked a person from our team to join."},
    ]


@dataclass
class FakeRasa:
    """Rasa's REST channel, scripted: a reply per message, or down, or slow.

    A message in `slow` is answered only once its event is set (Rasa thinking for as long as a test
    needs, without a clock); `thinking` is set when such a message arrives, and `cancelled` lists the
    messages whose request the adapter gave up on while Rasa was still thinking.
    """

    replies: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    received: list[dict[str, str]] = field(default_factory=list)
    down: bool = False
    delay: float = 0.0
    slow: dict[str, asyncio.Event] = field(default_factory=dict)
    thinking: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: list[str] = field(default_factory=list)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if self.delay:
            await asyncio.sleep(self.delay)
        gate = self.slow.get(body["message"])
        if gate is not None:
            self.thinking.set()
            try:
                await gate.wait()
            except asyncio.CancelledError:
                self.cancelled.append(body["message"])
                raise
        self.received.append(body)
        default = [{"recipient_id": body["sender"], "text": f"echo: {body['message']}"}]
        return httpx.Response(200, json=self.replies.get(body["message"], default))

    def messages(self) -> list[str]:
        return [r["message"] for r in self.received]


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: dt.datetime = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


_updates = itertools.count(1)
_messages = itertools.count(5000)


def _user(user_id: int, first_name: str = "Alex") -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": first_name, "username": f"user{user_id}"}


def _chat(chat_id: int) -> dict[str, Any]:
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": "Alex"}
    return {"id": chat_id, "type": "supergroup", "title": "Signpost moderators"}


def message(user_id: int, chat_id: int | None = None, **content: Any) -> dict[str, Any]:
    """Return a real-shaped incoming message."""
    body: dict[str, Any] = {
        "message_id": next(_messages),
        "date": 1_700_000_000,
        "chat": _chat(chat_id if chat_id is not None else user_id),
        "from": _user(user_id),
        **content,
    }
    text = content.get("text", "")
    if text.startswith("/"):
        body["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return body


@dataclass
class Harness:
    """The running application, its fake Telegram and fake Rasa."""

    app: Application  # type: ignore[type-arg]
    request: RecordingRequest
    rasa: FakeRasa
    clock: Clock

    @property
    def relay(self) -> Relay:
        relay = self.app.bot_data[RELAY]
        assert isinstance(relay, Relay)
        return relay

    async def feed(self, update: dict[str, Any]) -> None:
        await self.app.process_update(Update.de_json({"update_id": next(_updates), **update}, self.app.bot))

    async def text(
        self,
        user_id: int,
        text: str,
        chat_id: int | None = None,
        reply_to: int | None = None,
        quoting: str = "…",
        quoted_from: int | None = None,
    ) -> int:
        """Feed a text message (a reply to message `reply_to`, which says `quoting` and was sent by the
        bot or by `quoted_from`); return its message id."""
        content: dict[str, Any] = {"text": text}
        if reply_to is not None:
            chat = chat_id if chat_id is not None else user_id
            author = _user(quoted_from) if quoted_from is not None else None
            content["reply_to_message"] = {
                "message_id": reply_to,
                "date": 1_700_000_000,
                "chat": _chat(chat),
                "from": author or {"id": BOT_ID, "is_bot": True, "first_name": "Signpost"},
                "text": quoting,
            }
        sent = message(user_id, chat_id, **content)
        await self.feed({"message": sent})
        return int(sent["message_id"])

    async def press(self, user_id: int, data: str, chat_id: int | None = None, text: str = "…") -> int:
        """Feed a press of a button with this data; return the id of the message the button was under."""
        chat = chat_id if chat_id is not None else user_id
        shown = {
            "message_id": next(_messages),
            "date": 1_700_000_000,
            "chat": _chat(chat),
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Signpost"},
            "text": text,
        }
        query = {
            "id": str(next(_updates)),
            "from": _user(user_id),
            "chat_instance": "1",
            "data": data,
            "message": shown,
        }
        await self.feed({"callback_query": query})
        return int(shown["message_id"])

    def cards(self) -> list[dict[str, Any]]:
        return self.request.sent(GROUP)

    def last_card_buttons(self) -> list[str]:
        markup = self.cards()[-1].get("reply_markup")
        return [b["callback_data"] for row in (markup or {}).get("inline_keyboard", []) for b in row]

    def alerts(self) -> list[str]:
        return [p.get("text", "") for p in self.request.of("answerCallbackQuery")]


def settings_for(database_url: str, tracker_store_url: str = "", **changes: Any) -> Settings:
    base = Settings(
        rasa_url="http://rasa.test",
        pseudonym_key=KEY.encode(),
        telegram_bot_token=TOKEN,
        telegram_base_url="http://telegram.test/bot",
        moderator_chat_id=GROUP,
        moderator_user_ids=frozenset({MODERATOR, OTHER_MODERATOR}),
        database_url=database_url,
        rasa_timeout_seconds=0.3,
        rasa_patience_seconds=2.0,
        telegram_rate_limit=False,
        transcript_keys=(TRANSCRIPT_KEY,),
        tracker_store_url=tracker_store_url or database_url,
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
def cases_url(database_url: str) -> Iterator[str]:
    """The migrated test database with no cases in it (the relay commits, so rows are deleted after)."""

    def clear() -> None:
        with sessionmaker_for(database_url).begin() as session:
            for table in (
                RelayMessage,
                CaseMessage,
                CaseEvent,
                HandoverCase,
                ChatTrail,
                UserBlock,
                ModeratorAction,
            ):
                session.execute(delete(table))

    clear()
    yield database_url
    clear()


@pytest.fixture
def trackers_url(tmp_path: Any) -> str:
    """An SQLite tracker store with Rasa's `events` table (the e2e tests use the real Rasa's)."""
    url = f"sqlite:///{tmp_path / 'trackers.db'}"
    privacy.EVENTS.metadata.create_all(engine_for(url))
    return url


Build = Callable[..., Any]


@pytest.fixture
async def harness(cases_url: str, trackers_url: str) -> AsyncIterator[Callable[..., Any]]:
    """Build and start an application (settings can be changed per test); all are shut down after."""
    started: list[Application] = []  # type: ignore[type-arg]

    async def build(
        rasa: FakeRasa | None = None,
        clock: Clock | None = None,
        request: RecordingRequest | None = None,
        web: WebChats | None = None,
        **changes: Any,
    ) -> Harness:
        request, rasa, clock = request or RecordingRequest(), rasa or FakeRasa(), clock or Clock()
        app = build_application(
            settings_for(changes.pop("database_url", cases_url), trackers_url, **changes),
            request=request,
            rasa_transport=httpx.MockTransport(rasa.handle),
            clock=clock,
            web=web,
        )
        await app.initialize()
        assert app.post_init is not None
        await app.post_init(app)
        started.append(app)
        outbox = app.bot_data[RELAY].channel
        getattr(outbox, "main", outbox).first_delay = 0.01  # Telegram's outbox (beside a web chat or not)
        return Harness(app, request, rasa, clock)

    yield build
    for app in started:
        assert app.post_shutdown is not None
        await app.post_shutdown(app)
        await app.shutdown()
