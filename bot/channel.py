"""What the conversation core needs of a channel (Telegram, the terminal, next the web chat).

The core speaks only through this interface and never imports a channel: a channel sends text with
buttons, edits and deletes what it sent (or says it can't), and shows typing. Its failures reach the
core as the exceptions below, never as a channel's own types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Say:
    """One message to show: its text and buttons as (title, data sent back when pressed)."""

    text: str
    buttons: tuple[tuple[str, str], ...] = ()


class UnreachableError(Exception):
    """The chat can't be written to (the person blocked the bot, or never started a chat with it)."""


class ChatBusyError(Exception):
    """The chat is at the channel's limit (Telegram's 429): try again after `seconds`."""

    seconds: float = 0.0


class MessageGoneError(Exception):
    """The message to edit is no longer there (deleted from the chat), or can no longer be edited."""


class Channel(Protocol):
    """Where the core's messages go: to people, to moderators' private chats and to their group."""

    @property
    def can_delete(self) -> bool:
        """Whether the channel can take back a message from a chat (quick exit, media)."""
        ...

    @property
    def shows_typing(self) -> bool:
        """Whether the channel shows "typing…" (the core then keeps it up while Rasa thinks)."""
        ...

    @property
    def max_text_chars(self) -> int:
        """How long one message may be; longer ones are sent in parts."""
        ...

    async def send(self, chat_id: int, message: Say) -> list[int]:
        """Send a message (split if too long); return its parts' ids, in order. Raise UnreachableError,
        or ChatBusyError where the chat is at its limit."""
        ...

    async def edit(self, chat_id: int, message_id: int, message: Say) -> None:
        """Replace a message's text and buttons. Raise MessageGoneError if it is no longer there."""
        ...

    async def delete(self, chat_id: int, message_id: int) -> bool:
        """Delete a message from a chat; return False where that isn't allowed."""
        ...

    async def delete_many(self, chat_id: int, message_ids: list[int]) -> None:
        """Delete messages from a chat, as many as the channel allows (best effort)."""
        ...

    async def typing(self, chat_id: int) -> None:
        """Show "typing…" in a chat (best effort, never raises)."""
        ...


def parts(channel: Channel, text: str) -> int:
    """Return how many messages a text takes on a channel."""
    return 1 + (len(text) - 1) // channel.max_text_chars if text else 1


class ByChat:
    """One channel made of several: each message goes to the channel whose chats it is for.

    The web chat runs beside Telegram in one process (one core): a web person's case card goes to the
    moderators' Telegram group, and the moderator's answer comes back to the web chat. `web` owns the
    chat ids it says it owns (`owns`); every other id is `main`'s.
    """

    def __init__(self, main: Channel, web: Channel, owns: Callable[[int], bool]) -> None:
        self.main = main
        self.web = web
        self.owns = owns

    def _for(self, chat_id: int) -> Channel:
        return self.web if self.owns(chat_id) else self.main

    @property
    def can_delete(self) -> bool:
        """Both can take back messages (where one can't, its own delete says so)."""
        return self.main.can_delete and self.web.can_delete

    @property
    def shows_typing(self) -> bool:
        """Typing is shown where either channel shows it (the other ignores it)."""
        return self.main.shows_typing or self.web.shows_typing

    @property
    def max_text_chars(self) -> int:
        """The shorter limit of the two."""
        return min(self.main.max_text_chars, self.web.max_text_chars)

    async def send(self, chat_id: int, message: Say) -> list[int]:
        """Send through the chat's channel."""
        return await self._for(chat_id).send(chat_id, message)

    async def edit(self, chat_id: int, message_id: int, message: Say) -> None:
        """Edit through the chat's channel."""
        await self._for(chat_id).edit(chat_id, message_id, message)

    async def delete(self, chat_id: int, message_id: int) -> bool:
        """Delete through the chat's channel."""
        return await self._for(chat_id).delete(chat_id, message_id)

    async def delete_many(self, chat_id: int, message_ids: list[int]) -> None:
        """Delete through the chat's channel."""
        await self._for(chat_id).delete_many(chat_id, message_ids)

    async def typing(self, chat_id: int) -> None:
        """Show typing through the chat's channel."""
        await self._for(chat_id).typing(chat_id)
