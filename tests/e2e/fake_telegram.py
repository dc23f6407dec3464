"""A local fake of the Telegram Bot API for end-to-end tests, served by aiohttp on loopback.

The bot under test talks to it exactly as it would to ``https://api.telegram.org``: it posts
``{base_url}{token}/{method}`` with JSON, form-urlencoded or multipart parameters and gets
``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": ..., "description": ...}`` back,
with the HTTP status equal to the error code, as Telegram does. Results are shaped like the real
Bot API objects (https://core.telegram.org/bots/api) so that python-telegram-bot can ``de_json``
them.

The test drives the other side of the conversation from ordinary synchronous code::

    with FakeTelegram() as fake:
        # point the adapter at fake.base_url with token fake.token, start it, then:
        fake.user_sends_text(42, "/start")
        reply = fake.wait_for_message(42, lambda m: "Hello" in m.get("text", ""))
        fake.user_presses(42, reply, data="topic:housing")

What is modelled:

* ``getUpdates`` long polling with ``offset`` confirmation (negative offsets too), ``timeout``
  and ``limit``; a newer ``getUpdates`` ends an older pending one with 409 Conflict, and
  ``getUpdates`` while a webhook is set answers 409, as Telegram does. ``allowed_updates`` is
  accepted and ignored.
* Webhooks: while one is set (``setWebhook``), the fake POSTs each queued update as JSON to it, with
  ``X-Telegram-Bot-Api-Secret-Token`` when a ``secret_token`` was set. A 2xx answer delivers the
  update; any other answer, a connection error or no answer within :attr:`FakeTelegram.webhook_timeout`
  leaves it queued, and it is tried again after a pause that doubles from
  :attr:`FakeTelegram.webhook_retry_first` up to :attr:`FakeTelegram.webhook_retry_max` seconds
  (Telegram retries too; ``getWebhookInfo`` shows ``last_error_message``). Delivery is one update at a
  time, in ``update_id`` order: a later update waits until the earlier one is accepted. Telegram may
  open up to ``max_connections`` (default 40) connections at once; the fake records that value but
  stays serial, on purpose: python-telegram-bot answers a webhook as soon as it has queued the update,
  so serial delivery does not slow a bot down, and whatever reordering a test then sees comes from the
  bot, not the fake. Like Telegram, ``setWebhook`` only takes ``https://`` URLs; to reach a plain-http
  local server, set ``webhook_via`` (e.g. ``"http://127.0.0.1:8080"``): it stands for the
  TLS-terminating proxy, and deliveries go there instead, keeping the registered URL's path and query.
  :meth:`FakeTelegram.webhook_deliveries` lists every attempt.
* Sending to a private chat needs the user to have started the bot (any update from them in that
  chat, or :meth:`FakeTelegram.start_private_chat`), otherwise 403; a user who blocked the bot
  (:meth:`FakeTelegram.user_blocks_bot`) gives 403 too. Groups must be registered with
  :meth:`FakeTelegram.add_group`; other negative ids give 400 "chat not found".
* Message text is trimmed and limited to 4096 characters; ``parse_mode="HTML"`` is parsed into
  plain text plus entities like Telegram does, and malformed HTML answers 400 "can't parse
  entities". Markdown and MarkdownV2 text is stored as sent (not parsed or validated).
* Only inline keyboards are echoed in the returned message (as Telegram does); their buttons are
  validated (callback_data 1-64 bytes, one action per button). Reply keyboards are remembered per
  chat (:meth:`FakeTelegram.reply_keyboard`). Editing a message's text without ``reply_markup``
  removes its inline keyboard, as on Telegram, and an edit that changes nothing answers
  400 "message is not modified".
* Every call is recorded (:class:`Call`), including failed ones with their error code; unknown
  methods answer 400 "Bad Request: method not implemented in fake".
* Fault injection (:meth:`FakeTelegram.fail_next`), slow answers (:meth:`FakeTelegram.delay_next`)
  and optional enforcement of Telegram's documented flood limits (``enforce_limits``).

All state is guarded by one lock, so the test thread, the server thread and any other thread may
use the object at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from tests.e2e.loopback import LoopbackServer

JSON = dict[str, Any]

# Each fake is a bot of its own unless given a token: its own id, so its own count of update ids, as two
# bots have on Telegram. Several fakes in one run may serve adapters that share a database, which
# remembers (bot id, update id) pairs to drop an update Telegram delivers twice (bot/app.py once_only).
_bot_ids = itertools.count(123456)
BOT_USERNAME = "signpost_test_bot"
BOT_FIRST_NAME = "Signpost"
MAX_MESSAGE_LENGTH = 4096
MAX_CALLBACK_DATA_BYTES = 64
LONG_POLL_MAX_SECONDS = 50.0
WEBHOOK_RETRY_FIRST_SECONDS = 0.2
WEBHOOK_RETRY_MAX_SECONDS = 2.0
WEBHOOK_TIMEOUT_SECONDS = 10.0
SECRET_TOKEN_HEADER = "X-Telegram-Bot-Api-Secret-Token"

NOT_IMPLEMENTED = "Bad Request: method not implemented in fake"
CANT_INITIATE = "Forbidden: bot can't initiate conversation with a user"
BLOCKED = "Forbidden: bot was blocked by the user"
CHAT_NOT_FOUND = "Bad Request: chat not found"
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
GET_UPDATES_CONFLICT = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
)
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the "
    "webhook first"
)
QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"

# Parameters whose values are plain strings even when they look like JSON (a text "123" stays "123").
# Every other string value is JSON-decoded when it can be, because python-telegram-bot posts nested
# objects, numbers and booleans as JSON-encoded form fields.
_STRING_PARAMS = frozenset(
    {
        "action",
        "address",
        "business_connection_id",
        "callback_query_id",
        "caption",
        "currency",
        "custom_title",
        "description",
        "emoji",
        "explanation",
        "file_id",
        "first_name",
        "foursquare_id",
        "inline_message_id",
        "ip_address",
        "language_code",
        "last_name",
        "message_effect_id",
        "name",
        "parse_mode",
        "payload",
        "phone_number",
        "question",
        "secret_token",
        "short_description",
        "sticker",
        "text",
        "title",
        "url",
        "vcard",
    }
)

# Methods that put a new message into a chat; these are what the flood limits count.
_SENDING_METHODS = frozenset({"sendMessage", "copyMessage", "forwardMessage"})

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)

_INLINE_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)

# Message fields that make up a message's content (what copyMessage/forwardMessage carry over).
_CONTENT_FIELDS = (
    "text",
    "entities",
    "caption",
    "caption_entities",
    "photo",
    "video",
    "voice",
    "video_note",
    "document",
    "sticker",
    "animation",
    "audio",
    "location",
    "contact",
)

MEDIA_KINDS = ("photo", "video", "voice", "video_note", "document", "sticker", "animation", "audio")

_FILE_ID_PREFIX = {
    "photo": "AgACAgIAAxkBAAI",
    "video": "BAACAgIAAxkBAAI",
    "voice": "AwACAgIAAxkBAAI",
    "video_note": "DQACAgIAAxkBAAI",
    "document": "BQACAgIAAxkBAAI",
    "sticker": "CAACAgIAAxkBAAI",
    "animation": "CgACAgIAAxkBAAI",
    "audio": "CQACAgIAAxkBAAI",
    "thumbnail": "AAMCAgADGQEAAI",
}

_HTML_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
}
_HTML_TAG_RE = re.compile(r"([A-Za-z][A-Za-z0-9-]*)(.*)", re.DOTALL)
_HTML_ATTR_RE = re.compile(r"""([A-Za-z][\w-]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
_HTML_CHAR_REF_RE = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z]+);")
_HTML_NAMED_REFS = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_BOT_COMMAND_RE = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![^\s])")
_COMMAND_NAME_RE = re.compile(r"[a-z0-9_]{1,32}")


@dataclass(frozen=True)
class Call:
    """One request the bot made: the method, its decoded parameters and when it arrived.

    ``error_code`` and ``description`` are set when the fake answered with an error; ``result`` is
    the ``result`` it answered with otherwise.
    """

    method: str
    params: JSON
    at: float
    error_code: int | None = None
    description: str | None = None
    result: Any = None


@dataclass(frozen=True)
class WebhookDelivery:
    """One attempt to POST an update to the webhook: the URL it went to, and the HTTP status it got
    or the connection error (``status`` is None then)."""

    update_id: int
    url: str
    at: float
    status: int | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        """True when the webhook accepted the update (a 2xx answer)."""
        return self.status is not None and 200 <= self.status < 300


class TelegramApiError(Exception):
    """An error answer of the Bot API: ``{"ok": false, "error_code": ..., "description": ...}``."""

    def __init__(self, error_code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(f"{error_code} {description}")
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> JSON:
        """The JSON body Telegram would answer with."""
        body: JSON = {"ok": False, "error_code": self.error_code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


@dataclass
class _Fault:
    error_code: int
    description: str
    retry_after: int | None
    remaining: int


@dataclass
class _Delay:
    seconds: float
    chat_id: int | None
    remaining: int
    answer: bool  # True: the call takes effect at once and only its answer is late


def _always(_: Any) -> bool:
    return True


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _bad_request(description: str) -> TelegramApiError:
    return TelegramApiError(400, f"Bad Request: {description}")


def _cant_parse(description: str) -> TelegramApiError:
    return TelegramApiError(400, f"Bad Request: can't parse entities: {description}")


def decode_param(name: str, value: Any) -> Any:
    """Decode one request parameter the way the Bot API does.

    python-telegram-bot sends every non-string value JSON-encoded (``"42"``, ``"true"``,
    ``'{"inline_keyboard": [...]}'``); free-text parameters such as ``text`` stay strings.
    """
    if not isinstance(value, str) or name in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def parse_html(source: str) -> tuple[str, list[JSON]]:
    """Turn Telegram-style HTML into plain text and MessageEntity dicts (offsets in UTF-16 units).

    Supports the tags listed under "HTML style" in the Bot API docs and raises
    :class:`TelegramApiError` 400 "can't parse entities" for unsupported or unbalanced tags and for a
    ``<`` that does not start a tag, like Telegram.
    """
    parts: list[str] = []
    length = 0
    entities: list[JSON] = []
    stack: list[tuple[str, int, JSON | None]] = []
    i = 0
    while i < len(source):
        char = source[i]
        if char == "<":
            byte_offset = len(source[:i].encode("utf-8"))
            end = source.find(">", i)
            if end < 0:
                raise _cant_parse(f"Can't find end of the tag starting at byte offset {byte_offset}")
            inner = source[i + 1 : end].strip()
            if inner.startswith("/"):
                name = inner[1:].strip().lower()
                if not stack:
                    raise _cant_parse(f'Unexpected end tag "</{name}>" at byte offset {byte_offset}')
                open_name, start, entity = stack.pop()
                if name and name != open_name:
                    raise _cant_parse(
                        f'Unmatched end tag at byte offset {byte_offset}, expected "</{open_name}>", '
                        f'found "</{name}>"'
                    )
                if entity is not None and length > start:
                    entities.append({**entity, "offset": start, "length": length - start})
            else:
                match = _HTML_TAG_RE.fullmatch(inner)
                if match is None:
                    raise _cant_parse(f'Unsupported start tag "{inner}" at byte offset {byte_offset}')
                name = match.group(1).lower()
                attrs = {
                    m.group(1).lower(): next((g for g in m.groups()[1:] if g is not None), "")
                    for m in _HTML_ATTR_RE.finditer(match.group(2))
                }
                stack.append((name, length, _html_entity(name, attrs, stack, byte_offset)))
            i = end + 1
            continue
        piece = char
        if char == "&":
            ref = _HTML_CHAR_REF_RE.match(source, i)
            if ref is not None:
                body = ref.group(1)
                if body.startswith(("#x", "#X")):
                    piece = chr(int(body[2:], 16))
                elif body.startswith("#"):
                    piece = chr(int(body[1:]))
                else:
                    piece = _HTML_NAMED_REFS.get(body.lower(), ref.group(0))
                i = ref.end() - 1
        parts.append(piece)
        length += _utf16_len(piece)
        i += 1
    if stack:
        raise _cant_parse(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(parts), entities


def _html_entity(
    name: str, attrs: dict[str, str], stack: list[tuple[str, int, JSON | None]], byte_offset: int
) -> JSON | None:
    if name in _HTML_ENTITY_TYPES:
        if name == "code" and stack and stack[-1][0] == "pre" and stack[-1][2] is not None:
            language = attrs.get("class", "")
            if language.startswith("language-"):
                stack[-1][2]["language"] = language.removeprefix("language-")
                return None
        if name == "blockquote" and "expandable" in attrs:
            return {"type": "expandable_blockquote"}
        return {"type": _HTML_ENTITY_TYPES[name]}
    if name == "span" and attrs.get("class") == "tg-spoiler":
        return {"type": "spoiler"}
    if name == "a":
        href = attrs.get("href", "")
        return {"type": "text_link", "url": href} if href else None
    if name == "tg-emoji" and attrs.get("emoji-id"):
        return {"type": "custom_emoji", "custom_emoji_id": attrs["emoji-id"]}
    raise _cant_parse(f'Unsupported start tag "{name}" at byte offset {byte_offset}')


def _strip_text(text: str, entities: list[JSON]) -> tuple[str, list[JSON]]:
    """Trim leading/trailing whitespace as Telegram does, moving entity offsets along."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = _utf16_len(text[: len(text) - len(text.lstrip())])
    total = _utf16_len(stripped)
    kept: list[JSON] = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, total)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept


def command_entities(text: str) -> list[JSON]:
    """``bot_command`` entities for every ``/command`` (or ``/command@bot``) in a user's text."""
    return [
        {"type": "bot_command", "offset": _utf16_len(text[: m.start()]), "length": _utf16_len(m.group(0))}
        for m in _BOT_COMMAND_RE.finditer(text)
    ]


def _inline_buttons(markup: JSON | None) -> list[JSON]:
    if not markup:
        return []
    return [button for row in markup.get("inline_keyboard", []) for button in row]


def _describe_message(index: int, message: JSON, deleted: set[int]) -> str:
    content = message.get("text")
    if content is None:
        kinds = [kind for kind in (*MEDIA_KINDS, "location", "contact") if kind in message]
        content = f"<{'/'.join(kinds) or 'no text'}>" + (
            f" caption={message['caption']!r}" if "caption" in message else ""
        )
    else:
        content = repr(content if len(content) <= 300 else content[:300] + "…")
    flags = []
    if message["message_id"] in deleted:
        flags.append("DELETED")
    if "edit_date" in message:
        flags.append("edited")
    line = f"  [{index}] #{message['message_id']}{' (' + ', '.join(flags) + ')' if flags else ''}: {content}"
    buttons = _inline_buttons(message.get("reply_markup"))
    if buttons:
        labels = ", ".join(f"{b.get('text')!r}->{b.get('callback_data', b.get('url'))!r}" for b in buttons)
        line += f"\n      buttons: {labels}"
    return line


class FakeTelegram(LoopbackServer):
    """A fake Telegram Bot API server running in a background thread on 127.0.0.1.

    Use it as a context manager (or call :meth:`start` and :meth:`stop`). Point the bot at
    :attr:`base_url` with :attr:`token`. The test-side methods (``user_sends_text``,
    ``wait_for_message`` and the rest) are synchronous and thread-safe.

    With ``enforce_limits=True`` the fake answers 429 with ``parameters.retry_after`` when the bot
    exceeds Telegram's documented broadcast limits (Bot FAQ): about one message per second to a
    private chat (a burst of :attr:`private_burst` is allowed), :attr:`group_per_minute` messages per
    minute to a group and :attr:`global_per_second` messages per second overall. Only methods that
    send a new message count. :attr:`rejected_429` counts the 429s given this way.

    ``webhook_via`` (also settable later, as the attribute) is where the TLS-terminating proxy in front
    of the bot's webhook listens, e.g. ``"http://127.0.0.1:8080"``: updates for the registered
    ``https://`` webhook go there, path and query kept. Without it they go to the registered URL.
    """

    label = "FakeTelegram"

    def __init__(
        self,
        token: str | None = None,
        *,
        enforce_limits: bool = False,
        host: str = "127.0.0.1",
        bot_first_name: str = BOT_FIRST_NAME,
        bot_username: str = BOT_USERNAME,
        webhook_via: str | None = None,
    ) -> None:
        super().__init__(host)
        self.token = token or f"{next(_bot_ids)}:TEST-TOKEN"
        self.bot_id = int(self.token.split(":", 1)[0])
        self.bot_user: JSON = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
        }
        self.enforce_limits = enforce_limits
        self.private_per_second = 1.0
        self.private_burst = 3
        self.group_per_minute = 20
        self.global_per_second = 30
        self.webhook_via = webhook_via
        self.webhook_retry_first = WEBHOOK_RETRY_FIRST_SECONDS
        self.webhook_retry_max = WEBHOOK_RETRY_MAX_SECONDS
        self.webhook_timeout = WEBHOOK_TIMEOUT_SECONDS

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        # One more condition per chat, on the same lock: a test (or the bench's 50 people) waiting for a
        # bot message in its chat wakes only when that chat changes, not at every call to the fake.
        self._chat_changed: dict[int, threading.Condition] = {}
        # Update ids keep rising across reset(), so a bot that is polling with an offset still sees
        # the updates queued after it; the poll generation detects overlapping getUpdates requests.
        self._next_update_id = 1
        self._delivered_update_id = 0
        self._poll_generation = 0
        self._reset_state()

        self._handlers: dict[str, Callable[[JSON], Any]] = {
            "getMe": self._api_get_me,
            "deleteWebhook": self._api_delete_webhook,
            "setWebhook": self._api_set_webhook,
            "getWebhookInfo": self._api_get_webhook_info,
            "setMyCommands": self._api_set_my_commands,
            "deleteMyCommands": self._api_delete_my_commands,
            "getMyCommands": self._api_get_my_commands,
            "sendMessage": self._api_send_message,
            "editMessageText": self._api_edit_message_text,
            "editMessageReplyMarkup": self._api_edit_message_reply_markup,
            "answerCallbackQuery": self._api_answer_callback_query,
            "sendChatAction": self._api_send_chat_action,
            "deleteMessage": self._api_delete_message,
            "deleteMessages": self._api_delete_messages,
            "copyMessage": self._api_copy_message,
            "forwardMessage": self._api_forward_message,
            "close": self._api_true,
            "logOut": self._api_true,
        }
        self._canonical = {name.lower(): name for name in [*self._handlers, "getUpdates"]}

        self._runner: web.AppRunner | None = None
        self._update_event: asyncio.Event | None = None
        self._delivery_task: asyncio.Task[None] | None = None
        self._closing = False

    def _reset_state(self) -> None:
        with self._lock:
            self._calls: list[Call] = []
            self._updates: list[JSON] = []
            self._users: dict[int, JSON] = {}
            self._groups: dict[int, JSON] = {}
            self._started: set[int] = set()
            self._blocked: set[int] = set()
            self._messages: dict[int, dict[int, JSON]] = {}
            self._bot_message_ids: dict[int, list[int]] = {}
            self._history: dict[tuple[int, int], list[JSON]] = {}
            self._deleted: dict[int, set[int]] = {}
            self._next_message_id: dict[int, int] = {}
            self._reply_keyboards: dict[int, JSON | None] = {}
            self._callback_queries: dict[str, bool] = {}
            self._commands: dict[str, list[JSON]] = {}
            self._webhook: JSON = {}
            self._webhook_deliveries: list[WebhookDelivery] = []
            self._webhook_retry_at = 0.0
            self._webhook_delay = self.webhook_retry_first
            self._webhook_last_error: tuple[int, str] | None = None
            self._faults: dict[str, deque[_Fault]] = {}
            self._delays: dict[str, list[_Delay]] = {}
            self._private_buckets: dict[int, tuple[float, float]] = {}
            self._group_sends: dict[int, deque[float]] = {}
            self._global_sends: deque[float] = deque()
            self._file_counter = itertools.count(1)
            self._query_counter = itertools.count(1)
            self.rejected_429 = 0

    # ------------------------------------------------------------------ lifecycle

    def _before_start(self) -> None:
        self._closing = False

    def _before_stop(self, loop: asyncio.AbstractEventLoop) -> None:
        """End pending long polls first, so the bot's getUpdates gets its answer."""
        with self._lock:
            self._closing = True
        loop.call_soon_threadsafe(self._wake_pollers)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/bot``: give it to the bot as its Bot API base URL."""
        return f"http://{self.host}:{self.port}/bot"

    def api_url(self, method: str) -> str:
        """The full URL of one method, e.g. for raw HTTP requests in tests."""
        return f"{self.base_url}{self.token}/{method}"

    async def _startup(self, sock: socket.socket) -> None:
        self._update_event = asyncio.Event()
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=2.0)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner
        self._delivery_task = asyncio.get_running_loop().create_task(self._deliver_webhook())

    async def _shutdown(self) -> None:
        task, self._delivery_task = self._delivery_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def reset(self) -> None:
        """Forget every call, update, chat, message and fault (the server keeps running).

        Update ids go on from where they were, so a bot that keeps polling is not confused.
        """
        with self._changed:
            self._reset_state()
            self._changed.notify_all()

    # ------------------------------------------------------------------ HTTP side

    async def _handle(self, request: web.Request) -> web.Response:
        arrived = time.time()
        raw_method = request.match_info["method"]
        method = self._canonical.get(raw_method.lower(), raw_method)
        params: JSON = {}
        try:
            params = await self._read_params(request)
            if request.match_info["token"] != self.token:
                raise TelegramApiError(401, "Unauthorized")
            delay, late_answer = self._take_delay(method, params)
            if delay and not late_answer:
                await asyncio.sleep(delay)
            if method == "getUpdates":
                with self._lock:
                    self._take_fault(method)
                result = await self._get_updates(params)
                with self._changed:
                    self._record(Call(method, params, arrived, result=copy.deepcopy(result)))
            else:
                with self._changed:
                    self._take_fault(method)
                    handler = self._handlers.get(method)
                    if handler is None:
                        raise TelegramApiError(400, NOT_IMPLEMENTED)
                    result = handler(params)
                    self._record(Call(method, params, arrived, result=copy.deepcopy(result)))
        except TelegramApiError as error:
            with self._changed:
                self._record(Call(method, params, arrived, error.error_code, error.description))
            return web.json_response(error.payload(), status=error.error_code, dumps=self._dumps)
        except Exception as exc:  # a bug in the fake: answer 500 so the client notices, and record it
            crash = TelegramApiError(500, f"Internal Server Error: the fake crashed: {exc!r}")
            with self._changed:
                self._record(Call(method, params, arrived, crash.error_code, crash.description))
            return web.json_response(crash.payload(), status=500, dumps=self._dumps)
        if delay and late_answer:
            await asyncio.sleep(delay)
        return web.json_response({"ok": True, "result": result}, dumps=self._dumps)

    @staticmethod
    def _dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    @staticmethod
    async def _read_params(request: web.Request) -> JSON:
        raw: JSON = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError as exc:
                    raise _bad_request("can't parse JSON encoded request parameters") from exc
                if not isinstance(body, dict):
                    raise _bad_request("request parameters must be a JSON object")
                raw.update(body)
            elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.post()
                for name, value in form.items():
                    if isinstance(value, web.FileField):
                        raw[name] = {
                            "filename": value.filename,
                            "content_type": value.content_type,
                            "size": len(value.file.read()),
                        }
                    else:
                        raw[name] = value
        return {name: decode_param(name, value) for name, value in raw.items()}

    def _record(self, call: Call) -> None:
        self._calls.append(call)
        self._changed.notify_all()

    def _take_delay(self, method: str, params: JSON) -> tuple[float, bool]:
        """How long this call is delayed, and whether only its answer is (see :meth:`delay_next`)."""
        with self._lock:
            for delay in self._delays.get(method, []):
                if delay.chat_id is None or delay.chat_id == params.get("chat_id"):
                    delay.remaining -= 1
                    if delay.remaining <= 0:
                        self._delays[method].remove(delay)
                    return delay.seconds, delay.answer
        return 0.0, False

    def _take_fault(self, method: str) -> None:
        for key in (method, "*"):
            queue = self._faults.get(key)
            if queue:
                fault = queue[0]
                fault.remaining -= 1
                if fault.remaining <= 0:
                    queue.popleft()
                raise TelegramApiError(fault.error_code, fault.description, fault.retry_after)

    async def _get_updates(self, params: JSON) -> list[JSON]:
        loop = asyncio.get_running_loop()
        try:
            timeout = min(max(float(params.get("timeout") or 0), 0.0), LONG_POLL_MAX_SECONDS)
            limit = min(max(int(params.get("limit") or 100), 1), 100)
            offset = int(params["offset"]) if params.get("offset") is not None else None
        except (TypeError, ValueError) as exc:
            raise _bad_request("wrong parameter value in getUpdates") from exc
        deadline = loop.time() + timeout
        with self._changed:
            if self._webhook.get("url"):
                raise TelegramApiError(409, WEBHOOK_CONFLICT)
            self._poll_generation += 1
            generation = self._poll_generation
            if offset is not None:
                if offset < 0:
                    del self._updates[: max(len(self._updates) + offset, 0)]
                else:
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
            self._changed.notify_all()
        self._wake_pollers()  # a pending older getUpdates now ends with 409, as on Telegram
        while True:
            event = self._update_event
            with self._changed:
                if generation != self._poll_generation:
                    raise TelegramApiError(409, GET_UPDATES_CONFLICT)
                if self._webhook.get("url"):  # set while this poll waited: the webhook gets the updates
                    raise TelegramApiError(409, WEBHOOK_CONFLICT)
                batch = copy.deepcopy(self._updates[:limit])
                if batch or self._closing:
                    if batch:
                        self._delivered_update_id = max(self._delivered_update_id, batch[-1]["update_id"])
                        self._changed.notify_all()
                    return batch
            remaining = deadline - loop.time()
            if remaining <= 0 or event is None:
                return []
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    def _wake_pollers(self) -> None:
        """Runs on the server loop: wakes every pending getUpdates so it looks again."""
        old = self._update_event
        self._update_event = asyncio.Event()
        if old is not None:
            old.set()

    def _wake_pollers_threadsafe(self) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(self._wake_pollers)

    # ------------------------------------------------------------------ webhook delivery

    async def _deliver_webhook(self) -> None:
        """Runs on the server loop: while a webhook is set, POST queued updates to it, oldest first."""
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            while not self._closing:
                event = self._update_event
                job = self._next_delivery()
                if isinstance(job, float):
                    if event is not None:
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(event.wait(), job)
                    else:
                        await asyncio.sleep(job)
                    continue
                update_id, url, body, headers = job
                status: int | None = None
                error: str | None = None
                try:
                    async with session.post(
                        url,
                        data=body,
                        headers=headers,
                        timeout=aiohttp.ClientTimeout(total=self.webhook_timeout),
                        allow_redirects=False,
                    ) as response:
                        await response.read()
                        status = response.status
                        if not 200 <= status < 300:
                            error = (
                                f"Wrong response from the webhook: {status} {response.reason or ''}".strip()
                            )
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                self._delivered(WebhookDelivery(update_id, url, time.time(), status, error))

    def _next_delivery(self) -> tuple[int, str, bytes, dict[str, str]] | float:
        """The next update to POST (its id, URL, body and headers), or how long to wait for one."""
        with self._lock:
            url = str(self._webhook.get("url") or "")
            if not url or not self._updates or self._closing:
                return 0.2
            wait = self._webhook_retry_at - time.monotonic()
            if wait > 0:
                return min(wait, 0.2)
            update = self._updates[0]
            headers = {"Content-Type": "application/json"}
            if self._webhook.get("secret_token"):
                headers[SECRET_TOKEN_HEADER] = str(self._webhook["secret_token"])
            body = json.dumps(update, ensure_ascii=False).encode("utf-8")
            return update["update_id"], self._webhook_target(url), body, headers

    def _webhook_target(self, url: str) -> str:
        """Where a delivery to the registered URL goes: through ``webhook_via`` when it is set."""
        if not self.webhook_via:
            return url
        parts = urlsplit(url)
        return self.webhook_via.rstrip("/") + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def _delivered(self, attempt: WebhookDelivery) -> None:
        """Record a delivery attempt: a 2xx takes the update off the queue, anything else delays a retry."""
        with self._changed:
            self._webhook_deliveries.append(attempt)
            if attempt.delivered:
                self._updates = [u for u in self._updates if u["update_id"] != attempt.update_id]
                self._delivered_update_id = max(self._delivered_update_id, attempt.update_id)
                self._webhook_retry_at = 0.0
                self._webhook_delay = self.webhook_retry_first
            else:
                self._webhook_retry_at = time.monotonic() + self._webhook_delay
                self._webhook_delay = min(self._webhook_delay * 2, self.webhook_retry_max)
                self._webhook_last_error = (int(attempt.at), attempt.error or "")
            self._changed.notify_all()

    # ------------------------------------------------------------------ state helpers (lock held)

    def _user(self, user_id: int, first_name: str | None = None, username: str | None = None) -> JSON:
        user = self._users.get(user_id)
        if user is None:
            user = {"id": user_id, "is_bot": False, "first_name": first_name or "Alex"}
            self._users[user_id] = user
        if first_name is not None:
            user["first_name"] = first_name
        if username is not None:
            user["username"] = username
        return copy.deepcopy(user)

    def _private_chat(self, user_id: int) -> JSON:
        user = self._users.get(user_id) or {"first_name": "Alex"}
        chat: JSON = {"id": user_id, "type": "private", "first_name": user["first_name"]}
        if "username" in user:
            chat["username"] = user["username"]
        return chat

    def _chat(self, chat_id: int) -> JSON:
        if chat_id < 0:
            group = self._groups.get(chat_id)
            if group is None:
                raise TelegramApiError(400, CHAT_NOT_FOUND)
            return copy.deepcopy(group)
        return self._private_chat(chat_id)

    def _chat_for_send(self, chat_id: Any) -> JSON:
        """The chat object to send into, or the error Telegram would give."""
        if isinstance(chat_id, bool) or not isinstance(chat_id, int):
            if chat_id is None or chat_id == "":
                raise _bad_request("chat_id is empty")
            raise TelegramApiError(400, CHAT_NOT_FOUND)
        if chat_id < 0:
            return self._chat(chat_id)
        if chat_id == self.bot_id:
            raise TelegramApiError(403, "Forbidden: bots can't send messages to bots")
        if chat_id in self._blocked:
            raise TelegramApiError(403, BLOCKED)
        if chat_id not in self._started:
            raise TelegramApiError(403, CANT_INITIATE)
        return self._private_chat(chat_id)

    def _take_message_id(self, chat_id: int) -> int:
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        return message_id

    def _store(self, message: JSON) -> None:
        chat_id = message["chat"]["id"]
        self._messages.setdefault(chat_id, {})[message["message_id"]] = message
        self._history.setdefault((chat_id, message["message_id"]), []).append(copy.deepcopy(message))
        self._changed.notify_all()
        self._chat_condition(chat_id).notify_all()

    def _chat_condition(self, chat_id: int) -> threading.Condition:
        """The condition notified whenever a message in the chat is stored or edited (lock held)."""
        condition = self._chat_changed.get(chat_id)
        if condition is None:
            condition = self._chat_changed[chat_id] = threading.Condition(self._lock)
        return condition

    def _find(self, chat_id: Any, message_id: Any) -> JSON | None:
        if not isinstance(chat_id, int) or not isinstance(message_id, int):
            return None
        if message_id in self._deleted.get(chat_id, set()):
            return None
        return self._messages.get(chat_id, {}).get(message_id)

    def _reply_to(self, chat_id: int, params: JSON) -> JSON | None:
        """The reply_to_message for reply_parameters / reply_to_message_id, or the 400 Telegram gives."""
        reply = params.get("reply_parameters")
        if isinstance(reply, dict):
            message_id = reply.get("message_id")
            target_chat = reply.get("chat_id", chat_id)
            allow_missing = bool(reply.get("allow_sending_without_reply"))
        elif params.get("reply_to_message_id") is not None:
            message_id = params["reply_to_message_id"]
            target_chat = chat_id
            allow_missing = bool(params.get("allow_sending_without_reply"))
        else:
            return None
        target = self._find(target_chat, message_id)
        if target is None:
            if allow_missing:
                return None
            raise _bad_request("message to be replied not found")
        quoted = copy.deepcopy(target)
        quoted.pop("reply_to_message", None)
        return quoted

    @staticmethod
    def _markup(value: Any) -> JSON | None:
        """Validate reply_markup; return it when it is an inline keyboard (the only kind echoed)."""
        if value is None:
            return None
        if not isinstance(value, dict):
            raise _bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in value:
            rows = value["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
                raise _bad_request("can't parse inline keyboard markup JSON object")
            for button in (b for row in rows for b in row):
                if not isinstance(button, dict) or not button.get("text"):
                    raise _bad_request("can't parse inline keyboard button: Text must be non-empty")
                actions = [key for key in _INLINE_BUTTON_ACTIONS if key in button]
                if len(actions) != 1:
                    raise _bad_request(
                        "can't parse inline keyboard button: "
                        "Text buttons are unallowed in the inline keyboard"
                    )
                data = button.get("callback_data")
                if data is not None and not (
                    isinstance(data, str) and 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES
                ):
                    raise _bad_request("BUTTON_DATA_INVALID")
            return copy.deepcopy(value)
        if any(key in value for key in ("keyboard", "force_reply", "remove_keyboard")):
            return None
        raise _bad_request("can't parse reply keyboard markup JSON object")

    @staticmethod
    def _format_text(params: JSON) -> tuple[str, list[JSON]]:
        raw = params.get("text")
        if raw is None or raw == "":
            raise _bad_request("message text is empty")
        text = raw if isinstance(raw, str) else json.dumps(raw)
        entities = params.get("entities")
        if isinstance(entities, list) and entities:
            parsed = [dict(e) for e in entities if isinstance(e, dict)]
        else:
            mode = str(params.get("parse_mode") or "").lower()
            if mode == "html":
                text, parsed = parse_html(text)
            elif mode in ("", "markdown", "markdownv2"):
                parsed = []
            else:
                raise _bad_request("unsupported parse_mode")
        text, parsed = _strip_text(text, parsed)
        if not text:
            raise _bad_request("message text is empty")
        if len(text) > MAX_MESSAGE_LENGTH:
            raise _bad_request("message is too long")
        return text, parsed

    def _check_rate(self, chat_id: int) -> None:
        if not self.enforce_limits:
            return
        now = time.monotonic()
        waits: list[float] = []
        while self._global_sends and self._global_sends[0] <= now - 1.0:
            self._global_sends.popleft()
        if len(self._global_sends) >= self.global_per_second:
            waits.append(self._global_sends[0] + 1.0 - now)
        tokens = 0.0
        if chat_id < 0:
            sends = self._group_sends.setdefault(chat_id, deque())
            while sends and sends[0] <= now - 60.0:
                sends.popleft()
            if len(sends) >= self.group_per_minute:
                waits.append(sends[0] + 60.0 - now)
        else:
            tokens, last = self._private_buckets.get(chat_id, (float(self.private_burst), now))
            tokens = min(float(self.private_burst), tokens + (now - last) * self.private_per_second)
            if tokens < 1.0:
                waits.append((1.0 - tokens) / self.private_per_second)
        if waits:
            self.rejected_429 += 1
            retry_after = max(1, math.ceil(max(waits)))
            raise TelegramApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after)
        self._global_sends.append(now)
        if chat_id < 0:
            self._group_sends[chat_id].append(now)
        else:
            self._private_buckets[chat_id] = (tokens - 1.0, now)

    def _new_bot_message(self, chat: JSON, params: JSON, content: JSON) -> JSON:
        chat_id = chat["id"]
        reply_to = self._reply_to(chat_id, params)
        markup = self._markup(params.get("reply_markup"))
        self._check_rate(chat_id)
        shown = params.get("reply_markup")
        if isinstance(shown, dict) and ("keyboard" in shown or "force_reply" in shown):
            self._reply_keyboards[chat_id] = copy.deepcopy(shown)
        elif isinstance(shown, dict) and "remove_keyboard" in shown:
            self._reply_keyboards[chat_id] = None
        message: JSON = {
            "message_id": self._take_message_id(chat_id),
            "from": copy.deepcopy(self.bot_user),
            "chat": chat,
            "date": int(time.time()),
        }
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        message.update(content)
        if markup is not None:
            message["reply_markup"] = markup
        self._bot_message_ids.setdefault(chat_id, []).append(message["message_id"])
        self._store(message)
        return copy.deepcopy(message)

    def _queue_update(self, update: JSON) -> JSON:
        """Assign an update_id, remember what it tells about chats, and queue it (lock held)."""
        update = copy.deepcopy(update)
        update["update_id"] = self._next_update_id
        self._next_update_id += 1
        for key in ("message", "edited_message", "callback_query", "my_chat_member"):
            item = update.get(key)
            if not isinstance(item, dict):
                continue
            message = item.get("message") if key == "callback_query" else item
            sender = (item.get("from") or {}).get("id")
            chat = message.get("chat") if isinstance(message, dict) else None
            if not isinstance(chat, dict):
                continue
            private = chat.get("type") == "private" and sender == chat.get("id")
            if key != "my_chat_member" and private and isinstance(sender, int):
                self._started.add(sender)
                self._blocked.discard(sender)
            if key == "message" and "message_id" in item:
                self._messages.setdefault(chat["id"], {})[item["message_id"]] = copy.deepcopy(item)
                self._next_message_id[chat["id"]] = max(
                    self._next_message_id.get(chat["id"], 1), item["message_id"] + 1
                )
        self._updates.append(update)
        self._changed.notify_all()
        return update

    def _user_message(
        self,
        user_id: int,
        chat_id: int | None,
        first_name: str | None,
        username: str | None,
        reply_to_message_id: int | None,
        content: JSON,
    ) -> JSON:
        """Build, store and queue a message from a user; returns the Message (lock held)."""
        sender = self._user(user_id, first_name, username)
        target = user_id if chat_id is None else chat_id
        if target < 0:
            if target not in self._groups:
                raise ValueError(f"chat {target} is not a registered group: call add_group() first")
            chat = copy.deepcopy(self._groups[target])
        elif target != user_id:
            raise ValueError("a user can only write to their own private chat or to a registered group")
        else:
            chat = self._private_chat(user_id)
        message: JSON = {
            "message_id": self._take_message_id(target),
            "from": sender,
            "chat": chat,
            "date": int(time.time()),
        }
        if reply_to_message_id is not None:
            quoted = self._find(target, reply_to_message_id)
            if quoted is None:
                raise ValueError(f"no message {reply_to_message_id} in chat {target} to reply to")
            quoted = copy.deepcopy(quoted)
            quoted.pop("reply_to_message", None)
            message["reply_to_message"] = quoted
        message.update(content)
        self._store(message)
        self._queue_update({"message": message})
        self._wake_pollers_threadsafe()
        return copy.deepcopy(message)

    def _media(self, kind: str) -> JSON:
        if kind not in MEDIA_KINDS:
            raise ValueError(f"unknown media kind {kind!r}; expected one of {', '.join(MEDIA_KINDS)}")

        def file(prefix_kind: str, size: int, **fields: Any) -> JSON:
            number = next(self._file_counter)
            return {
                "file_id": f"{_FILE_ID_PREFIX[prefix_kind]}{number:06d}AAQ{prefix_kind[:3]}",
                "file_unique_id": f"AQAD{number:06d}",
                "file_size": size,
                **fields,
            }

        thumbnail = file("thumbnail", 5_000, width=320, height=180)
        if kind == "photo":
            return {
                "photo": [
                    file("photo", 1_300, width=90, height=68),
                    file("photo", 15_000, width=320, height=240),
                    file("photo", 62_000, width=800, height=600),
                ]
            }
        objects: dict[str, JSON] = {
            "video": file(
                "video",
                2_400_000,
                width=1280,
                height=720,
                duration=12,
                file_name="video.mp4",
                mime_type="video/mp4",
                thumbnail=thumbnail,
            ),
            "voice": file("voice", 16_000, duration=4, mime_type="audio/ogg"),
            "video_note": file("video_note", 300_000, length=240, duration=6, thumbnail=thumbnail),
            "document": file("document", 52_000, file_name="document.pdf", mime_type="application/pdf"),
            "sticker": file(
                "sticker",
                20_000,
                type="regular",
                width=512,
                height=512,
                is_animated=False,
                is_video=False,
                emoji="👍",
                set_name="SignpostTestStickers",
            ),
            "animation": file(
                "animation",
                150_000,
                width=320,
                height=240,
                duration=3,
                file_name="animation.mp4",
                mime_type="video/mp4",
            ),
            "audio": file(
                "audio",
                3_000_000,
                duration=180,
                performer="Test Artist",
                title="Test Song",
                file_name="song.mp3",
                mime_type="audio/mpeg",
            ),
        }
        content = {kind: objects[kind]}
        if kind == "animation":  # Telegram also fills `document` for animations, for old clients
            content["document"] = {
                key: objects["animation"][key]
                for key in ("file_id", "file_unique_id", "file_size", "file_name", "mime_type")
            }
        return content

    # ------------------------------------------------------------------ Bot API methods (lock held)

    def _api_true(self, params: JSON) -> bool:
        return True

    def _api_get_me(self, params: JSON) -> JSON:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _api_delete_webhook(self, params: JSON) -> bool:
        self._webhook = {}
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _api_set_webhook(self, params: JSON) -> bool:
        url = params.get("url") or ""
        if not url:
            return self._api_delete_webhook(params)
        if not str(url).startswith("https://"):
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        self._webhook = {key: value for key, value in params.items() if key != "certificate"}
        if params.get("drop_pending_updates"):
            self._updates.clear()
        self._webhook_retry_at = 0.0
        self._webhook_delay = self.webhook_retry_first
        self._wake_pollers()  # runs on the server loop: delivery starts at once
        return True

    def _api_get_webhook_info(self, params: JSON) -> JSON:
        info: JSON = {
            "url": self._webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        for key in ("max_connections", "allowed_updates", "ip_address"):
            if key in self._webhook:
                info[key] = self._webhook[key]
        if info["url"] and self._webhook_last_error is not None:
            info["last_error_date"], info["last_error_message"] = self._webhook_last_error
        return info

    @staticmethod
    def _commands_key(params: JSON) -> str:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps([scope, params.get("language_code") or ""], sort_keys=True)

    def _api_set_my_commands(self, params: JSON) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad_request("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND_NAME_RE.fullmatch(str(command.get("command"))):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description") or "")) <= 256:
                raise _bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self._commands[self._commands_key(params)] = copy.deepcopy(commands)
        return True

    def _api_delete_my_commands(self, params: JSON) -> bool:
        self._commands.pop(self._commands_key(params), None)
        return True

    def _api_get_my_commands(self, params: JSON) -> list[JSON]:
        return copy.deepcopy(self._commands.get(self._commands_key(params), []))

    def _api_send_message(self, params: JSON) -> JSON:
        chat = self._chat_for_send(params.get("chat_id"))
        text, entities = self._format_text(params)
        content: JSON = {"text": text}
        if entities:
            content["entities"] = entities
        return self._new_bot_message(chat, params, content)

    def _editable(self, params: JSON) -> JSON:
        if params.get("inline_message_id"):
            raise TelegramApiError(400, NOT_IMPLEMENTED + " (inline messages)")
        message = self._find(params.get("chat_id"), params.get("message_id"))
        if message is None:
            raise _bad_request("message to edit not found")
        if message.get("from", {}).get("id") != self.bot_id:
            raise _bad_request("message can't be edited")
        return message

    def _replace(self, old: JSON, new: JSON) -> JSON:
        new["edit_date"] = int(time.time())
        self._store(new)
        return copy.deepcopy(new)

    def _api_edit_message_text(self, params: JSON) -> JSON:
        message = self._editable(params)
        if "text" not in message:
            raise _bad_request("there is no text in the message to edit")
        text, entities = self._format_text(params)
        markup = self._markup(params.get("reply_markup"))
        if (
            text == message["text"]
            and entities == message.get("entities", [])
            and markup == message.get("reply_markup")
        ):
            raise _bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        new = copy.deepcopy(message)
        new["text"] = text
        new.pop("entities", None)
        new.pop("reply_markup", None)
        if entities:
            new["entities"] = entities
        if markup is not None:
            new["reply_markup"] = markup
        return self._replace(message, new)

    def _api_edit_message_reply_markup(self, params: JSON) -> JSON:
        message = self._editable(params)
        markup = self._markup(params.get("reply_markup"))
        if markup == message.get("reply_markup"):
            raise _bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        new = copy.deepcopy(message)
        new.pop("reply_markup", None)
        if markup is not None:
            new["reply_markup"] = markup
        return self._replace(message, new)

    def _api_answer_callback_query(self, params: JSON) -> bool:
        query_id = params.get("callback_query_id")
        if not query_id:
            raise _bad_request("callback_query_id is empty")
        if self._callback_queries.get(str(query_id)) is not False:
            raise TelegramApiError(400, QUERY_INVALID)
        if len(str(params.get("text") or "")) > 200:
            raise _bad_request("MESSAGE_TOO_LONG")
        self._callback_queries[str(query_id)] = True
        return True

    def _api_send_chat_action(self, params: JSON) -> bool:
        self._chat_for_send(params.get("chat_id"))
        if params.get("action") not in _CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        return True

    def _delete(self, chat_id: Any, message_id: Any) -> bool:
        if self._find(chat_id, message_id) is None:
            return False
        self._deleted.setdefault(chat_id, set()).add(message_id)
        self._changed.notify_all()
        return True

    def _api_delete_message(self, params: JSON) -> bool:
        if not self._delete(params.get("chat_id"), params.get("message_id")):
            raise _bad_request("message to delete not found")
        return True

    def _api_delete_messages(self, params: JSON) -> bool:
        ids = params.get("message_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            raise _bad_request("message identifiers are not specified")
        for message_id in ids:
            self._delete(params.get("chat_id"), message_id)
        return True

    def _source(self, params: JSON, what: str) -> JSON:
        source = self._find(params.get("from_chat_id"), params.get("message_id"))
        if source is None:
            raise _bad_request(f"message to {what} not found")
        return source

    def _api_copy_message(self, params: JSON) -> JSON:
        chat = self._chat_for_send(params.get("chat_id"))
        source = self._source(params, "copy")
        content = {key: copy.deepcopy(source[key]) for key in _CONTENT_FIELDS if key in source}
        if "caption" in params and "text" not in content:
            content["caption"] = params["caption"]
        message = self._new_bot_message(chat, params, content)
        return {"message_id": message["message_id"]}

    def _api_forward_message(self, params: JSON) -> JSON:
        chat = self._chat_for_send(params.get("chat_id"))
        source = self._source(params, "forward")
        content = {key: copy.deepcopy(source[key]) for key in _CONTENT_FIELDS if key in source}
        content["forward_origin"] = {
            "type": "user",
            "sender_user": copy.deepcopy(source.get("from", self.bot_user)),
            "date": source.get("date", int(time.time())),
        }
        return self._new_bot_message(chat, {}, content)

    # ------------------------------------------------------------------ test side: users act

    def start_private_chat(self, user_id: int, first_name: str = "Alex", username: str | None = None) -> None:
        """Mark the user's private chat as started, as if they had pressed Start."""
        with self._changed:
            self._user(user_id, first_name, username)
            self._started.add(user_id)
            self._blocked.discard(user_id)
            self._changed.notify_all()

    def add_group(self, chat_id: int, title: str) -> JSON:
        """Register a supergroup (negative id) the bot is a member of; returns its Chat."""
        if chat_id >= 0:
            raise ValueError("group chat ids are negative (supergroups look like -100xxxxxxxxxx)")
        with self._changed:
            self._groups[chat_id] = {"id": chat_id, "type": "supergroup", "title": title}
            self._changed.notify_all()
            return copy.deepcopy(self._groups[chat_id])

    def user_sends_text(
        self,
        user_id: int,
        text: str,
        first_name: str = "Alex",
        username: str | None = None,
        reply_to_message_id: int | None = None,
        chat_id: int | None = None,
    ) -> JSON:
        """Queue a text message from the user; returns the Message.

        The chat is the user's private chat unless ``chat_id`` names a registered group.
        ``/commands`` get ``bot_command`` entities.
        """
        content: JSON = {"text": text}
        entities = command_entities(text)
        if entities:
            content["entities"] = entities
        with self._changed:
            return self._user_message(user_id, chat_id, first_name, username, reply_to_message_id, content)

    def user_sends_media(
        self,
        user_id: int,
        kind: str,
        caption: str | None = None,
        first_name: str = "Alex",
        username: str | None = None,
        chat_id: int | None = None,
    ) -> JSON:
        """Queue a media message (one of :data:`MEDIA_KINDS`) with real-shaped file objects."""
        with self._changed:
            content = self._media(kind)
            if caption is not None:
                content["caption"] = caption
            return self._user_message(user_id, chat_id, first_name, username, None, content)

    def user_sends_photo(
        self,
        user_id: int,
        caption: str | None = None,
        first_name: str = "Alex",
        username: str | None = None,
        chat_id: int | None = None,
    ) -> JSON:
        """Queue a photo (a list of three PhotoSize objects), optionally with a caption."""
        return self.user_sends_media(user_id, "photo", caption, first_name, username, chat_id)

    def user_sends_location(
        self,
        user_id: int,
        latitude: float = 51.5074,
        longitude: float = -0.1278,
        first_name: str = "Alex",
        username: str | None = None,
        chat_id: int | None = None,
    ) -> JSON:
        """Queue a location message (defaults to central London)."""
        content = {"location": {"latitude": latitude, "longitude": longitude}}
        with self._changed:
            return self._user_message(user_id, chat_id, first_name, username, None, content)

    def user_edits_message(
        self, user_id: int, message_id: int, new_text: str, chat_id: int | None = None
    ) -> JSON:
        """Queue an ``edited_message`` update for a text message the user sent; returns the Message."""
        target = user_id if chat_id is None else chat_id
        with self._changed:
            message = self._find(target, message_id)
            if message is None or message.get("from", {}).get("id") != user_id or "text" not in message:
                raise ValueError(f"user {user_id} has no text message {message_id} in chat {target}")
            new = copy.deepcopy(message)
            new["text"] = new_text
            new.pop("entities", None)
            entities = command_entities(new_text)
            if entities:
                new["entities"] = entities
            new["edit_date"] = int(time.time())
            self._store(new)
            self._queue_update({"edited_message": new})
        self._wake_pollers_threadsafe()
        return copy.deepcopy(new)

    def user_presses(
        self,
        user_id: int,
        message: JSON,
        data: str,
        chat_id: int | None = None,
        first_name: str = "Alex",
        username: str | None = None,
        forged: bool = False,
    ) -> JSON:
        """Queue a ``callback_query`` for a button on a message the bot sent; returns the CallbackQuery.

        The query carries the message as it is now (after any edits). Unless ``forged`` is true,
        ``data`` must be the callback_data of one of its current inline buttons (so a test fails
        loudly when it presses a button that is not there); ``forged=True`` sends any data, as a
        modified client could.
        """
        target = message["chat"]["id"] if chat_id is None else chat_id
        with self._changed:
            current = self._find(target, message["message_id"])
            if current is None:
                if message["message_id"] in self._deleted.get(target, set()):
                    raise AssertionError(f"message {message['message_id']} in chat {target} was deleted")
                current = message
            if not forged:
                buttons = _inline_buttons(current.get("reply_markup"))
                offered = [b["callback_data"] for b in buttons if "callback_data" in b]
                if data not in offered:
                    raise AssertionError(
                        f"message {message['message_id']} in chat {target} has no button with "
                        f"callback_data {data!r}; it offers {offered!r} (pass forged=True to send it anyway)"
                    )
            query_id = f"{self.bot_id}{next(self._query_counter):012d}"
            self._callback_queries[query_id] = False
            query: JSON = {
                "id": query_id,
                "from": self._user(user_id, first_name, username),
                "chat_instance": str((target * 2654435761 + self.bot_id) % 10**19),
                "data": data,
                "message": copy.deepcopy(current),
            }
            self._queue_update({"callback_query": query})
        self._wake_pollers_threadsafe()
        return copy.deepcopy(query)

    def user_blocks_bot(self, user_id: int) -> JSON:
        """The user blocks the bot: later sends answer 403 and a ``my_chat_member`` update is queued."""
        with self._changed:
            self._blocked.add(user_id)
            update = self._queue_update(
                {
                    "my_chat_member": {
                        "chat": self._private_chat(user_id),
                        "from": self._user(user_id),
                        "date": int(time.time()),
                        "old_chat_member": {"user": copy.deepcopy(self.bot_user), "status": "member"},
                        "new_chat_member": {
                            "user": copy.deepcopy(self.bot_user),
                            "status": "kicked",
                            "until_date": 0,
                        },
                    }
                }
            )
        self._wake_pollers_threadsafe()
        return update

    def inject_update(self, update: JSON) -> JSON:
        """Queue any update (without ``update_id``: one is assigned); returns it with its id.

        A ``message``/``edited_message``/``callback_query`` from a user in their private chat starts
        that chat, and a ``message`` with a ``message_id`` becomes known for replies and deletes.
        """
        with self._changed:
            queued = self._queue_update(update)
        self._wake_pollers_threadsafe()
        return queued

    # ------------------------------------------------------------------ test side: inspect and wait

    def messages(self, chat_id: int) -> list[JSON]:
        """Every message the bot sent to the chat, in order, each in its latest (edited) state.

        Deleted messages stay in the list so that indexes (``after=``) are stable; see
        :meth:`deleted` and :meth:`visible_messages`.
        """
        with self._lock:
            return self._bot_messages(chat_id)

    def _bot_messages(self, chat_id: int) -> list[JSON]:
        chat = self._messages.get(chat_id, {})
        return [copy.deepcopy(chat[mid]) for mid in self._bot_message_ids.get(chat_id, [])]

    def visible_messages(self, chat_id: int) -> list[JSON]:
        """The bot's messages in the chat that have not been deleted."""
        with self._lock:
            gone = self._deleted.get(chat_id, set())
            return [m for m in self._bot_messages(chat_id) if m["message_id"] not in gone]

    def history(self, chat_id: int, message_id: int) -> list[JSON]:
        """Every version of a message, oldest first (the first is as sent, the last is current)."""
        with self._lock:
            return copy.deepcopy(self._history.get((chat_id, message_id), []))

    def deleted(self, chat_id: int) -> set[int]:
        """Ids of messages deleted in the chat (by deleteMessage or deleteMessages)."""
        with self._lock:
            return set(self._deleted.get(chat_id, set()))

    def reply_keyboard(self, chat_id: int) -> JSON | None:
        """The reply keyboard (or force_reply) the bot last showed in the chat, None once removed."""
        with self._lock:
            return copy.deepcopy(self._reply_keyboards.get(chat_id))

    def commands(self, scope: JSON | None = None, language_code: str | None = None) -> list[JSON]:
        """The command list set with setMyCommands for that scope and language."""
        with self._lock:
            key = self._commands_key({"scope": scope, "language_code": language_code})
            return copy.deepcopy(self._commands.get(key, []))

    def calls(self, method: str | None = None) -> list[Call]:
        """Recorded calls, oldest first, optionally only those to one method."""
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def callback_answers(self) -> list[JSON]:
        """Parameters of every answerCallbackQuery call, in order."""
        return [copy.deepcopy(c.params) for c in self.calls("answerCallbackQuery")]

    def pending_updates(self) -> list[JSON]:
        """Updates not yet confirmed by the bot (through getUpdates' offset) nor accepted by its webhook."""
        with self._lock:
            return copy.deepcopy(self._updates)

    def webhook_deliveries(self, update_id: int | None = None) -> list[WebhookDelivery]:
        """Every attempt to POST an update to the webhook, oldest first (optionally for one update)."""
        with self._lock:
            return [d for d in self._webhook_deliveries if update_id is None or d.update_id == update_id]

    def wait_for_message(
        self,
        chat_id: int,
        predicate: Callable[[JSON], bool] = _always,
        timeout: float = 30.0,
        after: int = 0,
    ) -> JSON:
        """Wait until a bot message in the chat, at index >= ``after`` in :meth:`messages`, satisfies
        ``predicate`` (edits count: a message edited to match is found); returns it.

        Raises AssertionError listing what the chat received, and the bot's failed calls, on timeout.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            changed = self._chat_condition(chat_id)
            while True:
                chat = self._messages.get(chat_id, {})
                for message_id in self._bot_message_ids.get(chat_id, [])[after:]:
                    if predicate(chat[message_id]):  # predicates only read; the caller gets a copy
                        return copy.deepcopy(chat[message_id])
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                changed.wait(remaining)
            dump = self._describe_chat(chat_id)
        raise AssertionError(
            f"no bot message in chat {chat_id} at index >= {after} matched within {timeout:g} s\n{dump}"
        )

    def wait_for_call(
        self,
        method: str,
        predicate: Callable[[Call], bool] = _always,
        timeout: float = 30.0,
        after: int = 0,
    ) -> Call:
        """Wait until a recorded call to ``method`` (index >= ``after`` in ``calls(method)``) satisfies
        ``predicate``; returns it. Raises AssertionError with the recent calls on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for call in [c for c in self._calls if c.method == method][after:]:
                    if predicate(call):
                        return call
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            recent = "\n".join(self._describe_call(c) for c in self._calls[-25:]) or "  (no calls at all)"
        raise AssertionError(
            f"no {method} call at index >= {after} matched within {timeout:g} s; last calls:\n{recent}"
        )

    def wait_for_delivery(self, update_id: int | None = None, timeout: float = 30.0) -> None:
        """Wait until getUpdates has handed out the update, or the webhook has accepted it (default: the
        last one queued). Webhook delivery is in order, so every earlier update is delivered too."""
        deadline = time.monotonic() + timeout
        with self._changed:
            target = self._next_update_id - 1 if update_id is None else update_id
            while self._delivered_update_id < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    webhook = self._webhook.get("url")
                    how = f"its webhook {webhook} answering" if webhook else "it polling"
                    last = (
                        f"; last webhook error: {self._webhook_last_error[1]}"
                        if (webhook and self._webhook_last_error)
                        else ""
                    )
                    raise AssertionError(
                        f"update {target} was not fetched by the bot within {timeout:g} s "
                        f"(last fetched: {self._delivered_update_id}); is {how}?{last}"
                    )
                self._changed.wait(remaining)

    @staticmethod
    def _describe_call(call: Call) -> str:
        params = json.dumps(call.params, ensure_ascii=False, default=str)
        outcome = f" -> {call.error_code} {call.description}" if call.error_code else ""
        return f"  {call.method} {params[:300]}{outcome}"

    def _describe_chat(self, chat_id: int) -> str:
        messages = self._bot_messages(chat_id)
        gone = self._deleted.get(chat_id, set())
        lines = [f"chat {chat_id} received {len(messages)} bot message(s):"]
        lines += [_describe_message(i, m, gone) for i, m in enumerate(messages)]
        failed = [c for c in self._calls if c.error_code and c.params.get("chat_id") == chat_id]
        if failed:
            lines.append("failed calls for this chat:")
            lines += [self._describe_call(c) for c in failed[-10:]]
        other = [c for c in self._calls if c.error_code and c.params.get("chat_id") != chat_id]
        if other:
            lines.append("other failed calls:")
            lines += [self._describe_call(c) for c in other[-5:]]
        return "\n".join(lines)

    # ------------------------------------------------------------------ faults

    def fail_next(
        self,
        method: str,
        error_code: int = 500,
        retry_after: int | None = None,
        times: int = 1,
        description: str | None = None,
    ) -> None:
        """Make the next ``times`` calls to ``method`` (``"*"``: any method) fail with ``error_code``.

        A 429 carries ``parameters.retry_after`` (default 1 s), as Telegram's flood errors do.
        """
        if error_code == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            description = {
                400: "Bad Request: injected failure",
                403: "Forbidden: injected failure",
                429: f"Too Many Requests: retry after {retry_after}",
                500: "Internal Server Error",
                502: "Bad Gateway",
            }.get(error_code, f"Error {error_code}: injected failure")
        with self._lock:
            self._faults.setdefault(method, deque()).append(
                _Fault(error_code, description, retry_after, max(times, 1))
            )

    def delay_next(
        self, method: str, seconds: float, times: int = 1, chat_id: int | None = None, answer: bool = False
    ) -> None:
        """Make the next ``times`` calls to ``method`` (for ``chat_id`` only, if given) wait ``seconds``
        before they are handled, as on a slow network or a busy Telegram: what they send appears in
        the chat only then, after anything sent meanwhile. With ``answer=True`` the call takes effect
        at once (the chat shows the message) and only the answer to the bot comes ``seconds`` late."""
        with self._lock:
            self._delays.setdefault(method, []).append(_Delay(seconds, chat_id, max(times, 1), answer))
