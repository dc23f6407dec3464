"""Telegram's flood limits, kept per chat: a 429 in one chat makes only that chat wait.

python-telegram-bot's `AIORateLimiter` halts *every* request of the bot for a RetryAfter's retry_after
(its own documentation says so). In a black-box run the moderators' group answered 429 (retry after
15 s), and from then on every chat waited: another person's "hi", a crisis answer, the urgent card. This
limiter, on PTB's `BaseRateLimiter`, keeps the same two throttles (about 30 calls a second into chats,
20 a minute into each group) and answers a 429 for the chat it came from only:

* A private chat, or a call that names no chat, waits out its own retry_after and is tried again, up to
  `max_retries` times; calls into that chat meanwhile wait too, every other chat goes on.
* A group is never waited for: the RetryAfter is raised at once (the card board keeps what it owes and
  writes it when the group is open again), and until the retry_after has passed every call into that
  group is refused at once, with the time left, without asking Telegram again.

`rate_limit_args` (an int), where a caller passes it, sets how many times that one call is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiolimiter import AsyncLimiter
from telegram.constants import FloodLimit
from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

logger = logging.getLogger(__name__)

RETRIES = 5
REMEMBERED_CHATS = 512
Result = bool | dict[str, Any] | list[dict[str, Any]]


def _seconds(value: int | float | dt.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def chat_of(data: dict[str, Any]) -> int | str | None:
    """Return the chat a Bot API call writes into (an id, or a @username), if it names one."""
    chat = data.get("chat_id")
    if chat is None:
        return None
    with contextlib.suppress(TypeError, ValueError):
        return int(chat)
    return str(chat)


def is_group(chat: int | str | None) -> bool:
    """Return whether a chat is a group or channel: a negative id, or a @username (only those have one)."""
    return isinstance(chat, str) or (isinstance(chat, int) and chat < 0)


class ChatRateLimiter(BaseRateLimiter[int]):
    """Throttles the bot overall and per group; a 429 holds only the chat it came from."""

    def __init__(
        self,
        max_retries: int = RETRIES,
        overall_per_second: float = FloodLimit.MESSAGES_PER_SECOND,
        group_per_minute: float = FloodLimit.MESSAGES_PER_MINUTE_PER_GROUP,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_retries = max_retries
        self.group_per_minute = group_per_minute
        self.clock = clock
        self._overall = AsyncLimiter(overall_per_second, 1)
        self._groups: dict[int | str, AsyncLimiter] = {}
        self._shut: dict[int | str, float] = {}  # chat -> when Telegram lets us write into it again

    async def initialize(self) -> None:
        """Nothing to open."""

    async def shutdown(self) -> None:
        """Nothing to close."""

    def shut_for(self, chat: int | str) -> float:
        """Return how many seconds a chat is still closed by Telegram's last 429 (0.0: open)."""
        until = self._shut.get(chat)
        if until is None:
            return 0.0
        left = until - self.clock()
        if left <= 0:
            del self._shut[chat]
            return 0.0
        return left

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Result]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Result:
        """Make the call when its chat is open; on a 429, close that chat only, and retry or raise."""
        chat = chat_of(data)
        group = is_group(chat)
        retries = rate_limit_args if rate_limit_args is not None else (0 if group else self.max_retries)
        for attempt in range(retries + 1):
            if chat is not None:
                await self._open(chat, group)
            try:
                return await self._call(chat, group, callback, args, kwargs)
            except RetryAfter as exc:
                seconds = _seconds(exc.retry_after) + 0.1
                logger.warning(
                    "Telegram answered 429 for %s (%s): that chat waits %.0f s, no other does",
                    "a group" if group else ("a private chat" if chat is not None else "a call"),
                    endpoint,
                    seconds,
                )
                if chat is not None:
                    self._close(chat, seconds)
                if attempt == retries:
                    raise
                if chat is None:
                    await asyncio.sleep(seconds)
        raise AssertionError("unreachable")

    async def _open(self, chat: int | str, group: bool) -> None:
        """Wait until a private chat is open again; refuse a closed group at once."""
        left = self.shut_for(chat)
        if left <= 0:
            return
        if group:
            raise RetryAfter(math.ceil(left))
        await asyncio.sleep(left)

    async def _call(
        self,
        chat: int | str | None,
        group: bool,
        callback: Callable[..., Coroutine[Any, Any, Result]],
        args: Any,
        kwargs: dict[str, Any],
    ) -> Result:
        overall = self._overall if chat is not None else contextlib.nullcontext()
        per_group = self._group(chat) if group and chat is not None else contextlib.nullcontext()
        async with per_group, overall:
            return await callback(*args, **kwargs)

    def _close(self, chat: int | str, seconds: float) -> None:
        now = self.clock()
        if len(self._shut) >= REMEMBERED_CHATS:
            for key in [k for k, until in self._shut.items() if until <= now]:
                del self._shut[key]
        self._shut[chat] = max(self._shut.get(chat, 0.0), now + seconds)

    def _group(self, chat: int | str) -> AsyncLimiter:
        limiter = self._groups.get(chat)
        if limiter is None:
            if len(self._groups) >= REMEMBERED_CHATS:
                for key, idle in list(self._groups.items()):
                    if idle.has_capacity(idle.max_rate):
                        del self._groups[key]
            limiter = self._groups[chat] = AsyncLimiter(self.group_per_minute, 60)
        return limiter
