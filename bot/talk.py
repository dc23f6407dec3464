"""Speaking to people through the channel: nothing from before they left, and every message noted for
quick exit (its id only, bot/privacy.py's trail)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot import privacy
from bot.channel import Channel, Say, UnreachableError
from bot.people import Person
from bot.responses import response_buttons, response_text
from bot.store import Store
from bot.turns import Turns

logger = logging.getLogger(__name__)


def say(name: str, extra: tuple[tuple[str, str], ...] = (), **fields: object) -> Say:
    """Return a response from domain.yml (its {fields} filled in), its own buttons first, then ours."""
    text = response_text(name)
    return Say(text.format(**fields) if fields else text, response_buttons(name) + extra)


class Talk:
    """Sends to people and moderators' private chats, and notes what a person's chat holds."""

    def __init__(self, channel: Channel, store: Store, turns: Turns) -> None:
        self.channel = channel
        self.store = store
        self.turns = turns
        # Told of each person who heard from us (or whose words reached a moderator): the conversation
        # stops waiting to send them the crisis numbers (Conversation.expect).
        self.answered: Callable[[str], None] = lambda ref: None

    async def send(self, chat_id: int, message: Say) -> list[int]:
        """Send a message; return its parts' ids (none if the chat can't be reached)."""
        try:
            return await self.channel.send(chat_id, message)
        except UnreachableError:
            logger.info("a chat could not be reached")
            return []

    async def tell(self, person: Person, message: Say) -> None:
        """Send a message to a person, and note its ids so quick exit can delete it.

        Work from before the person left sends nothing (and what was on its way is deleted again).
        """
        if self.turns.left(person.ref):
            return
        sent = await self.send(person.chat_id, message)
        self.answered(person.ref)
        await self.note_delivered(person, sent)

    async def note_delivered(self, person: Person, sent: list[int]) -> None:
        """Note what work of the person's just sent them; if they left meanwhile, delete it instead.

        They may leave while it is noted (the database is off the loop): quick exit may then have read
        the trail before the note, so the work deletes what it sent itself.
        """
        if not self.turns.left(person.ref):
            await self.note_sent(person, sent)
        if self.turns.left(person.ref):
            await self.channel.delete_many(person.chat_id, sent)

    async def note(self, person: Person, message_id: int | None) -> None:
        """Note a message the person sent (if it is still in the chat), so quick exit can delete it."""
        if message_id is not None:
            await self.note_sent(person, [message_id])

    async def note_sent(self, person: Person, message_ids: list[int]) -> None:
        """Note messages in the person's chat (also ones sent outside the core) for quick exit."""
        if message_ids:
            now = self.store.now()
            await self.store.db(
                lambda s: privacy.record_trail(s, person.ref, message_ids, now), "noting a message"
            )
