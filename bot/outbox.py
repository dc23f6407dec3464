"""The relay's messages through Telegram: long texts split, buttons as inline keyboards, errors retried.

Telegram's flood limits are respected by python-telegram-bot's `AIORateLimiter` (set up in `app.py`),
which also retries a 429 answer after its `retry_after`; this module retries network errors and time-outs
with exponential backoff, and turns "this chat can't be written to" into `UnreachableError`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.constants import ChatAction, MessageLimit
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from bot.cards import Say
from bot.relay import UnreachableError

logger = logging.getLogger(__name__)

ATTEMPTS = 5
FIRST_DELAY_SECONDS = 0.5
MAX_RETRY_AFTER_SECONDS = 60.0
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


class TelegramOutbox:
    """Sends, edits and deletes through the Bot API, with retries."""

    def __init__(self, bot: Bot, first_delay: float = FIRST_DELAY_SECONDS) -> None:
        self.bot = bot
        self.first_delay = first_delay

    async def send(self, chat_id: int, message: Say) -> int:
        """Send a message (in parts if long; buttons on the last); return the last part's id."""
        parts = split_text(message.text)
        sent: Message | None = None
        for index, part in enumerate(parts):
            markup = keyboard(message) if index == len(parts) - 1 else None
            sent = await self._retry(partial(self.bot.send_message, chat_id, part, reply_markup=markup))
        assert sent is not None
        return sent.message_id

    async def edit(self, chat_id: int, message_id: int, message: Say) -> None:
        """Replace a message's text and buttons (a card after a claim or close)."""
        text = split_text(message.text)[0]
        try:
            await self._retry(
                lambda: self.bot.edit_message_text(
                    text, chat_id=chat_id, message_id=message_id, reply_markup=keyboard(message)
                )
            )
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():
                raise

    async def delete(self, chat_id: int, message_id: int) -> bool:
        """Delete a message; False where Telegram doesn't allow it (too old, already gone)."""
        try:
            return bool(await self._retry(lambda: self.bot.delete_message(chat_id, message_id)))
        except (BadRequest, UnreachableError) as exc:
            logger.warning("could not delete a message: %s", type(exc).__name__)
            return False

    async def typing(self, chat_id: int) -> None:
        """Show "typing…" (best effort: never retried, never fails the conversation)."""
        try:
            await self.bot.send_chat_action(chat_id, ChatAction.TYPING)
        except TelegramError as exc:
            logger.debug("typing indicator failed: %s", type(exc).__name__)

    async def _retry(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """Run a Bot API call, retrying time-outs, network errors and 429s with backoff."""
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
