"""The conversation with Rasa: each person's messages in order, retried, typing shown, and the crisis
answer at once when Rasa is slow or down.

Messages Rasa hasn't answered wait in a per-person queue and are retried with backoff (on the store's
clock); every message carries its own id, the same on every try, so a try that timed out after Rasa took
it is answered from Rasa's tracker store rather than sent again. Its share of a person: what waits for
Rasa, and the request Rasa is still thinking about (leaving cancels it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bot import privacy
from bot.channel import Say
from bot.escalation import Priority
from bot.handover import Handover
from bot.people import Person
from bot.rasa_client import BotMessage, RasaClient, RasaTimeoutError, RasaUnavailableError, recorded_reply
from bot.settings import Settings
from bot.store import DatabaseDownError, Store
from bot.talk import Talk, say
from bot.turns import Turns

logger = logging.getLogger(__name__)

MAX_PENDING_PER_PERSON = 50
# "typing…" only when an answer takes a noticeable time (Telegram's advice for sendChatAction): most
# answers come sooner, and a Bot API call for each message was a seventh of the adapter's CPU.
TYPING_AFTER_SECONDS = 0.5
TYPING_EVERY_SECONDS = 4.0
RETRY_FIRST_SECONDS = 5.0
RETRY_MAX_SECONDS = 60.0
# The payload of utter_assistant_unavailable's button: with Rasa down, the core opens the case itself.
ASK_FOR_PERSON = "/request_human"


class LeftError(Exception):
    """The person left (quick exit, forget me) while their message was with Rasa: it was cancelled."""


@dataclass
class _Turn:
    """One message for Rasa, with the id it carries on every try; `unsure` once a try timed out after
    Rasa took it (Rasa may have answered it already: its tracker store is asked before trying again)."""

    text: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    unsure: bool = False


@dataclass
class _Pending:
    """Messages Rasa hasn't answered yet, kept in order and retried with backoff."""

    chat_id: int
    generation: int
    messages: deque[_Turn] = field(default_factory=deque)
    told: bool = False
    delay: float = RETRY_FIRST_SECONDS
    next_try: float = 0.0


WARM_UP_MESSAGE = "hello"


class Conversation:
    """Each person's conversation with Rasa, and the promise of an answer in time."""

    def __init__(
        self,
        settings: Settings,
        rasa: RasaClient,
        store: Store,
        talk: Talk,
        turns: Turns,
        handover: Handover,
    ) -> None:
        self.settings = settings
        self.rasa = rasa
        self.store = store
        self.talk = talk
        self.turns = turns
        self.handover = handover
        self._pending: dict[str, _Pending] = {}
        self._asking: dict[str, asyncio.Future[list[BotMessage]]] = {}
        # The crisis numbers due to a person if nothing else reaches them first, and who got them.
        self._deadlines: dict[str, asyncio.TimerHandle] = {}
        self._late: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        talk.answered = self.answered

    # ---------------------------------------------------------------- a person's share

    def knows(self, ref: str) -> bool:
        """Return whether anything of the person's waits for Rasa here."""
        return ref in self._pending or ref in self._asking or ref in self._deadlines or ref in self._late

    def leave(self, ref: str) -> int:
        """Cancel what is with Rasa and drop what waits for it (the person left); return how many."""
        self.answered(ref)
        self._late.discard(ref)
        asking = self._asking.pop(ref, None)
        if asking is not None:
            asking.cancel()
        pending = self._pending.pop(ref, None)
        return len(pending.messages) if pending else 0

    async def forget(self, ref: str) -> None:
        """Drop whatever of the person's still waits for Rasa."""
        self.leave(ref)

    # ---------------------------------------------------------------- an answer in time

    def expect(self, person: Person) -> None:
        """A person's message arrived: within RASA_TIMEOUT_SECONDS they hear from us, the answer or, if
        anything holds it up (Rasa, the database, their earlier message), the crisis numbers.

        The timer is the loop's own, started before any of the message's work: nothing the work waits
        for delays it (and nothing on the loop blocks: database work runs off it).
        """
        if person.ref in self._deadlines:
            return  # the earlier message's promise still runs: one crisis answer covers both
        self._late.discard(person.ref)
        self._deadlines[person.ref] = asyncio.get_running_loop().call_later(
            self.settings.rasa_timeout_seconds, self._overdue, person
        )

    def answered(self, ref: str) -> None:
        """The person heard from us (or a moderator got their words): no crisis answer is due."""
        deadline = self._deadlines.pop(ref, None)
        if deadline is not None:
            deadline.cancel()

    def _overdue(self, person: Person) -> None:
        """Nothing reached the person in time: send the crisis numbers now (in the message's generation)."""
        self._deadlines.pop(person.ref, None)
        if self.turns.left(person.ref):
            return
        self._late.add(person.ref)
        logger.warning(
            "no answer within %.1f s; answered with the crisis numbers", self.settings.rasa_timeout_seconds
        )
        task = asyncio.create_task(self.talk.tell(person, say("utter_assistant_unavailable")))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def warm_up(self) -> bool:
        """Have Rasa make its first prediction now, not on a person's first message; then delete the
        throwaway conversation from its tracker store. False if Rasa could not be reached in time."""
        seconds = self.settings.rasa_warm_up_seconds
        if seconds is None:
            return True
        sender = f"warm-up-{uuid.uuid4().hex}"
        try:
            await asyncio.wait_for(self.rasa.send(sender, WARM_UP_MESSAGE, sender), seconds)
            warm = True
        except (TimeoutError, RasaUnavailableError) as exc:
            logger.warning("Rasa not warmed up (%s): its first answer may be late", type(exc).__name__)
            warm = False
        with contextlib.suppress(DatabaseDownError):  # logged by the store; the purge takes it later
            await self.store.tracker_unit(
                lambda t: privacy.forget_conversation(t, sender), "deleting the warm-up conversation"
            )
        if warm:
            logger.info("Rasa warmed up")
        return warm

    # ---------------------------------------------------------------- Rasa

    async def converse(self, person: Person, message: str) -> None:
        """Queue the message behind any the assistant hasn't answered, then try to get answers."""
        if self.turns.left(person.ref):
            return
        pending = self._pending.get(person.ref)
        if pending is None:
            pending = self._pending[person.ref] = _Pending(person.chat_id, self.turns.generation(person.ref))
        pending.chat_id = person.chat_id
        if len(pending.messages) >= MAX_PENDING_PER_PERSON:
            pending.messages.popleft()
            logger.warning("pending queue full for a person; dropped the oldest message")
        pending.messages.append(_Turn(message))
        pending.told = False  # every message the person sends gets an answer, even during an outage
        await self._flush(person.ref, pending)

    async def tell_rasa(self, ref: str, payload: str) -> bool:
        """Send Rasa a payload whose reply is not shown (quick exit, a new session); False if Rasa is down."""
        try:
            await self.rasa.send(ref, payload)
        except RasaUnavailableError:
            return False
        return True

    async def new_session(self, ref: str) -> None:
        """Start a new Rasa session, so the conversation picks up fresh (handover slots reset)."""
        if not await self.tell_rasa(ref, "/session_start"):
            logger.warning("could not start a new Rasa session after a handover")

    async def retry_pending(self) -> None:
        """Retry messages Rasa couldn't answer (a job; also runs when the person writes again)."""
        now = self.store.seconds()
        for ref, pending in list(self._pending.items()):
            if pending.next_try <= now and not self.turns.busy(ref):
                async with self.turns.lock(ref):
                    if self._pending.get(ref) is pending:
                        with self.turns.during(ref, pending.generation):
                            await self._flush(ref, pending)

    async def _flush(self, ref: str, pending: _Pending) -> None:
        """Send waiting messages to Rasa in order; on failure tell the person once and retry later."""
        while pending.messages:
            if pending.generation != self.turns.generation(ref):
                return  # they left: quick exit dropped this queue
            head = pending.messages[0]
            try:
                # A try that timed out after Rasa took the message: Rasa's recorded answer, if it has one,
                # is shown instead of sending the message again (Rasa would answer it as a new turn).
                replies = await self._recorded_answer(ref, head) if head.unsure else None
                if replies is None:
                    replies = await self._ask(ref, pending)
            except LeftError:
                return
            except RasaUnavailableError as exc:
                head.unsure = head.unsure or isinstance(exc, RasaTimeoutError)
                if any(m.text == ASK_FOR_PERSON for m in pending.messages):
                    # Asking for a person must work without Rasa: the core opens the case itself.
                    pending.messages = deque(m for m in pending.messages if m.text != ASK_FOR_PERSON)
                    person = Person(pending.chat_id, ref)
                    await self.handover.request(person, Priority.NORMAL, "assistant_unavailable")
                    await self.talk.tell(person, say("utter_handover"))
                pending.next_try = self.store.seconds() + pending.delay
                pending.delay = min(pending.delay * 2, RETRY_MAX_SECONDS)
                return
            pending.messages.popleft()
            await self._deliver(Person(pending.chat_id, ref), replies)
        self._pending.pop(ref, None)

    async def _recorded_answer(self, ref: str, turn: _Turn) -> list[BotMessage] | None:
        """Return Rasa's answer to a message as its tracker store recorded it; None if Rasa never
        recorded the message (or the store can't be read: then the message is sent again)."""
        try:
            events = await self.store.tracker_unit(
                lambda t: privacy.answer_to(t, ref, turn.id), "looking for Rasa's answer in its tracker store"
            )
        except DatabaseDownError:
            return None
        if events is None:
            return None
        logger.info(
            "Rasa had answered a message whose request timed out; its answer is shown, not asked again"
        )
        return recorded_reply(events)

    async def _ask(self, ref: str, pending: _Pending) -> list[BotMessage]:
        """Ask Rasa, showing typing; if it is slow or down, answer at once with the crisis numbers.

        Raises LeftError if the person leaves meanwhile (leaving cancels the request).
        """
        turn = pending.messages[0]
        request = asyncio.ensure_future(self.rasa.send(ref, turn.text, turn.id))
        self._asking[ref] = request
        try:
            async with self._typing(pending.chat_id):
                try:
                    return await asyncio.wait_for(asyncio.shield(request), self.settings.rasa_timeout_seconds)
                except TimeoutError:
                    logger.warning(
                        "Rasa slower than %.1f s; answered with the crisis numbers",
                        self.settings.rasa_timeout_seconds,
                    )
                    await self._tell_unavailable(ref, pending)
                except RasaUnavailableError:
                    await self._tell_unavailable(ref, pending)
                    raise
                return await request  # Rasa's own answer still comes, if it comes within its patience
        except asyncio.CancelledError:
            if request.cancelled():  # cancelled by leaving, not the work itself being cancelled
                raise LeftError from None
            raise
        finally:
            if self._asking.get(ref) is request:
                del self._asking[ref]

    async def _tell_unavailable(self, ref: str, pending: _Pending) -> None:
        if not pending.told and pending.generation == self.turns.generation(ref):
            pending.told = True
            if ref in self._late:  # the message's deadline sent the crisis numbers already
                return
            await self.talk.tell(Person(pending.chat_id, ref), say("utter_assistant_unavailable"))

    async def _deliver(self, person: Person, replies: list[BotMessage]) -> None:
        """Open or raise a case if Rasa asked for a person, then show Rasa's messages."""
        if self.turns.left(person.ref):
            return
        self.answered(person.ref)
        self._late.discard(person.ref)
        for reply in replies:
            if reply.handover is not None:
                await self.handover.request(person, reply.handover.priority, reply.handover.reason)
        sent: list[int] = []
        for reply in replies:
            if reply.text and not self.turns.left(person.ref):
                buttons = tuple((b.title, b.payload) for b in reply.buttons)
                sent += await self.talk.send(person.chat_id, Say(reply.text, buttons))
        # One write for the whole reply, not one per message; if they left while it was on its way, it
        # goes from the chat too.
        await self.talk.note_delivered(person, sent)

    @contextlib.asynccontextmanager
    async def _typing(self, chat_id: int) -> AsyncIterator[None]:
        channel = self.talk.channel
        if not channel.shows_typing:
            yield
            return

        async def keep_typing() -> None:
            await asyncio.sleep(TYPING_AFTER_SECONDS)
            while True:
                await channel.typing(chat_id)
                await asyncio.sleep(TYPING_EVERY_SECONDS)

        task = asyncio.create_task(keep_typing())
        try:
            yield
        finally:
            task.cancel()
