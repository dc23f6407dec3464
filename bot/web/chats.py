"""The web channel: each browser's conversation, held in memory while it is open, and the live feed to it.

A web chat is a channel of the core like Telegram and the terminal (bot/channel.py): the core sends text
with buttons, edits and deletes what it sent, and shows typing. The page shows the conversation from
here; nothing is written to the browser's storage. A chat is kept in memory only: quick exit and
"forget me" empty it, and a chat nobody has looked at for `IDLE_SECONDS` is dropped.

Web chats have ids of their own, at `WEB_CHAT_BASE` and above, so they never meet a Telegram chat id
(Telegram's are below 2**53), and the core's one channel can send each message to the right place
(`bot.channel.ByChat`).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from bot.channel import MessageGoneError, Say, UnreachableError

WEB_CHAT_BASE = 1 << 62
MAX_TEXT_CHARS = 4000
KEPT_MESSAGES = 200  # a chat's longest history in memory (older lines drop off the page)
MAX_CHATS = 20_000  # chats in memory at most; the longest idle goes first
IDLE_SECONDS = 2 * 3600.0
LISTENER_QUEUE = 100  # events waiting for a slow page; past it the page reloads what it missed


@dataclass(frozen=True)
class Line:
    """One message on the page: ours (with buttons) or the person's own."""

    id: int
    text: str
    buttons: tuple[tuple[str, str], ...] = ()
    mine: bool = False

    def event(self) -> dict[str, Any]:
        """Return the line as the page's script receives it."""
        return {
            "type": "line",
            "id": self.id,
            "text": self.text,
            "buttons": [{"title": t, "data": d} for t, d in self.buttons],
            "mine": self.mine,
        }


@dataclass
class WebChat:
    """One browser's conversation: its lines, the pages listening, and when it was last used."""

    lines: list[Line] = field(default_factory=list)
    listeners: set[asyncio.Queue[dict[str, Any]]] = field(default_factory=set)
    seen: float = field(default_factory=time.monotonic)

    def publish(self, event: dict[str, Any]) -> None:
        """Give an event to every page listening (a page too slow to take it is told to reload)."""
        for queue in list(self.listeners):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self.listeners.discard(queue)  # its page reloads what it missed, and listens again
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait({"type": "reload"})


class WebChats:
    """The web channel: what the core sends to web chats, kept for their pages and pushed to them live."""

    can_delete = True
    shows_typing = True
    max_text_chars = MAX_TEXT_CHARS

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._chats: OrderedDict[int, WebChat] = OrderedDict()
        self._ids = itertools.count(1)
        self._clock = clock

    @staticmethod
    def owns(chat_id: int) -> bool:
        """Return whether a chat id is a web chat's."""
        return chat_id >= WEB_CHAT_BASE

    def chat(self, chat_id: int) -> WebChat:
        """Return a web chat, opening it if it is new (and dropping the longest-idle past MAX_CHATS)."""
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = WebChat(seen=self._clock())
            while len(self._chats) > MAX_CHATS:
                _, dropped = self._chats.popitem(last=False)
                dropped.publish({"type": "end"})
        else:
            chat.seen = self._clock()
            self._chats.move_to_end(chat_id)
        return chat

    def lines(self, chat_id: int, after: int = 0) -> list[Line]:
        """Return the chat's lines after message id `after` (all of them by default)."""
        chat = self._chats.get(chat_id)
        return [line for line in chat.lines if line.id > after] if chat else []

    def __len__(self) -> int:
        return len(self._chats)

    def _add(self, chat_id: int, line: Line) -> None:
        chat = self.chat(chat_id)
        chat.lines.append(line)
        del chat.lines[:-KEPT_MESSAGES]
        chat.publish(line.event())

    def person_wrote(self, chat_id: int, text: str) -> int:
        """Show what the person wrote in their chat; return its message id (quick exit deletes it)."""
        line = Line(next(self._ids), text, mine=True)
        self._add(chat_id, line)
        return line.id

    def end(self, chat_id: int) -> None:
        """Drop a chat (quick exit left the page): its lines go, and its pages are told it ended."""
        chat = self._chats.pop(chat_id, None)
        if chat is not None:
            chat.publish({"type": "end"})

    def drop_idle(self) -> int:
        """Drop chats nobody has looked at for IDLE_SECONDS; return how many."""
        cutoff = self._clock() - IDLE_SECONDS
        idle = [chat_id for chat_id, chat in self._chats.items() if chat.seen < cutoff and not chat.listeners]
        for chat_id in idle:
            self.end(chat_id)
        return len(idle)

    def listen(self, chat_id: int) -> asyncio.Queue[dict[str, Any]]:
        """Return a queue of the chat's events from now on (a page's live feed)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(LISTENER_QUEUE)
        self.chat(chat_id).listeners.add(queue)
        return queue

    def unlisten(self, chat_id: int, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop a page's live feed."""
        chat = self._chats.get(chat_id)
        if chat is not None:
            chat.listeners.discard(queue)

    # ---------------------------------------------------------------- the channel (bot/channel.py)

    async def send(self, chat_id: int, message: Say) -> list[int]:
        """Show a message in a web chat (in parts if long, the buttons under the last)."""
        if not self.owns(chat_id):
            raise UnreachableError("not a web chat")
        texts = [message.text[i : i + MAX_TEXT_CHARS] for i in range(0, len(message.text), MAX_TEXT_CHARS)]
        ids = []
        for index, text in enumerate(texts or [""]):
            line = Line(next(self._ids), text, message.buttons if index == len(texts) - 1 else ())
            self._add(chat_id, line)
            ids.append(line.id)
        return ids

    async def edit(self, chat_id: int, message_id: int, message: Say) -> None:
        """Replace a message's text and buttons."""
        chat = self._chats.get(chat_id)
        found = [i for i, line in enumerate(chat.lines) if line.id == message_id] if chat else []
        if chat is None or not found:
            raise MessageGoneError("no such message")
        chat.lines[found[0]] = line = Line(message_id, message.text, message.buttons)
        chat.publish(line.event())

    async def delete(self, chat_id: int, message_id: int) -> bool:
        """Take a message off the page."""
        await self.delete_many(chat_id, [message_id])
        return True

    async def delete_many(self, chat_id: int, message_ids: list[int]) -> None:
        """Take messages off the page."""
        chat = self._chats.get(chat_id)
        if chat is None or not message_ids:
            return
        doomed = set(message_ids)
        chat.lines = [line for line in chat.lines if line.id not in doomed]
        chat.publish({"type": "delete", "ids": sorted(doomed)})

    async def typing(self, chat_id: int) -> None:
        """Show "typing…" on the chat's pages."""
        chat = self._chats.get(chat_id)
        if chat is not None:
            chat.publish({"type": "typing"})
