"""The fake Telegram Bot API, exercised through the real python-telegram-bot client (and raw HTTP)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar

import httpx
import pytest
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.error import BadRequest, Conflict, Forbidden, NetworkError, RetryAfter
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from scripts.stack import free_port
from tests.e2e.fake_telegram import MEDIA_KINDS, SECRET_TOKEN_HEADER, FakeTelegram, parse_html

T = TypeVar("T")

USER = 4242
OTHER_USER = 777
GROUP = -1001234567890


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


def with_bot[T](fake: FakeTelegram, action: Callable[[Bot], Awaitable[T]]) -> T:
    """Run ``action`` with a real, initialised telegram.Bot pointed at the fake."""

    async def main() -> T:
        async with Bot(fake.token, base_url=fake.base_url) as bot:
            return await asyncio.wait_for(action(bot), timeout=30)

    return asyncio.run(main())


def keyboard(*pairs: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(text, callback_data=data)] for text, data in pairs])


def test_get_me_describes_the_bot(fake: FakeTelegram) -> None:
    me = with_bot(fake, lambda bot: bot.get_me())
    assert me.id == fake.bot_id == int(fake.token.split(":")[0])
    assert me.is_bot
    assert me.username == "signpost_test_bot"
    assert fake.base_url.startswith("http://127.0.0.1:")
    assert fake.base_url.endswith("/bot")
    assert {c.method for c in fake.calls()} == {"getMe"}  # Bot.initialize() calls getMe too


def test_each_fake_is_a_bot_of_its_own_with_its_own_update_ids() -> None:
    with FakeTelegram() as first, FakeTelegram() as second:
        assert first.bot_id != second.bot_id
        assert first.inject_update({})["update_id"] == second.inject_update({})["update_id"] == 1


def test_send_message_to_started_chat_round_trips_inline_keyboard(fake: FakeTelegram) -> None:
    fake.start_private_chat(USER, first_name="Sam")
    markup = keyboard(("Housing", "topic:housing"), ("Money", "topic:money"))

    sent = with_bot(fake, lambda bot: bot.send_message(USER, "Pick a topic", reply_markup=markup))

    assert isinstance(sent, Message)
    assert sent.text == "Pick a topic"
    assert sent.chat.id == USER
    assert sent.chat.type == "private"
    assert sent.chat.first_name == "Sam"
    assert sent.from_user is not None
    assert sent.from_user.id == fake.bot_id
    assert sent.reply_markup == markup
    stored = fake.messages(USER)
    assert [m["message_id"] for m in stored] == [sent.message_id]
    assert stored[0]["reply_markup"]["inline_keyboard"][1][0]["callback_data"] == "topic:money"
    call = fake.calls("sendMessage")[0]
    assert call.params["chat_id"] == USER
    assert call.params["reply_markup"] == markup.to_dict()
    assert call.error_code is None


def test_send_message_to_a_chat_that_never_started_is_forbidden(fake: FakeTelegram) -> None:
    with pytest.raises(Forbidden, match="can't initiate conversation"):
        with_bot(fake, lambda bot: bot.send_message(OTHER_USER, "Hello?"))
    assert fake.messages(OTHER_USER) == []
    assert fake.calls("sendMessage")[0].error_code == 403

    fake.user_sends_text(OTHER_USER, "/start")
    sent = with_bot(fake, lambda bot: bot.send_message(OTHER_USER, "Hello!"))
    assert sent.text == "Hello!"


def test_blocked_user_and_unknown_group_are_refused(fake: FakeTelegram) -> None:
    fake.start_private_chat(USER)
    fake.user_blocks_bot(USER)
    with pytest.raises(Forbidden, match="blocked by the user"):
        with_bot(fake, lambda bot: bot.send_message(USER, "Still there?"))
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        with_bot(fake, lambda bot: bot.send_message(GROUP, "Hello group"))
    updates = with_bot(fake, lambda bot: bot.get_updates())
    assert updates[0].my_chat_member is not None
    assert updates[0].my_chat_member.new_chat_member.status == "kicked"


def test_edit_message_text_updates_the_stored_message_and_keeps_history(fake: FakeTelegram) -> None:
    fake.start_private_chat(USER)

    async def action(bot: Bot) -> tuple[Message, Message, Message]:
        sent = await bot.send_message(USER, "Searching…", reply_markup=keyboard(("Cancel", "cancel")))
        edited = await bot.edit_message_text("Found 3 services", chat_id=USER, message_id=sent.message_id)
        marked = await bot.edit_message_reply_markup(
            chat_id=USER, message_id=sent.message_id, reply_markup=keyboard(("More", "more"))
        )
        assert isinstance(edited, Message)
        assert isinstance(marked, Message)
        return sent, edited, marked

    sent, edited, marked = with_bot(fake, action)

    assert edited.text == "Found 3 services"
    assert edited.edit_date is not None
    assert edited.reply_markup is None  # editing text without reply_markup drops the keyboard, as on Telegram
    assert marked.reply_markup == keyboard(("More", "more"))
    current = fake.messages(USER)
    assert len(current) == 1
    assert current[0]["text"] == "Found 3 services"
    versions = fake.history(USER, sent.message_id)
    assert [v["text"] for v in versions] == ["Searching…", "Found 3 services", "Found 3 services"]
    assert "edit_date" not in versions[0]

    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        with_bot(
            fake,
            lambda bot: bot.edit_message_text(
                "Found 3 services",
                chat_id=USER,
                message_id=sent.message_id,
                reply_markup=keyboard(("More", "more")),
            ),
        )
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        with_bot(fake, lambda bot: bot.edit_message_text("x", chat_id=USER, message_id=999))


def test_delete_message_then_again_is_a_bad_request(fake: FakeTelegram) -> None:
    fake.start_private_chat(USER)

    async def action(bot: Bot) -> int:
        first = await bot.send_message(USER, "one")
        await bot.send_message(USER, "two")
        assert await bot.delete_message(USER, first.message_id) is True
        return first.message_id

    first_id = with_bot(fake, action)
    assert fake.deleted(USER) == {first_id}
    assert [m["text"] for m in fake.messages(USER)] == ["one", "two"]  # indexes stay stable
    assert [m["text"] for m in fake.visible_messages(USER)] == ["two"]

    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        with_bot(fake, lambda bot: bot.delete_message(USER, first_id))
    assert with_bot(fake, lambda bot: bot.delete_messages(USER, [first_id, first_id + 1, 999])) is True
    assert fake.deleted(USER) == {first_id, first_id + 1}


def test_get_updates_returns_injected_updates_and_honours_offset(fake: FakeTelegram) -> None:
    text = fake.user_sends_text(USER, "/start hello", username="sam_t")
    photo = fake.user_sends_photo(USER, caption="my letter")
    fake.user_edits_message(USER, text["message_id"], "/start again")
    bot_message: dict[str, Any] = {}

    async def send(bot: Bot) -> None:
        sent = await bot.send_message(USER, "Choose", reply_markup=keyboard(("Yes", "yes"), ("No", "no")))
        bot_message.update(sent.to_dict())

    with_bot(fake, send)
    query = fake.user_presses(USER, fake.messages(USER)[0], "yes")

    updates = with_bot(fake, lambda bot: bot.get_updates(timeout=0))

    assert all(isinstance(u, Update) for u in updates)
    assert [u.update_id for u in updates] == [1, 2, 3, 4]
    first = updates[0].message
    assert first is not None
    assert first.text == "/start hello"
    assert first.from_user is not None
    assert first.from_user.username == "sam_t"
    assert first.from_user.is_bot is False
    assert first.entities == (MessageEntity(MessageEntity.BOT_COMMAND, 0, 6),)
    assert first.chat.type == "private"
    assert updates[1].message is not None
    assert updates[1].message.photo
    assert updates[1].message.caption == "my letter"
    assert updates[1].message.photo[-1].width == 800
    assert updates[1].message.message_id == photo["message_id"]
    edited = updates[2].edited_message
    assert edited is not None
    assert edited.text == "/start again"
    assert edited.edit_date is not None
    callback = updates[3].callback_query
    assert callback is not None
    assert callback.data == "yes"
    assert callback.id == query["id"]
    assert callback.message is not None
    assert callback.message.message_id == bot_message["message_id"]
    assert callback.from_user.id == USER

    # Nothing is confirmed until an offset past it is sent; then it is gone.
    assert len(with_bot(fake, lambda bot: bot.get_updates(offset=3, timeout=0))) == 2
    assert with_bot(fake, lambda bot: bot.get_updates(offset=5, timeout=0)) == ()
    assert fake.pending_updates() == []
    assert with_bot(fake, lambda bot: bot.get_updates(limit=1)) == ()


def test_every_media_kind_and_location_de_json(fake: FakeTelegram) -> None:
    for kind in MEDIA_KINDS:
        fake.user_sends_media(USER, kind)
    fake.user_sends_location(USER, latitude=53.48, longitude=-2.24)

    updates = with_bot(fake, lambda bot: bot.get_updates())

    messages = [u.message for u in updates]
    assert all(m is not None for m in messages)
    for kind, message in zip(MEDIA_KINDS, messages, strict=False):
        assert getattr(message, kind), kind
    assert messages[0] is not None
    assert len({p.file_id for p in messages[0].photo}) == 3
    assert messages[-1] is not None
    assert messages[-1].location is not None
    assert messages[-1].location.latitude == pytest.approx(53.48)


def test_long_poll_returns_promptly_when_an_update_arrives(fake: FakeTelegram) -> None:
    timer = threading.Timer(0.5, fake.user_sends_text, args=(USER, "are you there?"))

    async def poll(bot: Bot) -> tuple[float, tuple[Update, ...]]:
        started = time.monotonic()
        timer.start()
        updates = await bot.get_updates(timeout=20)
        return time.monotonic() - started, updates

    try:
        elapsed, updates = with_bot(fake, poll)
    finally:
        timer.cancel()
    assert [u.message.text for u in updates if u.message] == ["are you there?"]
    assert 0.3 < elapsed < 5


def test_long_poll_without_updates_returns_empty_after_its_timeout(fake: FakeTelegram) -> None:
    async def poll(bot: Bot) -> tuple[float, tuple[Update, ...]]:
        started = time.monotonic()
        updates = await bot.get_updates(timeout=1)
        return time.monotonic() - started, updates

    elapsed, updates = with_bot(fake, poll)
    assert updates == ()
    assert 0.9 < elapsed < 5


def test_a_newer_get_updates_ends_an_older_one_with_conflict(fake: FakeTelegram) -> None:
    async def race(first: Bot) -> BaseException | tuple[Update, ...]:
        async with Bot(fake.token, base_url=fake.base_url) as second:  # a second bot instance
            older = asyncio.create_task(first.get_updates(timeout=20))
            await asyncio.sleep(0.3)
            await second.get_updates(timeout=0)
            results = await asyncio.gather(older, return_exceptions=True)
            return results[0]

    assert isinstance(with_bot(fake, race), Conflict)


def test_webhook_calls_and_get_updates_conflict(fake: FakeTelegram) -> None:
    async def action(bot: Bot) -> None:
        assert await bot.set_webhook("https://example.invalid/hook", secret_token="s3cret")
        info = await bot.get_webhook_info()
        assert info.url == "https://example.invalid/hook"
        with pytest.raises(Conflict, match="webhook is active"):
            await bot.get_updates()
        assert await bot.delete_webhook(drop_pending_updates=True)
        assert (await bot.get_webhook_info()).url == ""

    fake.user_sends_text(USER, "dropped")
    with_bot(fake, action)
    assert fake.pending_updates() == []


@dataclass(frozen=True)
class Received:
    """One POST the webhook receiver got."""

    path: str
    headers: dict[str, str]
    update: dict[str, Any]


class WebhookReceiver:
    """A plain-http server standing for a bot's webhook: records each POST and answers the given
    statuses in turn (200 once they run out)."""

    def __init__(self, statuses: Iterable[int] = ()) -> None:
        self.received: list[Received] = []
        self.statuses = deque(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append(Received(self.path, dict(self.headers.items()), json.loads(body)))
                self.send_response(receiver.statuses.popleft() if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def test_webhook_gets_queued_updates_in_order_with_the_secret_token() -> None:
    with WebhookReceiver() as receiver, FakeTelegram(webhook_via=receiver.base_url) as fake:
        with pytest.raises(BadRequest, match=r"(?i)https url must be provided"):
            with_bot(fake, lambda bot: bot.set_webhook(f"{receiver.base_url}/telegram"))
        for n in range(3):
            fake.user_sends_text(USER, f"early {n}")  # waits in the queue until a webhook is set
        assert with_bot(
            fake,
            lambda bot: bot.set_webhook("https://bot.example.org/telegram?x=1", secret_token="s3cret_42"),
        )
        fake.user_sends_text(USER, "late")
        fake.wait_for_delivery(timeout=10)

        assert [r.update["message"]["text"] for r in receiver.received] == [
            "early 0",
            "early 1",
            "early 2",
            "late",
        ]
        assert [r.update["update_id"] for r in receiver.received] == [1, 2, 3, 4]
        assert {r.path for r in receiver.received} == {"/telegram?x=1"}  # via the proxy, path and query kept
        assert all(r.headers[SECRET_TOKEN_HEADER] == "s3cret_42" for r in receiver.received)
        assert all(r.headers["Content-Type"] == "application/json" for r in receiver.received)
        assert [(d.update_id, d.status) for d in fake.webhook_deliveries()] == [(n, 200) for n in range(1, 5)]
        assert fake.webhook_deliveries()[0].url == f"{receiver.base_url}/telegram?x=1"
        assert fake.pending_updates() == []
        update = Update.de_json(receiver.received[-1].update, None)
        assert update.message is not None and update.message.text == "late"


def test_a_refused_webhook_delivery_is_retried_before_later_updates() -> None:
    with (
        WebhookReceiver(statuses=[500, 503]) as receiver,
        FakeTelegram(webhook_via=receiver.base_url) as fake,
    ):
        assert with_bot(fake, lambda bot: bot.set_webhook("https://bot.example.org/hook"))
        fake.user_sends_text(USER, "first")
        fake.user_sends_text(USER, "second")
        fake.wait_for_delivery(timeout=10)
        info = with_bot(fake, lambda bot: bot.get_webhook_info())

        assert [r.update["message"]["text"] for r in receiver.received] == [
            "first",
            "first",
            "first",
            "second",
        ]
        attempts = [(d.update_id, d.status, d.delivered) for d in fake.webhook_deliveries()]
        assert attempts == [(1, 500, False), (1, 503, False), (1, 200, True), (2, 200, True)]
        assert info.last_error_message is not None and "503" in info.last_error_message
        assert info.pending_update_count == 0
        assert all(SECRET_TOKEN_HEADER not in r.headers for r in receiver.received)  # no secret was set


def test_an_unreachable_webhook_keeps_updates_until_they_can_be_fetched() -> None:
    with FakeTelegram(webhook_via=f"http://127.0.0.1:{free_port()}") as fake:
        fake.user_sends_text(USER, "are you there")
        assert with_bot(fake, lambda bot: bot.set_webhook("https://bot.example.org/hook"))
        deadline = time.monotonic() + 10
        while len(fake.webhook_deliveries()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)

        attempts = fake.webhook_deliveries()
        assert len(attempts) >= 3  # retried, with a pause that grows
        assert all(a.status is None and a.error and not a.delivered for a in attempts)
        assert [u["message"]["text"] for u in fake.pending_updates()] == ["are you there"]
        with pytest.raises(AssertionError, match=r"is its webhook https://bot\.example\.org/hook answering"):
            fake.wait_for_delivery(timeout=0.1)

        async def back_to_polling(bot: Bot) -> tuple[Update, ...]:
            info = await bot.get_webhook_info()
            assert info.pending_update_count == 1 and info.last_error_message
            await bot.delete_webhook()
            return await bot.get_updates(timeout=0)

        updates = with_bot(fake, back_to_polling)
        assert [u.message.text for u in updates if u.message] == ["are you there"]  # nothing was lost


def test_a_webhook_set_during_a_long_poll_ends_it_so_nothing_is_handed_out_twice() -> None:
    with WebhookReceiver() as receiver, FakeTelegram(webhook_via=receiver.base_url) as fake:

        async def race(bot: Bot) -> object:
            async with Bot(fake.token, base_url=fake.base_url) as other:
                poll = asyncio.create_task(bot.get_updates(timeout=20))
                await asyncio.sleep(0.3)
                await other.set_webhook("https://bot.example.org/hook")
                fake.user_sends_text(USER, "only once")
                results = await asyncio.gather(poll, return_exceptions=True)
                return results[0]

        assert isinstance(with_bot(fake, race), Conflict)
        fake.wait_for_delivery(timeout=10)
        assert [r.update["message"]["text"] for r in receiver.received] == ["only once"]


def test_commands_are_stored_per_scope(fake: FakeTelegram) -> None:
    async def action(bot: Bot) -> None:
        assert await bot.set_my_commands([("start", "Start again"), ("help", "What I can do")])
        commands = await bot.get_my_commands()
        assert [c.command for c in commands] == ["start", "help"]
        with pytest.raises(BadRequest, match=r"(?i)BOT_COMMAND_INVALID"):
            await bot.set_my_commands([("Start", "Capital letters are refused")])
        assert await bot.delete_my_commands()
        assert await bot.get_my_commands() == ()

    with_bot(fake, action)
    assert [c.method for c in fake.calls()][-1] == "getMyCommands"


def test_reply_callback_answer_chat_action_copy_and_forward(fake: FakeTelegram) -> None:
    incoming = fake.user_sends_text(USER, "I need help with rent")
    fake.add_group(GROUP, "Signpost moderators")

    async def action(bot: Bot) -> None:
        assert await bot.send_chat_action(USER, "typing")
        reply = await bot.send_message(
            USER, "Here are some options", reply_to_message_id=incoming["message_id"]
        )
        assert reply.reply_to_message is not None
        assert reply.reply_to_message.text == "I need help with rent"
        with pytest.raises(BadRequest, match=r"(?i)message to be replied not found"):
            await bot.send_message(USER, "x", reply_to_message_id=999)
        copied = await bot.copy_message(GROUP, from_chat_id=USER, message_id=incoming["message_id"])
        forwarded = await bot.forward_message(GROUP, from_chat_id=USER, message_id=incoming["message_id"])
        assert forwarded.forward_origin is not None
        assert forwarded.chat.title == "Signpost moderators"
        assert copied.message_id == forwarded.message_id - 1
        markup = ReplyKeyboardMarkup([["Yes", "No"]], one_time_keyboard=True)
        shown = await bot.send_message(USER, "Is that right?", reply_markup=markup)
        assert shown.reply_markup is None  # Telegram only echoes inline keyboards
        assert fake.reply_keyboard(USER) == markup.to_dict()
        await bot.send_message(USER, "Thanks", reply_markup=ReplyKeyboardRemove())
        assert fake.reply_keyboard(USER) is None

    with_bot(fake, action)
    assert [m["text"] for m in fake.messages(GROUP)] == ["I need help with rent"] * 2

    offer = with_bot(
        fake, lambda bot: bot.send_message(USER, "Rate us", reply_markup=keyboard(("Good", "r:1")))
    )
    query = fake.user_presses(USER, offer.to_dict(), "r:1")
    with pytest.raises(AssertionError, match="no button"):
        fake.user_presses(USER, offer.to_dict(), "r:999")
    forged = fake.user_presses(USER, offer.to_dict(), "admin:delete-all", forged=True)
    assert forged["data"] == "admin:delete-all"

    async def answer(bot: Bot) -> None:
        assert await bot.answer_callback_query(query["id"], text="Thanks!")
        with pytest.raises(BadRequest, match=r"(?i)query is too old"):
            await bot.answer_callback_query(query["id"])

    with_bot(fake, answer)
    assert [a["text"] for a in fake.callback_answers() if "text" in a] == ["Thanks!"]


def test_group_messages_from_users_and_the_bot(fake: FakeTelegram) -> None:
    fake.add_group(GROUP, "Workers")
    message = fake.user_sends_text(USER, "/claim@signpost_test_bot", chat_id=GROUP)
    assert message["chat"] == {"id": GROUP, "type": "supergroup", "title": "Workers"}
    with pytest.raises(ValueError, match="not a registered group"):
        fake.user_sends_text(USER, "hi", chat_id=-5)

    updates = with_bot(fake, lambda bot: bot.get_updates())
    assert updates[0].message is not None
    assert updates[0].message.chat.type == "supergroup"
    assert updates[0].message.entities[0].length == len("/claim@signpost_test_bot")
    # A message in a group does not start the private chat.
    with pytest.raises(Forbidden):
        with_bot(fake, lambda bot: bot.send_message(USER, "private hello"))


def test_html_parse_mode_is_parsed_like_telegram(fake: FakeTelegram) -> None:
    fake.start_private_chat(USER)
    sent = with_bot(
        fake,
        lambda bot: bot.send_message(
            USER,
            "  <b>Shelter</b> &amp; <a href='https://example.org'>food</a> 😀 <i>x</i>\n",
            parse_mode="HTML",
        ),
    )
    assert sent.text == "Shelter & food 😀 x"
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [
        ("bold", 0, 7),
        ("text_link", 10, 4),
        ("italic", 18, 1),  # the emoji counts as two UTF-16 units
    ]
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        with_bot(fake, lambda bot: bot.send_message(USER, "1 < 2 <b>oops", parse_mode="HTML"))
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        with_bot(fake, lambda bot: bot.send_message(USER, "x" * 4097))
    assert parse_html("<pre><code class='language-python'>x = 1</code></pre>")[1] == [
        {"type": "pre", "language": "python", "offset": 0, "length": 5}
    ]


def test_inline_keyboard_buttons_are_validated(fake: FakeTelegram) -> None:
    fake.start_private_chat(USER)
    too_long = keyboard(("Too long", "x" * 65))
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        with_bot(fake, lambda bot: bot.send_message(USER, "Pick", reply_markup=too_long))


def seconds(value: float | timedelta) -> float:
    """RetryAfter.retry_after is an int in python-telegram-bot 22 and a timedelta once PTB_TIMEDELTA is on."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


# python-telegram-bot warns that RetryAfter.retry_after will become a timedelta; that is its business.
ignore_retry_after_deprecation = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


@ignore_retry_after_deprecation
def test_fail_next_429_raises_retry_after(fake: FakeTelegram) -> None:
    fake.start_private_chat(USER)
    fake.fail_next("sendMessage", error_code=429, retry_after=1)

    with pytest.raises(RetryAfter) as raised:
        with_bot(fake, lambda bot: bot.send_message(USER, "first try"))
    assert seconds(raised.value.retry_after) == 1
    sent = with_bot(fake, lambda bot: bot.send_message(USER, "second try"))
    assert sent.text == "second try"

    fake.fail_next("sendMessage", error_code=500, times=2)
    for _ in range(2):
        with pytest.raises(NetworkError, match="Internal Server Error"):
            with_bot(fake, lambda bot: bot.send_message(USER, "server trouble"))
    assert [c.error_code for c in fake.calls("sendMessage")] == [429, None, 500, 500]
    assert fake.rejected_429 == 0  # only enforced limits count


@ignore_retry_after_deprecation
def test_enforce_limits_answers_429_to_a_burst_to_one_chat(fake: FakeTelegram) -> None:
    fake.enforce_limits = True
    fake.start_private_chat(USER)

    async def burst(bot: Bot) -> list[float]:
        retry_afters: list[float] = []
        for i in range(8):
            try:
                await bot.send_message(USER, f"message {i}")
            except RetryAfter as exc:
                retry_afters.append(seconds(exc.retry_after))
        return retry_afters

    retry_afters = with_bot(fake, burst)
    # The burst of private_burst goes through; the rest of eight quick sends get 429 (give or take one
    # refilled token, should the machine be slow enough for the burst to last over a second).
    assert len(fake.messages(USER)) + len(retry_afters) == 8
    assert fake.private_burst <= len(fake.messages(USER)) <= fake.private_burst + 1
    assert fake.rejected_429 == len(retry_afters)
    assert all(r >= 1 for r in retry_afters)
    time.sleep(1.1)  # the bucket refills at one message per second
    assert with_bot(fake, lambda bot: bot.send_message(USER, "after waiting")).text == "after waiting"


def test_delay_next_holds_back_one_chats_send_so_later_ones_overtake_it(fake: FakeTelegram) -> None:
    fake.start_private_chat(USER)
    fake.start_private_chat(OTHER_USER)
    fake.delay_next("sendMessage", 0.5, chat_id=USER)

    async def race(bot: Bot) -> None:
        slow = asyncio.create_task(bot.send_message(USER, "slow"))
        await asyncio.sleep(0.1)
        await bot.send_message(OTHER_USER, "not delayed: another chat")
        await bot.send_message(USER, "overtakes")
        await slow

    started = time.monotonic()
    with_bot(fake, race)
    assert time.monotonic() - started >= 0.5
    assert [m["text"] for m in fake.messages(USER)] == ["overtakes", "slow"]
    assert [m["text"] for m in fake.messages(OTHER_USER)] == ["not delayed: another chat"]


def test_delay_next_answer_shows_the_message_before_the_bot_hears_back(fake: FakeTelegram) -> None:
    fake.start_private_chat(USER)
    fake.delay_next("sendMessage", 0.5, chat_id=USER, answer=True)

    async def send(bot: Bot) -> tuple[list[str], float]:
        started = time.monotonic()
        sending = asyncio.create_task(bot.send_message(USER, "on its way"))
        await asyncio.sleep(0.2)
        shown = [m["text"] for m in fake.messages(USER)]  # the chat has it, the bot doesn't know yet
        assert not sending.done()
        await sending
        return shown, time.monotonic() - started

    shown, took = with_bot(fake, send)
    assert shown == ["on its way"]
    assert took >= 0.5


def test_unknown_method_and_wrong_token_over_raw_http(fake: FakeTelegram) -> None:
    response = httpx.post(fake.api_url("sendPoll"), json={"chat_id": USER, "question": "?"}, timeout=10)
    assert response.status_code == 400
    assert response.json() == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: method not implemented in fake",
    }
    assert fake.calls("sendPoll")[0].params == {"chat_id": USER, "question": "?"}

    response = httpx.post(f"{fake.base_url}999:WRONG/getMe", timeout=10)
    assert response.status_code == 401
    assert response.json()["ok"] is False


def test_parameters_are_decoded_from_json_form_and_multipart(fake: FakeTelegram) -> None:
    fake.start_private_chat(USER)
    markup = '{"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}'
    bodies: list[dict[str, Any]] = [
        {"json": {"chat_id": str(USER), "text": "123", "reply_markup": markup}},
        {"data": {"chat_id": str(USER), "text": "123", "reply_markup": markup}},
        {"files": {"chat_id": (None, str(USER)), "text": (None, "123"), "reply_markup": (None, markup)}},
    ]
    for body in bodies:
        response = httpx.post(fake.api_url("sendMessage"), timeout=10, **body)
        assert response.status_code == 200, response.text
        result = response.json()["result"]
        assert result["text"] == "123"  # free text stays a string
        assert result["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "go"
    for call in fake.calls("sendMessage"):
        assert call.params["chat_id"] == USER
        assert isinstance(call.params["reply_markup"], dict)


def test_wait_for_message_timeout_explains_what_the_chat_received(fake: FakeTelegram) -> None:
    fake.start_private_chat(USER)
    with_bot(fake, lambda bot: bot.send_message(USER, "Hello there", reply_markup=keyboard(("Hi", "hi"))))
    with pytest.raises(Forbidden):
        with_bot(fake, lambda bot: bot.send_message(OTHER_USER, "nope"))

    assert fake.wait_for_message(USER, lambda m: "Hello" in m["text"], timeout=1)["text"] == "Hello there"
    with pytest.raises(AssertionError) as raised:
        fake.wait_for_message(USER, lambda m: "Goodbye" in m["text"], timeout=0.3)
    report = str(raised.value)
    assert "'Hello there'" in report
    assert "'hi'" in report
    assert "403" in report
    with pytest.raises(AssertionError, match="no bot message"):
        fake.wait_for_message(USER, timeout=0.2, after=1)
    assert fake.wait_for_call("sendMessage", lambda c: c.error_code == 403, timeout=1).params["chat_id"] == (
        OTHER_USER
    )


def test_application_polling_echoes_a_user_message(fake: FakeTelegram) -> None:
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_text(f"echo: {update.message.text}")

    async def main() -> dict[str, Any]:
        application = Application.builder().token(fake.token).base_url(fake.base_url).build()
        application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
        async with application:
            await application.start()
            assert application.updater is not None
            await application.updater.start_polling(poll_interval=0, timeout=5)
            try:
                fake.user_sends_text(USER, "hello fake")
                return await asyncio.to_thread(
                    fake.wait_for_message, USER, lambda m: m["text"] == "echo: hello fake", 20
                )
            finally:
                await application.updater.stop()
                await application.stop()

    reply = asyncio.run(asyncio.wait_for(main(), timeout=30))
    assert reply["chat"]["id"] == USER
    assert fake.calls("deleteWebhook")  # the Updater's bootstrap
    assert fake.pending_updates() == []  # the Updater confirmed what it fetched on stop
