"""The gate: what a person sends gets in now, later, or not at all (flood control and blocks).

A person writing faster than the limit has their messages held, in order, and worked through at the
steady rate (nothing is lost); media sent past the limit is deleted in one call at the next release.
A blocked person's messages go nowhere (they get a kind answer now and then). Its share of a person:
their flood bucket, what is held of theirs, media still to delete, and when they were last told they are
blocked. A block itself outlives "forget me": it is the moderators' decision, kept in the database.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from bot import privacy
from bot.escalation import Priority
from bot.flood import FloodGuard, Verdict
from bot.handover import Handover
from bot.people import Person
from bot.store import Store
from bot.talk import Talk, say
from bot.turns import Turns

logger = logging.getLogger(__name__)

MAX_HELD_PER_PERSON = 200
TELL_BLOCKED_EVERY_SECONDS = 3600.0


class Gate:
    """Flood control and blocks, in front of everything a person sends."""

    def __init__(
        self, store: Store, talk: Talk, turns: Turns, handover: Handover, flood: FloodGuard | None = None
    ) -> None:
        self.store = store
        self.talk = talk
        self.turns = turns
        self.handover = handover
        self.flood = flood or FloodGuard()
        self._held: dict[str, deque[Callable[[], Awaitable[None]]]] = {}
        # Media sent past a person's flood bucket: (chat, message ids), deleted in one call per release.
        self._doomed: dict[str, tuple[int, list[int]]] = {}
        self._blocked: dict[str, dt.datetime] = {}
        self._told_blocked: dict[str, float] = {}

    # ---------------------------------------------------------------- a person's share

    def knows(self, ref: str) -> bool:
        """Return whether anything of the person's is held here (a block is not theirs: it stays)."""
        return ref in self._held or ref in self._doomed or ref in self._told_blocked or self.flood.knows(ref)

    def leave(self, ref: str) -> int:
        """Drop the person's held messages (they left); return how many."""
        return len(self._held.pop(ref, ()))

    def take_doomed(self, person: Person) -> list[int]:
        """Return (and stop holding) the person's media still to delete, for quick exit to delete now."""
        return self._doomed.pop(person.ref, (person.chat_id, []))[1]

    async def forget(self, ref: str) -> None:
        """Forget the person's flood bucket, held messages and media, and when they were told of a block."""
        self._held.pop(ref, None)
        self._doomed.pop(ref, None)
        self._told_blocked.pop(ref, None)
        self.flood.forget(ref)

    # ---------------------------------------------------------------- blocks

    async def arrived(self, person: Person, message_id: int | None) -> bool:
        """Note the message for quick exit; False (and a kind answer, now and then) if they are blocked.

        Waits first for the person's update before this one to have its place (`Turns.in_line`): what
        follows (flood control, their lock) takes their messages in the order they arrived.
        """
        await self.turns.in_line(person.ref)
        await self.talk.note(person, message_id)
        until = self._blocked.get(person.ref)
        if until is None or until <= self.store.now():
            return True
        self.talk.answered(person.ref)  # blocked: told now and then, never the crisis answer each time
        now = self.store.seconds()
        told = self._told_blocked.get(person.ref)
        if told is None or told <= now - TELL_BLOCKED_EVERY_SECONDS:
            self._told_blocked[person.ref] = now
            await self.talk.tell(person, say("utter_blocked"))
        logger.info("a message from a blocked person was not passed on")
        return False

    def blocked(self, ref: str, until: dt.datetime) -> None:
        """A moderator blocked the person until a time."""
        self._blocked[ref] = until

    async def tell_blocked(self, person: Person) -> None:
        """Tell a person just blocked that they are (and not again for a while)."""
        self._told_blocked[person.ref] = self.store.seconds()
        await self.talk.tell(person, say("utter_blocked"))

    def lifted(self, ref: str) -> None:
        """A block was lifted early."""
        self._blocked.pop(ref, None)
        self._told_blocked.pop(ref, None)

    async def refresh_blocks(self) -> None:
        """Load the blocks in force (at start, and with every waiting check: other instances block too)."""
        now = self.store.now()
        found = await self.store.db(
            lambda s: {b.user_ref: b.until for b in privacy.blocks_in_force(s, now)}, "loading blocks"
        )
        if found is not None:
            self._blocked = found

    # ---------------------------------------------------------------- flood control

    def admit(self, ref: str) -> Verdict:
        """Count a message against the person's flood bucket (held behind any message already held)."""
        return Verdict.HOLD if self._held.get(ref) else self.flood.admit(ref, self.store.seconds())

    def hold_media(self, person: Person, message_id: int) -> None:
        """Keep media sent past the flood bucket, to delete with the rest of the flood at the next release."""
        doomed = self._doomed.setdefault(person.ref, (person.chat_id, []))
        doomed[1].append(message_id)

    async def guarded(
        self, person: Person, work: Callable[[], Awaitable[None]], verdict: Verdict | None = None
    ) -> None:
        """Do the work now, or hold it (in order) while the person is writing faster than the limit.

        The work belongs to the person's generation now: if they leave before it is done, it stops.
        `verdict` is the flood guard's, if the message was counted already.
        """
        work = self.turns.bind(person.ref, work)
        verdict = verdict or self.admit(person.ref)
        if verdict is Verdict.GO:
            await work()
            return
        held = self._held.setdefault(person.ref, deque())
        if len(held) >= MAX_HELD_PER_PERSON:
            logger.warning("flood: held messages full for a person; told them to send it again later")
            await self.talk.tell(person, say("utter_flood_full"))
            return
        held.append(work)
        self.turns.placed()  # held in order: the next update may go
        self.talk.answered(person.ref)  # held: answered in turn at the steady rate (told to slow down once)
        if verdict is Verdict.HOLD:
            return
        logger.warning("flood: a person is writing faster than the limit; holding their messages")
        await self.talk.tell(person, say("utter_flood_slow_down"))
        if verdict is Verdict.ALERT:
            logger.warning("flood: repeated flooding; asking moderators to look")
            await self.handover.request(person, Priority.NORMAL, "flooding")

    async def release_held(self) -> None:
        """Delete media sent in a flood, then work through held messages at the steady rate (a job, every
        few seconds)."""
        for ref in list(self._doomed):
            chat_id, ids = self._doomed.pop(ref)
            await self.talk.channel.delete_many(chat_id, ids)
        for ref, held in list(self._held.items()):
            # Leaving drops the person's held messages, also while this loop is working through them.
            while held and self._held.get(ref) is held and self.flood.take(ref, self.store.seconds()):
                await held.popleft()()
            if not held and self._held.get(ref) is held:
                del self._held[ref]
