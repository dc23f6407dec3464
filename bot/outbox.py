"""The Telegram channel's sending side (bot/channel.py's `Channel`): long texts split, buttons as inline
keyboards, errors retried, and Telegram's errors turned into the core's (UnreachableError, ChatBusyError,
MessageGoneError).

Telegram's flood limits (Bot FAQ: about one message a second in a chat, 20 a minute in a group, 30 a
second overall) are kept three ways. Our `ChatRateLimiter` (bot/ratelimit.py, set up in `app.py` when
TELEGRAM_RATE_LIMIT is on) holds the overall rate and, for the chat a 429 came from only, waits out its
`retry_after` (a private chat) or refuses at once (a group). It does not pace single private chats,
so while it is on this module does (`ChatPacer`): into each private chat one message at a time, in
order, a short burst and then one a second. That keeps a moderator's chat, which
many conversations feed at once, from meeting 429s, and when Telegram answers 429 all the same, the
message it made wait is not overtaken by the next one. The moderators' group is paced by the card
board (`bot/board.py`), so a 429 there is not waited out here: it goes back to the board, which keeps
the card owed and tries later. This module also retries network errors and time-outs with exponential
backoff, and turns "this chat can't be written to" into `UnreachableError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import TypeVar

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.constants import ChatAction, MessageLimit
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import ExtBot

from bot.channel import ChatBusyError, MessageGoneError, Say, UnreachableError

logger = logging.getLogger(__name__)

ATTEMPTS = 5
DELETE_AT_ONCE = 100  # deleteMessages takes 1 to 100 ids
FIRST_DELAY_SECONDS = 0.5
MAX_RETRY_AFTER_SECONDS = 60.0
# Telegram: "avoid sending more than one message per second" in a chat, "short bursts" allowed. A burst
# of 2 keeps a token in hand against its own count (which may see our messages arrive closer together).
PRIVATE_PER_SECOND = 1.0
PRIVATE_BURST = 2
REMEMBERED_CHATS = 10_000
_T = TypeVar("_T")


def split_text(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """Return a text in parts Telegram accepts, broken at paragraphs, lines or spaces where possible."""
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), window.rfind("\n"), window.rfind(" "))
        if cut < limit // 2:
            cut = limit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    parts.append(rest)
    return [p for p in parts if p] or [""]


def keyboard(message: Say) -> InlineKeyboardMarkup | None:
    """Return the inline keyboard of a message's buttons, one button per row."""
    if not message.buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(t, callback_data=d)] for t, d in message.buttons])


def _seconds(value: int | float | dt.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def is_group(chat_id: int) -> bool:
    """Return whether a chat id is a group's or a channel's (negative), not a person's private chat."""
    return chat_id < 0


class ChatPacer:
    """Paces each private chat: one message at a time, in order; a short burst, then one a second."""

    def __init__(
        self,
        per_second: float = PRIVATE_PER_SECOND,
        burst: int = PRIVATE_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_second = per_second
        self.burst = burst
        self.clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._sent: dict[int, float] = {}

    @contextlib.asynccontextmanager
    async def turn(self, chat_id: int) -> AsyncIterator[None]:
        """Hold a private chat while one message goes in, so messages leave in the order they came.

        Only one is in flight per chat: one that Telegram made wait (429) is not overtaken by the next,
        and never has to compete with it for the chat's next second. Groups are the card board's job.
        """
        if is_group(chat_id):
            yield
            return
        async with self._lock(chat_id):  # asyncio's lock is fair: first come, first served
            try:
                yield
            finally:
                self._held_back(chat_id)

    async def next(self, chat_id: int) -> None:
        """Wait, during a chat's turn, until one more message may go in, and count it."""
        if is_group(chat_id):
            return
        while (delay := self._take(chat_id)) > 0:
            await asyncio.sleep(delay)
        self._sent[chat_id] = self.clock()

    def _held_back(self, chat_id: int) -> None:
        """After a message that took longer than a second, count the chat's burst as spent.

        Such a message was held back by Telegram (a 429, waited out by the rate limiter): Telegram's
        count for the chat is lower than ours, for instance after answers the handlers sent themselves.
        Sending the next one at once would meet another 429, and hold the chat up again.
        """
        sent = self._sent.pop(chat_id, None)
        now = self.clock()
        if sent is not None and now - sent > 1.0 / self.per_second:
            self._buckets[chat_id] = (0.0, now)

    def _take(self, chat_id: int) -> float:
        """Take a token if there is one (0.0); otherwise return how long until there is."""
        now = self.clock()
        tokens, then = self._buckets.get(chat_id, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.per_second)
        if tokens >= 1.0:
            self._buckets[chat_id] = (tokens - 1.0, now)
            return 0.0
        self._buckets[chat_id] = (tokens, now)
        return (1.0 - tokens) / self.per_second

    def _lock(self, chat_id: int) -> asyncio.Lock:
        lock = self._locks.get(chat_id)
        if lock is None:
            if len(self._locks) > REMEMBERED_CHATS:  # forget idle chats (a full bucket is the default)
                for key in [k for k, v in self._locks.items() if not v.locked()]:
                    del self._locks[key]
                    self._buckets.pop(key, None)
                    self._sent.pop(key, None)
            lock = self._locks[chat_id] = asyncio.Lock()
        return lock


class TelegramChatBusyError(RetryAfter, ChatBusyError):
    """Telegram's 429 for a chat, as the core's ChatBusyError (and still python-telegram-bot's RetryAfter)."""


def _busy(exc: RetryAfter) -> TelegramChatBusyError:
    busy = TelegramChatBusyError(exc.retry_after)
    busy.seconds = _seconds(exc.retry_after)
    return busy


def _message_gone(exc: BadRequest) -> bool:
    """Return whether Telegram says the message to edit is no longer there (deleted from the chat)."""
    text = str(exc).lower()
    return "message to edit not found" in text or "message can't be edited" in text


class TelegramOutbox:
    """Sends, edits and deletes through the Bot API, with retries (and private chats paced)."""

    can_delete = True  # for 48 hours after sending (the Bot API's deleteMessage)
    shows_typing = True
    max_text_chars = MessageLimit.MAX_TEXT_LENGTH

    def __init__(
        self, bot: Bot, first_delay: float = FIRST_DELAY_SECONDS, pacer: ChatPacer | None = None
    ) -> None:
        self.bot = bot
        self.first_delay = first_delay
        # Pacing goes with python-telegram-bot's rate limiter: both on unless TELEGRAM_RATE_LIMIT=off.
        paced = isinstance(bot, ExtBot) and bot.rate_limiter is not None
        self.pacer = pacer if pacer is not None else (ChatPacer() if paced else None)
        # The rate limiter waits out a private chat's 429s itself; one it gives up on is not retried here.
        self.limited = paced

    async def send(self, chat_id: int, message: Say) -> list[int]:
        """Send a message (in parts if long; buttons on the last); return the parts' ids."""
        parts = split_text(message.text)
        ids = []
        async with self._turn(chat_id):
            for index, part in enumerate(parts):
                markup = keyboard(message) if index == len(parts) - 1 else None
                if self.pacer is not None:
                    await self.pacer.next(chat_id)
                sent: Message = await self._retry(
                    partial(self.bot.send_message, chat_id, part, reply_markup=markup), chat_id
                )
                ids.append(sent.message_id)
        return ids

    async def edit(self, chat_id: int, message_id: int, message: Say) -> None:
        """Replace a message's text and buttons (a card after a claim or close)."""
        text = split_text(message.text)[0]
        try:
            async with self._turn(chat_id):
                if self.pacer is not None:
                    await self.pacer.next(chat_id)
                await self._retry(
                    lambda: self.bot.edit_message_text(
                        text, chat_id=chat_id, message_id=message_id, reply_markup=keyboard(message)
                    ),
                    chat_id,
                )
        except BadRequest as exc:
            if _message_gone(exc):
                raise MessageGoneError(type(exc).__name__) from exc
            if "not modified" not in str(exc).lower():
                raise

    async def delete(self, chat_id: int, message_id: int) -> bool:
        """Delete a message; False where Telegram doesn't allow it (too old, already gone)."""
        try:
            return bool(await self._retry(lambda: self.bot.delete_message(chat_id, message_id), chat_id))
        except (BadRequest, UnreachableError) as exc:
            logger.warning("could not delete a message: %s", type(exc).__name__)
            return False

    async def delete_many(self, chat_id: int, message_ids: list[int]) -> None:
        """Delete messages, 100 per call; Telegram skips any it can't find or may no longer delete."""
        for start in range(0, len(message_ids), DELETE_AT_ONCE):
            chunk = message_ids[start : start + DELETE_AT_ONCE]
            try:
                await self._retry(partial(self.bot.delete_messages, chat_id, chunk), chat_id)
            except (BadRequest, UnreachableError) as exc:
                logger.warning("could not delete %d messages at once: %s", len(chunk), type(exc).__name__)
                for message_id in chunk:  # one by one, so one bad id can't keep the rest in the chat
                    await self.delete(chat_id, message_id)

    async def typing(self, chat_id: int) -> None:
        """Show "typing…" (best effort: never retried, never fails the conversation)."""
        try:
            await self.bot.send_chat_action(chat_id, ChatAction.TYPING)
        except TelegramError as exc:
            logger.debug("typing indicator failed: %s", type(exc).__name__)

    def _turn(self, chat_id: int) -> contextlib.AbstractAsyncContextManager[None]:
        return self.pacer.turn(chat_id) if self.pacer is not None else contextlib.nullcontext()

    async def _retry(self, call: Callable[[], Awaitable[_T]], chat_id: int) -> _T:
        """Run a Bot API call, retrying time-outs, network errors and 429s with backoff.

        A 429 from a group is raised at once: the card board keeps what it was writing and tries later.
        With the rate limiter on, a 429 reaching here was waited out already as often as it allows.
        """
        delay = self.first_delay
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await call()
            except Forbidden as exc:
                raise UnreachableError(type(exc).__name__) from exc
            except BadRequest as exc:
                if "chat not found" in str(exc).lower():
                    raise UnreachableError(type(exc).__name__) from exc
                raise
            except RetryAfter as exc:
                if is_group(chat_id) or self.limited:
                    raise _busy(exc) from exc
                wait = min(_seconds(exc.retry_after), MAX_RETRY_AFTER_SECONDS)
                logger.warning("Telegram asked us to wait %.0f s (attempt %d)", wait, attempt)
                if attempt == ATTEMPTS:
                    raise
                await asyncio.sleep(wait)
            except NetworkError as exc:  # includes TimedOut
                logger.warning("Telegram request failed: %s (attempt %d)", type(exc).__name__, attempt)
                if attempt == ATTEMPTS:
                    raise
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")
