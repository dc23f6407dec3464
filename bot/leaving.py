"""Leaving: quick exit and "forget me". Neither ever waits for Rasa.

Quick exit clears what the bot can of the person's chat and leaves a neutral message. "Forget me" does
that too, then deletes their cases and their Rasa conversation, and has every part of the core forget
them (`PersonalState.forget`). Its own share of a person: the ids of the "you are forgotten" answer, in
memory only (no row refers to the person afterwards), so that a later quick exit deletes it too.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

from bot import cards, privacy
from bot.conversation import Conversation
from bot.escalation import Sender
from bot.gate import Gate
from bot.handover import Handover
from bot.people import Person
from bot.store import DatabaseDownError, Store
from bot.talk import Talk, say
from bot.turns import Turns

logger = logging.getLogger(__name__)

REMEMBERED_PEOPLE = 10_000


class PersonalState(Protocol):
    """A part of the core that keeps something of a person's, and its share of forgetting them."""

    def knows(self, ref: str) -> bool:
        """Return whether anything of the person's is held by this part."""
        ...

    async def forget(self, ref: str) -> None:
        """Forget everything of the person's this part holds."""
        ...


class Leaving:
    """Quick exit and "forget me"."""

    def __init__(
        self,
        store: Store,
        talk: Talk,
        turns: Turns,
        conversation: Conversation,
        gate: Gate,
        handover: Handover,
        parts: Sequence[PersonalState],
    ) -> None:
        self.store = store
        self.talk = talk
        self.turns = turns
        self.conversation = conversation
        self.gate = gate
        self.handover = handover
        self.parts = parts
        # The "you are forgotten" answer per person: (when, message ids), in memory only.
        self._forget_answers: OrderedDict[str, tuple[float, list[int]]] = OrderedDict()
        self._resets: set[asyncio.Task[None]] = set()  # Rasa told of a quick exit, in the background

    def _leave(self, ref: str) -> int:
        """Start the person's next generation: cancel what is with Rasa, drop what is pending or held.

        Returns how many messages were dropped. Never waits: not for Rasa, not for the person's lock.
        """
        self.turns.leave(ref)
        return self.conversation.leave(ref) + self.gate.leave(ref)

    async def quick_exit(self, person: Person, message_id: int | None) -> None:
        """`/exit` or the Leave quickly button: clear the chat, leave a neutral message, reset Rasa.

        It never waits for Rasa: what was with Rasa, pending or held is dropped first, without the lock,
        and Rasa's reset goes in the background (`_reset_rasa`).
        """
        dropped = self._leave(person.ref)
        self.turns.placed()  # leaving never waits its turn: what the person sends next may go
        await self._clear_chat(person, [message_id] if message_id is not None else [], dropped)
        task = self.turns.background(person.ref, lambda: self._reset_rasa(person.ref))
        self._resets.add(task)
        task.add_done_callback(self._resets.discard)

    async def resets_sent(self) -> None:
        """Wait until every reset on its way to Rasa is done (tests; a shutdown may drop them)."""
        if self._resets:
            await asyncio.wait(set(self._resets))

    async def _reset_rasa(self, ref: str) -> None:
        """Tell Rasa the person left (it restarts their conversation, unseen), in the exit's generation.

        Runs after the exit's handler is done, so a slow Rasa holds up nothing; it takes the person's
        turn, so a message they write next reaches Rasa after the reset. A failure is logged by its kind.
        """
        try:
            async with self.turns.lock(ref):
                if self.turns.left(ref):
                    return  # they left again meanwhile: that exit resets Rasa itself
                if not await self.conversation.tell_rasa(ref, "/quick_exit"):
                    logger.info("quick exit: Rasa not told (unavailable); the chat was still cleared")
        except Exception as exc:  # a background task: nobody else would see it fail
            logger.error("quick exit: telling Rasa failed: %s", type(exc).__name__)

    async def _delete_trail(self, person: Person, also: list[int]) -> int:
        """Delete the person's recorded messages, media still to delete and any others given from their
        chat; return how many."""
        now = self.store.now()
        doomed = self.gate.take_doomed(person)
        answered, forget_answer = self._forget_answers.pop(person.ref, (0.0, []))
        if answered < self.store.seconds() - privacy.TRAIL_KEEP.total_seconds():
            forget_answer = []  # too old to delete
        trail = await self.store.db(lambda s: privacy.trail(s, person.ref, now), "reading the trail") or []
        ids = sorted({*trail, *doomed, *forget_answer, *also})
        await self.talk.channel.delete_many(person.chat_id, ids)
        return len(ids)

    async def _clear_chat(self, person: Person, also: list[int], dropped: int) -> None:
        """Delete what the bot can of the person's chat, and leave only a neutral message."""
        deleted = await self._delete_trail(person, also)
        await self.store.db(lambda s: privacy.clear_trail(s, person.ref), "clearing the trail")
        logger.info("quick exit: cleared %d messages from a chat (%d unanswered dropped)", deleted, dropped)
        await self.talk.tell(person, say("utter_quick_exit"))
        await self.handover.to_case(person, cards.QUICK_EXIT_NOTICE, sender=Sender.SYSTEM)

    async def forget(self, person: Person, pressed: int | None = None) -> None:
        """Forget me (confirmed under message `pressed`): clear the chat, delete their cases and Rasa
        conversation, say what went.

        What was with Rasa, pending or held is dropped first; the lock is then free at once (never
        waiting for Rasa), and taken so that no earlier message of theirs writes to the database meanwhile.
        """
        self._leave(person.ref)
        async with self.turns.lock(person.ref):
            case = await self.handover.open_case(person)
            await self._delete_trail(person, [pressed] if pressed is not None else [])
            try:
                relayed, ours = await self.store.unit(
                    lambda s: (privacy.relayed_messages(s, person.ref), privacy.forget_cases(s, person.ref)),
                    "forget me",
                )
                theirs = await self.store.tracker_unit(
                    lambda t: privacy.forget_conversation(t, person.ref), "forget me"
                )
            except DatabaseDownError:
                await self.talk.tell(person, say("utter_forget_failed"))
                return
            for part in self.parts:
                await part.forget(person.ref)
            logger.info("forget me: deleted %d cases and a Rasa conversation", ours.cases)
            for chat_id in {chat for chat, _ in relayed}:  # their words, from moderators' chats too
                await self.talk.channel.delete_many(chat_id, [m for chat, m in relayed if chat == chat_id])
            if case is not None:
                await self.handover.case_forgotten(case)
            done = await self.talk.send(
                person.chat_id, say("utter_forget_done", said=theirs.said, cases=ours.cases)
            )
            self._remember_forget_answer(person.ref, done)

    def forget_answer(self, ref: str) -> list[int]:
        """Return the ids of the "you are forgotten" answer kept for the person (none if none)."""
        return self._forget_answers.get(ref, (0.0, []))[1]

    def _remember_forget_answer(self, ref: str, message_ids: list[int]) -> None:
        """Keep the ids of the "forgotten" answer in memory only (no row refers to the person after
        /forget), so that a later quick exit deletes it too: it says they asked to be forgotten."""
        self._forget_answers.pop(ref, None)
        self._forget_answers[ref] = (self.store.seconds(), message_ids)
        while len(self._forget_answers) > REMEMBERED_PEOPLE:
            self._forget_answers.popitem(last=False)
