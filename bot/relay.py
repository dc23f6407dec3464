"""The relay: a person's messages go to Rasa, or to the moderator holding their case; handover runs here.

One instance per adapter process. It speaks through a `Channel` (bot/channel.py: Telegram, or the
terminal in local mode), so the same code runs both.
Per person, messages are handled one at a time and in order.
Nothing here logs what anyone wrote (DESIGN.md, non-negotiable 3). Privacy runs here too: quick exit,
"forget me", flood control, blocks and the moderators' audit trail (bot/privacy.py holds the queries).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import itertools
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from actions.db import sessionmaker_for
from bot import cards, cases, privacy
from bot.board import FIRST, CardBoard
from bot.channel import Channel, Say, UnreachableError
from bot.crypto import Cipher
from bot.escalation import (
    CaseState,
    HolderGone,
    Move,
    NotHolderError,
    Priority,
    Sender,
    TargetError,
    TransitionError,
    feedback_button,
    holder_gone,
    is_moderator,
    parse_case_button,
    parse_feedback_button,
    pick_case,
)
from bot.flood import FloodGuard, Verdict
from bot.models import UserBlock
from bot.rasa_client import BotMessage, RasaClient, RasaTimeoutError, RasaUnavailableError, recorded_reply
from bot.responses import button_payloads, response_buttons, response_text
from bot.settings import Settings
from bot.text import MAX_TEXT_CHARS, clean_text  # noqa: F401 - MAX_TEXT_CHARS: the limit callers read here

logger = logging.getLogger(__name__)

MAX_PENDING_PER_PERSON = 50
REMEMBERED_PEOPLE = 10_000
# "typing…" only when an answer takes a noticeable time (Telegram's advice for sendChatAction): most
# answers come sooner, and a Bot API call for each message was a seventh of the adapter's CPU.
TYPING_AFTER_SECONDS = 0.5
TYPING_EVERY_SECONDS = 4.0
RETRY_FIRST_SECONDS = 5.0
RETRY_MAX_SECONDS = 60.0
MAX_HELD_PER_PERSON = 200
TELL_BLOCKED_EVERY_SECONDS = 3600.0
ALERT_WAIT_SECONDS = 2.0  # how long a handover waits for moderators' private alerts before carrying on
# Commands a person may type that mean something to Rasa.
COMMANDS = {"/start": "/greet", "/help": "/ask_helplines"}
# The payload of utter_assistant_unavailable's button: with Rasa down, the relay opens the case itself.
ASK_FOR_PERSON = "/request_human"
LABEL = "utter_moderator_label"
# Quick exit and "forget me" are the adapter's own, so they work in every state, Rasa up or down.
QUICK_EXIT = {"/exit", "/quick_exit"}
FORGET = "/forget"
FORGET_YES, FORGET_NO = "forget:yes", "forget:no"

_T = TypeVar("_T")


class LeftError(Exception):
    """The person left (quick exit, forget me) while their message was with Rasa: it was cancelled."""


# The person and their generation that the running work belongs to: what a person sent before they left
# (quick exit, forget me) belongs to an older generation, and nothing of it may reach their chat after.
_TURN: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar("turn", default=None)


@dataclass(frozen=True)
class Person:
    """Someone talking to the bot: where to answer, and their pseudonym (all Rasa and the database see)."""

    chat_id: int
    ref: str


@dataclass(frozen=True)
class Moderator:
    """A Telegram user acting as a moderator (allowlist checked by the relay)."""

    user_id: int
    name: str


@dataclass(frozen=True)
class Quoted:
    """The message a moderator replied to: its id, and the case a relayed line of ours names (#n ›)."""

    message_id: int
    case_number: int | None = None


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


@dataclass(frozen=True)
class _Unsaved:
    """A handover the database couldn't save; moderators have a card already, the case comes later."""

    person: Person
    priority: Priority
    reason: str


@dataclass(frozen=True)
class _Due:
    """What a waiting check found: people to tell, queued and claimed cases to remind about, cardless ones."""

    told: list[cases.CaseView]
    reminders: list[cases.CaseView]
    idle: list[tuple[cases.CaseView, dt.datetime]]
    cardless: list[cases.CaseView]


_generations = itertools.count(1)


def _next_generation() -> int:
    """Return a generation number never used before in this process."""
    return next(_generations)


def _unsaved_note(ref: str) -> tuple[str, str]:
    """Return the board's key for a person's NOT SAVED card."""
    return ("unsaved", ref)


def utcnow() -> dt.datetime:
    """Return the time now, in UTC."""
    return dt.datetime.now(dt.timezone.utc)


def _say(name: str, extra: tuple[tuple[str, str], ...] = (), **fields: object) -> Say:
    """Return a response from domain.yml (its {fields} filled in), its own buttons first, then ours."""
    text = response_text(name)
    return Say(text.format(**fields) if fields else text, response_buttons(name) + extra)


def command_of(text: str) -> str | None:
    """Return the /command a message starts with (lower case, without @botname), if it is one."""
    if not text.startswith("/"):
        return None
    return text.split(maxsplit=1)[0].split("@")[0].lower()


def to_rasa(text: str) -> str:
    """Return what Rasa is sent for typed text: our commands mapped, an unknown /word read as words."""
    command = command_of(text)
    if command is None:
        return text
    if command in COMMANDS:
        return COMMANDS[command]
    return text if text in button_payloads() else text.lstrip("/")


class Relay:
    """Carries each person's conversation to Rasa or to a moderator, and runs the handover."""

    def __init__(
        self,
        settings: Settings,
        rasa: RasaClient,
        outbox: Channel,
        sessions: sessionmaker[Session],
        clock: Callable[[], dt.datetime] = utcnow,
        trackers: sessionmaker[Session] | None = None,
        flood: FloodGuard | None = None,
    ) -> None:
        self.settings = settings
        self.rasa = rasa
        self.outbox = outbox
        self.sessions = sessions
        self.trackers = trackers or sessionmaker_for(settings.tracker_store_url)
        self.clock = clock
        self.cipher = Cipher(settings.transcript_keys)
        self.flood = flood or FloodGuard()
        self._locks: dict[str, asyncio.Lock] = {}
        self._recent: OrderedDict[str, deque[str]] = OrderedDict()
        self._pending: dict[str, _Pending] = {}
        self._unsaved: dict[str, _Unsaved] = {}
        self._held: dict[str, deque[Callable[[], Awaitable[None]]]] = {}
        # Media sent past a person's flood bucket: (chat, message ids), deleted in one call per release.
        self._doomed: dict[str, tuple[int, list[int]]] = {}
        # The "you are forgotten" answer per person: (when, message ids), in memory only.
        self._forget_answers: OrderedDict[str, tuple[float, list[int]]] = OrderedDict()
        # Per person, how often they have left (quick exit, forget me); work from before is dropped.
        self._generations: OrderedDict[str, int] = OrderedDict()
        self._asking: dict[str, asyncio.Future[list[BotMessage]]] = {}
        self._blocked: dict[str, dt.datetime] = {}
        self._told_blocked: dict[str, float] = {}
        # Moderators whose private chat refused a message: the cases they hold go back to the queue.
        self._unreachable: set[int] = set()
        self._alerts: set[asyncio.Task[None]] = set()  # urgent alerts on their way to moderators
        # Every write into the moderators' group goes through the board: paced, coalesced, never lost.
        self.board = CardBoard(
            outbox, settings.moderator_chat_id, sessions, self.cipher, clock, settings.telegram_rate_limit
        )

    # ---------------------------------------------------------------- updates

    def first_delivery(self, bot_id: int, update_id: int) -> bool:
        """False if this bot's update was taken before, by any instance: Telegram sent it again."""
        now = self.clock()
        try:
            with self.sessions.begin() as session:
                privacy.note_update(session, bot_id, update_id, now)
        except IntegrityError:
            logger.info("update %d came again; it was handled already", update_id)
            return False
        except SQLAlchemyError as exc:  # never lose a message for want of this check
            logger.error("database unavailable: %s; update handled unchecked", type(exc).__name__)
        return True

    # ---------------------------------------------------------------- people

    async def user_text(self, person: Person, text: str, message_id: int | None = None) -> None:
        """A person wrote: quick exit and "forget me" first; then their case's moderator, or Rasa."""
        text = clean_text(text)
        command = command_of(text)
        if command in QUICK_EXIT:
            await self.quick_exit(person, message_id)
            return
        if command == FORGET:  # asked even of a blocked person: being forgotten is always their right
            self._note(person, message_id)
            await self._tell(person, _say("utter_ask_forget"))
            return
        if not await self._arrived(person, message_id):
            return
        await self._guarded(person, lambda: self._user_text(person, text))

    async def _user_text(self, person: Person, text: str) -> None:
        if not text:
            await self._tell(person, _say("utter_unsupported_message"))
            return
        async with self._lock(person.ref):
            if self._left():
                return
            if await self._to_case(person, text, sender=Sender.USER):
                return
            self._remember(person.ref, text)
            await self._converse(person, to_rasa(text))

    async def user_button(
        self, person: Person, data: str, title: str | None, message_id: int | None = None
    ) -> None:
        """A person pressed one of our buttons (under message `message_id`): quick exit, forget, a rating,
        or a Rasa payload (checked)."""
        if data in QUICK_EXIT:
            await self.quick_exit(person, message_id)
            return
        if data == FORGET_YES:
            await self.forget(person, message_id)
            return
        if data == FORGET_NO:
            await self._tell(person, _say("utter_forget_cancelled"))
            return
        if not await self._arrived(person, None):
            return
        await self._guarded(person, lambda: self._user_button(person, data, title))

    async def _user_button(self, person: Person, data: str, title: str | None) -> None:
        rating = parse_feedback_button(data)
        if rating is not None:
            saved = self._db(lambda s: cases.set_feedback(s, rating[0], person.ref, rating[1]))
            await self._tell(person, _say("utter_feedback_thanks" if saved else "utter_button_expired"))
            return
        if data not in button_payloads():
            logger.info("ignored a button press with unexpected data (%d characters)", len(data))
            await self._tell(person, _say("utter_button_expired"))
            return
        async with self._lock(person.ref):
            if self._left():
                return
            case = self._open_case(person)
            if case is not None and case.state is CaseState.CLAIMED:
                await self._to_moderator(
                    case, f"[pressed the button \u201c{title or data}\u201d]", Sender.SYSTEM
                )
                return
            await self._converse(person, data)

    async def user_media(self, person: Person, kind: str, message_id: int, caption: str | None) -> None:
        """A person sent media: delete it unopened, explain why, tell a moderator only that it happened.

        Media counts against the person's flood bucket like any message. Within it, the media is deleted
        at once; past it, with the rest of their flood in one call at the next release (a few seconds),
        so a flood of stickers costs Telegram one call, not one each.
        """
        verdict = self._admit(person.ref)
        if verdict is Verdict.HOLD:
            doomed = self._doomed.setdefault(person.ref, (person.chat_id, []))
            doomed[1].append(message_id)
            deleted = True
        else:
            deleted = self.outbox.can_delete and await self.outbox.delete(person.chat_id, message_id)
        logger.info("deleted=%s media of kind %s from a person", deleted, kind)
        if not await self._arrived(person, None if deleted else message_id):
            return

        async def explain() -> None:
            await self._tell(person, _say("utter_media_deleted" if deleted else "utter_media_not_deleted"))
            await self._notice(person, cards.media_notice(kind, deleted))
            if caption:
                await self._user_text(person, clean_text(caption))

        await self._guarded(person, explain, verdict)

    async def user_personal(self, person: Person, kind: str, message_id: int) -> None:
        """A person shared a location or contact: remove it from the chat and say so."""
        deleted = self.outbox.can_delete and await self.outbox.delete(person.chat_id, message_id)
        if not await self._arrived(person, None if deleted else message_id):
            return

        async def explain() -> None:
            await self._tell(person, _say("utter_personal_details_removed"))
            await self._notice(person, cards.media_notice(kind, deleted))

        await self._guarded(person, explain)

    async def user_unsupported(self, person: Person, kind: str, message_id: int | None = None) -> None:
        """A person sent something that isn't text (a poll, dice, …): ask them to write instead."""
        if not await self._arrived(person, message_id):
            return

        async def explain() -> None:
            await self._tell(person, _say("utter_unsupported_message"))
            await self._notice(person, cards.unsupported_notice(kind))

        await self._guarded(person, explain)

    async def user_edited(self, person: Person, text: str) -> None:
        """A person edited a message: the moderator sees the new text; the bot asks them to resend."""
        if not await self._arrived(person, None):
            return
        await self._guarded(person, lambda: self._user_edited(person, clean_text(text)))

    async def _user_edited(self, person: Person, text: str) -> None:
        async with self._lock(person.ref):
            if self._left():
                return
            case = self._open_case(person)
            if case is not None and case.state is CaseState.CLAIMED and text:
                await self._to_moderator(case, f"[edited] {text}", sender=Sender.USER)
                return
        await self._tell(person, _say("utter_edited_message"))

    async def _notice(self, person: Person, notice: str) -> None:
        """Put a note of something we didn't relay into the case, and in the moderator's chat if claimed."""
        async with self._lock(person.ref):
            await self._to_case(person, notice, sender=Sender.SYSTEM)

    async def _to_case(self, person: Person, text: str, sender: Sender) -> bool:
        """Add a line to the person's open case; True if a moderator holds it (and so got the line)."""
        case = self._open_case(person)
        if case is None:
            return False
        if case.state is CaseState.CLAIMED:
            # Kept in the case either way; if it went back to the queue, the person was told so.
            await self._to_moderator(case, text, sender)
            return True
        self._transcribe(case.number, sender, text)
        return False

    # ---------------------------------------------------------------- privacy

    def _note(self, person: Person, message_id: int | None) -> None:
        """Note a message the person sent (if it is still in the chat), so quick exit can delete it."""
        if message_id is not None:
            self._record_trail(person.ref, [message_id])

    async def _arrived(self, person: Person, message_id: int | None) -> bool:
        """Note the message for quick exit; False (and a kind answer, now and then) if they are blocked."""
        self._note(person, message_id)
        until = self._blocked.get(person.ref)
        if until is None or until <= self.clock():
            return True
        now = self._seconds()
        told = self._told_blocked.get(person.ref)
        if told is None or told <= now - TELL_BLOCKED_EVERY_SECONDS:
            self._told_blocked[person.ref] = now
            await self._tell(person, _say("utter_blocked"))
        logger.info("a message from a blocked person was not passed on")
        return False

    def _admit(self, ref: str) -> Verdict:
        """Count a message against the person's flood bucket (held behind any message already held)."""
        return Verdict.HOLD if self._held.get(ref) else self.flood.admit(ref, self._seconds())

    async def _guarded(
        self, person: Person, work: Callable[[], Awaitable[None]], verdict: Verdict | None = None
    ) -> None:
        """Do the work now, or hold it (in order) while the person is writing faster than the limit.

        The work belongs to the person's generation now: if they leave before it is done, it stops.
        `verdict` is the flood guard's, if the message was counted already.
        """
        work = self._in_turn(person.ref, work)
        verdict = verdict or self._admit(person.ref)
        if verdict is Verdict.GO:
            await work()
            return
        held = self._held.setdefault(person.ref, deque())
        if len(held) >= MAX_HELD_PER_PERSON:
            logger.warning("flood: held messages full for a person; told them to send it again later")
            await self._tell(person, _say("utter_flood_full"))
            return
        held.append(work)
        if verdict is Verdict.HOLD:
            return
        logger.warning("flood: a person is writing faster than the limit; holding their messages")
        await self._tell(person, _say("utter_flood_slow_down"))
        if verdict is Verdict.ALERT:
            logger.warning("flood: repeated flooding; asking moderators to look")
            await self.request_handover(person, Priority.NORMAL, "flooding")

    async def release_held(self) -> None:
        """Delete media sent in a flood, then work through held messages at the steady rate (a job, every
        few seconds)."""
        for ref in list(self._doomed):
            chat_id, ids = self._doomed.pop(ref)
            await self.outbox.delete_many(chat_id, ids)
        for ref, held in list(self._held.items()):
            # Leaving drops the person's held messages, also while this loop is working through them.
            while held and self._held.get(ref) is held and self.flood.take(ref, self._seconds()):
                await held.popleft()()
            if not held and self._held.get(ref) is held:
                del self._held[ref]

    # ---------------------------------------------------------------- generations

    def _generation(self, ref: str) -> int:
        """Return how many times the person has left (0 if never, or long ago)."""
        return self._generations.get(ref, 0)

    def _in_turn(self, ref: str, work: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """Return the work bound to the person's generation now: skipped if they have left meanwhile."""
        turn = (ref, self._generation(ref))

        async def run() -> None:
            token = _TURN.set(turn)
            try:
                if not self._left():
                    await work()
            finally:
                _TURN.reset(token)

        return run

    def _left(self, ref: str | None = None) -> bool:
        """Return True if the running work belongs to a person who has left since it began."""
        turn = _TURN.get()
        return turn is not None and (ref is None or turn[0] == ref) and turn[1] != self._generation(turn[0])

    def _leave(self, ref: str) -> int:
        """Start the person's next generation: cancel what is with Rasa, drop what is pending or held.

        Returns how many messages were dropped. Never waits: not for Rasa, not for the person's lock.
        """
        self._generations.pop(ref, None)
        self._generations[ref] = _next_generation()
        while len(self._generations) > REMEMBERED_PEOPLE:
            self._generations.popitem(last=False)
        asking = self._asking.pop(ref, None)
        if asking is not None:
            asking.cancel()
        pending = self._pending.pop(ref, None)
        return len(self._held.pop(ref, ())) + (len(pending.messages) if pending else 0)

    async def quick_exit(self, person: Person, message_id: int | None) -> None:
        """`/exit` or the Leave quickly button: clear the chat, leave a neutral message, reset Rasa.

        It never waits for Rasa: what was with Rasa, pending or held is dropped first, without the lock.
        """
        dropped = self._leave(person.ref)
        await self._clear_chat(person, [message_id] if message_id is not None else [], dropped)
        try:
            await self.rasa.send(person.ref, "/quick_exit")  # Rasa restarts; its reply is not shown
        except RasaUnavailableError:
            logger.info("quick exit: Rasa not told (unavailable); the chat was still cleared")

    async def _delete_trail(self, person: Person, also: list[int]) -> int:
        """Delete the person's recorded messages, media still to delete and any others given from their
        chat; return how many."""
        now = self.clock()
        doomed = self._doomed.pop(person.ref, (person.chat_id, []))[1]
        answered, forget_answer = self._forget_answers.pop(person.ref, (0.0, []))
        if answered < self._seconds() - privacy.TRAIL_KEEP.total_seconds():
            forget_answer = []  # too old for Telegram to delete
        trail = self._db(lambda s: privacy.trail(s, person.ref, now)) or []
        ids = sorted({*trail, *doomed, *forget_answer, *also})
        await self.outbox.delete_many(person.chat_id, ids)
        return len(ids)

    async def _clear_chat(self, person: Person, also: list[int], dropped: int) -> None:
        """Delete what the bot can of the person's chat, and leave only a neutral message."""
        deleted = await self._delete_trail(person, also)
        self._db(lambda s: privacy.clear_trail(s, person.ref))
        logger.info("quick exit: cleared %d messages from a chat (%d unanswered dropped)", deleted, dropped)
        await self._tell(person, _say("utter_quick_exit"))
        await self._to_case(person, cards.QUICK_EXIT_NOTICE, sender=Sender.SYSTEM)

    async def forget(self, person: Person, pressed: int | None = None) -> None:
        """Forget me (confirmed under message `pressed`): clear the chat, delete their cases and Rasa
        conversation, say what went.

        What was with Rasa, pending or held is dropped first; the lock is then free at once (never
        waiting for Rasa), and taken so that no earlier message of theirs writes to the database meanwhile.
        Its answer's id is kept in memory only, so that a later quick exit deletes it too.
        """
        self._leave(person.ref)
        async with self._lock(person.ref):
            case = self._open_case(person)
            await self._delete_trail(person, [pressed] if pressed is not None else [])
            try:
                with self.sessions.begin() as session:
                    relayed = privacy.relayed_messages(session, person.ref)
                    ours = privacy.forget_cases(session, person.ref)
                with self.trackers.begin() as tracker:
                    theirs = privacy.forget_conversation(tracker, person.ref)
            except SQLAlchemyError as exc:
                logger.error("forget me failed: %s", type(exc).__name__)
                await self._tell(person, _say("utter_forget_failed"))
                return
            self._recent.pop(person.ref, None)
            self._pending.pop(person.ref, None)
            self._held.pop(person.ref, None)
            if self._unsaved.pop(person.ref, None) is not None:
                self.board.retract_notice(_unsaved_note(person.ref), cards.unsaved_forgotten(), FIRST)
                await self.board.flush()
            self._told_blocked.pop(person.ref, None)
            self.flood.forget(person.ref)
            logger.info("forget me: deleted %d cases and a Rasa conversation", ours.cases)
            for chat_id in {chat for chat, _ in relayed}:  # their words, from moderators' chats too
                await self.outbox.delete_many(chat_id, [m for chat, m in relayed if chat == chat_id])
            if case is not None:
                await self._case_forgotten(case)
            done = await self._send(
                person.chat_id, _say("utter_forget_done", said=theirs.said, cases=ours.cases)
            )
            self._remember_forget_answer(person.ref, done)

    def _remember_forget_answer(self, ref: str, message_ids: list[int]) -> None:
        """Keep the ids of the "forgotten" answer in memory only (no row refers to the person after
        /forget), so that a later quick exit deletes it too: it says they asked to be forgotten."""
        self._forget_answers.pop(ref, None)
        self._forget_answers[ref] = (self._seconds(), message_ids)
        while len(self._forget_answers) > REMEMBERED_PEOPLE:
            self._forget_answers.popitem(last=False)

    async def _case_forgotten(self, case: cases.CaseView) -> None:
        """Tell moderators a case is gone because the person asked to be forgotten."""
        notice = cards.forgotten(case.number)
        if case.card_chat_id is not None and case.card_message_id is not None:
            self.board.owe_edit(case.card_chat_id, case.card_message_id, notice, FIRST)
            await self.board.flush()
        if case.claimed_by is not None:
            await self._send(case.claimed_by, notice)

    # ---------------------------------------------------------------- Rasa

    async def _converse(self, person: Person, message: str) -> None:
        """Queue the message behind any the assistant hasn't answered, then try to get answers."""
        if self._left(person.ref):
            return
        pending = self._pending.get(person.ref)
        if pending is None:
            pending = self._pending[person.ref] = _Pending(person.chat_id, self._generation(person.ref))
        pending.chat_id = person.chat_id
        if len(pending.messages) >= MAX_PENDING_PER_PERSON:
            pending.messages.popleft()
            logger.warning("pending queue full for a person; dropped the oldest message")
        pending.messages.append(_Turn(message))
        pending.told = False  # every message the person sends gets an answer, even during an outage
        await self._flush(person.ref, pending)

    async def _flush(self, ref: str, pending: _Pending) -> None:
        """Send waiting messages to Rasa in order; on failure tell the person once and retry later."""
        while pending.messages:
            if pending.generation != self._generation(ref):
                return  # they left: quick exit dropped this queue
            head = pending.messages[0]
            try:
                # A try that timed out after Rasa took the message: Rasa's recorded answer, if it has one,
                # is shown instead of sending the message again (Rasa would answer it as a new turn).
                replies = self._recorded_answer(ref, head) if head.unsure else None
                if replies is None:
                    replies = await self._ask(ref, pending)
            except LeftError:
                return
            except RasaUnavailableError as exc:
                head.unsure = head.unsure or isinstance(exc, RasaTimeoutError)
                if any(m.text == ASK_FOR_PERSON for m in pending.messages):
                    # Asking for a person must work without Rasa: the relay opens the case itself.
                    pending.messages = deque(m for m in pending.messages if m.text != ASK_FOR_PERSON)
                    person = Person(pending.chat_id, ref)
                    await self.request_handover(person, Priority.NORMAL, "assistant_unavailable")
                    await self._tell(person, _say("utter_handover"))
                pending.next_try = time.monotonic() + pending.delay
                pending.delay = min(pending.delay * 2, RETRY_MAX_SECONDS)
                return
            pending.messages.popleft()
            await self._deliver(Person(pending.chat_id, ref), replies)
        self._pending.pop(ref, None)

    def _recorded_answer(self, ref: str, turn: _Turn) -> list[BotMessage] | None:
        """Return Rasa's answer to a message as its tracker store recorded it; None if Rasa never
        recorded the message (or the store can't be read: then the message is sent again)."""
        try:
            with self.trackers.begin() as tracker:
                events = privacy.answer_to(tracker, ref, turn.id)
        except SQLAlchemyError as exc:
            logger.error("could not look for Rasa's answer in its tracker store: %s", type(exc).__name__)
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
                except asyncio.TimeoutError:
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
        if not pending.told and pending.generation == self._generation(ref):
            pending.told = True
            await self._tell(Person(pending.chat_id, ref), _say("utter_assistant_unavailable"))

    async def retry_pending(self) -> None:
        """Retry messages Rasa couldn't answer (a job; also runs when the person writes again)."""
        now = time.monotonic()
        for ref, pending in list(self._pending.items()):
            lock = self._lock(ref)
            if pending.next_try <= now and not lock.locked():
                async with lock:
                    if self._pending.get(ref) is pending:
                        token = _TURN.set((ref, pending.generation))
                        try:
                            await self._flush(ref, pending)
                        finally:
                            _TURN.reset(token)

    async def _deliver(self, person: Person, replies: list[BotMessage]) -> None:
        """Open or raise a case if Rasa asked for a person, then show Rasa's messages."""
        if self._left(person.ref):
            return
        for reply in replies:
            if reply.handover is not None:
                await self.request_handover(person, reply.handover.priority, reply.handover.reason)
        sent: list[int] = []
        for reply in replies:
            if reply.text and not self._left(person.ref):
                buttons = tuple((b.title, b.payload) for b in reply.buttons)
                sent += await self._send(person.chat_id, Say(reply.text, buttons))
        if self._left(person.ref):  # they left while it was on its way: it goes from the chat too
            await self.outbox.delete_many(person.chat_id, sent)
            return
        self._record_trail(person.ref, sent)  # one write for the whole reply, not one per message

    @contextlib.asynccontextmanager
    async def _typing(self, chat_id: int) -> AsyncIterator[None]:
        async def keep_typing() -> None:
            await asyncio.sleep(TYPING_AFTER_SECONDS)
            while True:
                await self.outbox.typing(chat_id)
                await asyncio.sleep(TYPING_EVERY_SECONDS)

        if not self.outbox.shows_typing:
            yield
            return
        task = asyncio.create_task(keep_typing())
        try:
            yield
        finally:
            task.cancel()

    # ---------------------------------------------------------------- handover

    async def request_handover(self, person: Person, priority: Priority, reason: str) -> None:
        """Open (or raise) the person's case and put its card in the moderators' group."""
        now = self.clock()
        recent = list(self._recent.get(person.ref, ()))
        try:
            opened = self._open_or_raise(person, priority, reason, recent, now)
        except SQLAlchemyError as exc:
            logger.error("could not save a %s handover: %s", priority.value, type(exc).__name__)
            if person.ref not in self._unsaved:
                card = cards.unsaved_card(priority.value, reason, recent, now)
                self.board.owe_notice(card, priority.rank, note=_unsaved_note(person.ref))
                await self.board.flush()
            self._unsaved[person.ref] = _Unsaved(person, priority, reason)
            return
        case = opened.case
        if self._unsaved.pop(person.ref, None) is not None:  # its NOT SAVED card says where it went now
            self.board.retract_notice(
                _unsaved_note(person.ref), cards.unsaved_saved(case.number), case.priority.rank
            )
        if not (opened.created or opened.raised):
            return
        logger.info(
            "case #%d %s (%s)", case.number, "opened" if opened.created else "raised", case.priority.value
        )
        # A raised case gets a new card (the old one says so), so the group sees it come up again.
        self.board.owe_card(case.number, case.priority.rank, new_card=opened.raised)
        await self.board.flush()
        if case.priority is Priority.URGENT and self.board.card_waiting(case.number):
            await self._alert_privately(case, now)
        off_duty = opened.created and not self.settings.moderator_hours.on_duty(now)
        if off_duty and self._db(lambda s: cases.mark_told_wait(s, case.number, now)):
            await self._tell(person, _say("utter_handover_out_of_hours"))

    def _open_or_raise(
        self, person: Person, priority: Priority, reason: str, recent: list[str], now: dt.datetime
    ) -> cases.Opened:
        """Open or raise the person's case. Another instance opening it at the same moment (the unique
        index on open cases answers IntegrityError) means it is open: it is raised instead."""
        for attempt in (1, 2):
            try:
                with self.sessions.begin() as session:
                    return cases.open_or_raise(
                        session, self.cipher, person.ref, person.chat_id, priority, reason, recent, now
                    )
            except IntegrityError:
                if attempt == 2:
                    raise
                logger.info("a case for the person was opened elsewhere at the same moment; raising it")
        raise AssertionError("unreachable")

    async def _alert_privately(self, case: cases.CaseView, now: dt.datetime) -> None:
        """The group can't take an urgent card yet: each moderator on duty gets a private alert instead.

        Only moderators with a private chat with the bot receive it (one who has none, or blocked the
        bot, is noted as unreachable). Each chat is written to on its own, and the caller waits a moment
        at most: a moderator's chat at Telegram's limit holds up neither the others nor the person.
        """
        if not self.settings.moderator_hours.on_duty(now):
            return
        alert = cards.urgent_alert(case, now)

        async def alert_one(moderator: int) -> None:
            try:
                await self.outbox.send(moderator, alert)
            except UnreachableError:
                self._unreachable.add(moderator)
            except Exception as exc:  # one moderator's chat failing must not stop the others
                logger.warning("urgent alert to a moderator failed: %s", type(exc).__name__)

        reachable = sorted(self.settings.moderator_user_ids - self._unreachable)
        logger.warning(
            "case #%d is urgent and its card is late: alerting %d moderators", case.number, len(reachable)
        )
        sending = {asyncio.create_task(alert_one(m)) for m in reachable}
        self._alerts |= sending
        for task in sending:
            task.add_done_callback(self._alerts.discard)
        if sending:
            await asyncio.wait(sending, timeout=ALERT_WAIT_SECONDS)

    async def _update_card(self, case: cases.CaseView) -> None:
        """Bring the case's card up to date (claimed, closed): one owed write, however often it changes."""
        self.board.owe_card(case.number, case.priority.rank)
        await self.board.flush()

    # ---------------------------------------------------------------- moderators

    async def moderator_button(self, user_id: int, name: str, data: str) -> str:
        """A card's Claim or Close was pressed: check who and what, then do it. Returns the answer."""
        parsed = parse_case_button(data)
        if parsed is None:
            logger.info("ignored a card button with unexpected data (%d characters)", len(data))
            return cards.EXPIRED
        move, number = parsed
        if not is_moderator(user_id, self.settings.moderator_user_ids):
            logger.warning("refused %s of case #%d: not on MODERATOR_USER_IDS", move, number)
            return cards.NOT_A_MODERATOR
        moderator = Moderator(user_id, name)
        if move is Move.CLAIM:
            return await self.claim(moderator, number)
        if move is Move.TAKEOVER:
            return await self.takeover(moderator, number)
        return await self.close(moderator, number)

    def _authorised(self, moderator: Moderator, what: str) -> bool:
        if is_moderator(moderator.user_id, self.settings.moderator_user_ids):
            return True
        logger.warning("refused %s: not on MODERATOR_USER_IDS", what)
        return False

    def _moved(
        self,
        moderator: Moderator,
        number: int,
        name: Move,
        now: dt.datetime,
        holder: int | None = None,
        detail: str | None = None,
    ) -> cases.CaseView | str:
        """Make a moderator's move on a case; return the case, or what to tell them if it can't be done.

        With `holder`, a claimed case moves only while that moderator holds it.
        """
        try:
            with self.sessions.begin() as session:
                moved = cases.move(
                    session,
                    self.cipher,
                    number,
                    name,
                    cases.moderator_actor(moderator.user_id),
                    now,
                    moderator_id=moderator.user_id,
                    moderator_name=moderator.name,
                    holder=holder,
                )
                privacy.audit(session, moderator.user_id, name.value, now, number, detail)
                return moved
        except LookupError:
            return f"There is no case #{number}."
        except NotHolderError as exc:
            return cards.not_yours(number, name.value, exc.holder_name)
        except TransitionError:
            if name is Move.RELEASE:
                return cards.not_yours(number, name.value, None)
            if name is Move.TAKEOVER:
                return f"Case #{number} changed meanwhile. Nothing changed; /queue shows it now."
            return f"Case #{number} is already {'claimed or closed' if name is Move.CLAIM else 'closed'}."
        except SQLAlchemyError as exc:
            logger.error("%s of case #%d failed: %s", name, number, type(exc).__name__)
            return cards.DATABASE_DOWN

    async def claim(self, moderator: Moderator, number: int) -> str:
        """A moderator takes a case: they get the transcript in private, the person is told."""
        if not self._authorised(moderator, "claim"):
            return cards.NOT_A_MODERATOR
        now = self.clock()
        case = self._moved(moderator, number, Move.CLAIM, now)
        if isinstance(case, str):
            return case
        lines = self._transcript(number)
        try:
            intro = await self.outbox.send(moderator.user_id, cards.claimed_intro(case, lines))
        except UnreachableError:
            # Should giving it back fail too, the waiting check returns the case to the queue.
            self._unreachable.add(moderator.user_id)
            self._db(lambda s: cases.move(s, self.cipher, number, Move.RELEASE, cases.SYSTEM, now))
            return cards.START_PRIVATE_CHAT
        self._unreachable.discard(moderator.user_id)
        logger.info("case #%d claimed", number)
        self._db(lambda s: cases.link_relay(s, moderator.user_id, intro, number))
        if case.chat_id is not None:
            await self._tell(Person(case.chat_id, case.user_ref), _say("utter_moderator_joined"))
        await self._update_card(case)
        return f"Case #{number} is yours. Carry on in your private chat with the bot."

    async def close(self, moderator: Moderator, number: int) -> str:
        """A moderator ends a case: the person is back with the bot and asked how it went.

        A claimed case is closed only by the moderator holding it (another takes it over first).
        """
        if not self._authorised(moderator, "close"):
            return cards.NOT_A_MODERATOR
        case = self._moved(moderator, number, Move.CLOSE, self.clock(), holder=moderator.user_id)
        if isinstance(case, str):
            return case
        logger.info("case #%d closed", number)
        if case.chat_id is not None:
            person = Person(case.chat_id, case.user_ref)
            await self._tell(person, _say("utter_handover_closed"))
            ratings = tuple((str(n), feedback_button(number, n)) for n in range(1, 6))
            await self._tell(person, _say("utter_ask_handover_feedback", ratings))
        await self._new_rasa_session(case.user_ref)
        await self._update_card(case)
        return f"Case #{number} is closed."

    async def release(self, moderator: Moderator, number: int | None, replied_to: Quoted | None) -> str:
        """`/release [number]`: the holder gives a case back to the queue; a fresh card goes to the group."""
        if not self._authorised(moderator, "release"):
            return cards.NOT_A_MODERATOR
        number_or_answer = self._case_number(moderator, number, replied_to)
        if isinstance(number_or_answer, str):
            return number_or_answer
        case = self._moved(moderator, number_or_answer, Move.RELEASE, self.clock(), holder=moderator.user_id)
        if isinstance(case, str):
            return case
        logger.info("case #%d released to the queue", case.number)
        self.board.owe_card(case.number, case.priority.rank, new_card=True)
        await self.board.flush()
        if case.chat_id is not None:
            await self._tell(Person(case.chat_id, case.user_ref), _say("utter_moderator_left"))
        return cards.released(case.number)

    async def takeover(self, moderator: Moderator, number: int) -> str:
        """Another moderator takes a claimed case: the transcript comes to them, the first holder is told."""
        if not self._authorised(moderator, "takeover"):
            return cards.NOT_A_MODERATOR

        def find(session: Session) -> cases.CaseView | None:
            row = cases.get_case(session, number)
            return cases.CaseView.of(row, self.cipher) if row is not None else None

        try:
            with self.sessions.begin() as session:
                before = find(session)
        except SQLAlchemyError as exc:
            logger.error("takeover of case #%d failed: %s", number, type(exc).__name__)
            return cards.DATABASE_DOWN
        if before is None:
            return f"There is no case #{number}."
        if before.state is not CaseState.CLAIMED or before.claimed_by is None:
            return cards.not_held(number, before.state)
        if before.claimed_by == moderator.user_id:
            return cards.already_yours(number)
        now, previous = self.clock(), before.claimed_by
        detail = f"from moderator {previous}"
        case = self._moved(moderator, number, Move.TAKEOVER, now, holder=previous, detail=detail)
        if isinstance(case, str):
            return case
        try:
            intro = await self.outbox.send(
                moderator.user_id, cards.claimed_intro(case, self._transcript(number))
            )
        except UnreachableError:
            self._unreachable.add(moderator.user_id)
            self._db(
                lambda s: cases.move(
                    s,
                    self.cipher,
                    number,
                    Move.TAKEOVER,
                    cases.SYSTEM,
                    now,
                    moderator_id=previous,
                    moderator_name=before.claimed_by_name,
                    holder=moderator.user_id,
                )
            )
            return cards.START_PRIVATE_CHAT
        self._unreachable.discard(moderator.user_id)
        logger.info("case #%d taken over", number)
        self._db(lambda s: cases.link_relay(s, moderator.user_id, intro, number))
        if is_moderator(previous, self.settings.moderator_user_ids):
            await self._send(previous, cards.taken_from(number, moderator.name))
        await self._update_card(case)
        return cards.taken_over(number, before.claimed_by_name)

    async def _new_rasa_session(self, ref: str) -> None:
        """Start a new Rasa session, so the conversation picks up fresh (handover slots reset)."""
        try:
            await self.rasa.send(ref, "/session_start")
        except RasaUnavailableError:
            logger.warning("could not start a new Rasa session after a handover")

    async def moderator_text(self, moderator: Moderator, text: str, replied_to: Quoted | None) -> str | None:
        """A moderator wrote in their private chat: it reaches the young person of the case it is for."""
        if not self._authorised(moderator, "reply"):
            return cards.NOT_A_MODERATOR
        text = clean_text(text)
        if not text:
            return cards.TEXT_ONLY
        try:
            case = self._target(moderator, replied_to)
        except TargetError as exc:
            return str(exc)
        if case.chat_id is None:
            return cards.USER_GONE
        label = response_text(LABEL)
        try:
            sent = await self.outbox.send(case.chat_id, Say(f"{label} {text}", response_buttons(LABEL)))
        except UnreachableError:
            return cards.USER_GONE
        self._unreachable.discard(moderator.user_id)  # they wrote to the bot: their chat is open again
        self._record_trail(case.user_ref, sent)
        self._transcribe(case.number, Sender.MODERATOR, text)
        self._audit(moderator, "reply", case.number)
        return None

    async def moderator_note(self, moderator: Moderator, text: str, replied_to: Quoted | None) -> str:
        """A moderator adds a private note to the case (the young person never sees it)."""
        if not self._authorised(moderator, "note"):
            return cards.NOT_A_MODERATOR
        text = clean_text(text)
        if not text:
            return "Write the note after /note, e.g. /note said school is aware."
        try:
            case = self._target(moderator, replied_to)
        except TargetError as exc:
            return str(exc)
        self._transcribe(case.number, Sender.NOTE, text)
        self._audit(moderator, "note", case.number)
        return f"Note added to case #{case.number}. The young person doesn't see notes."

    async def moderator_close(
        self, moderator: Moderator, number: int | None, replied_to: Quoted | None
    ) -> str:
        """`/close [number]` in a moderator's private chat."""
        if not self._authorised(moderator, "close"):
            return cards.NOT_A_MODERATOR
        number_or_answer = self._case_number(moderator, number, replied_to)
        if isinstance(number_or_answer, str):
            return number_or_answer
        return await self.close(moderator, number_or_answer)

    def _case_number(self, moderator: Moderator, number: int | None, replied_to: Quoted | None) -> int | str:
        """Return the case a command means (named, replied to, or the only one held), or why it can't."""
        if number is not None:
            return number
        try:
            return self._target(moderator, replied_to).number
        except TargetError as exc:
            return str(exc)

    def queue(self, user_id: int) -> str:
        """`/queue`: the open cases, in the order they should be taken."""
        if not is_moderator(user_id, self.settings.moderator_user_ids):
            logger.warning("refused queue: not on MODERATOR_USER_IDS")
            return cards.NOT_A_MODERATOR
        open_cases = self._db(lambda s: cases.open_queue(s, self.cipher))
        if open_cases is None:
            return cards.DATABASE_DOWN
        self._audit(Moderator(user_id, ""), "queue", detail=f"{len(open_cases)} open")
        return cards.queue_text(open_cases, self.clock())

    async def queue_in_group(self, user_id: int) -> None:
        """`/queue` in the moderators' group: the answer is posted in turn with the cards; a refusal goes
        to the asker's private chat (if they have one), never into the group."""
        if not is_moderator(user_id, self.settings.moderator_user_ids):
            logger.warning("refused queue in the group: not on MODERATOR_USER_IDS; answered privately")
            await self._send(user_id, Say(cards.NOT_A_MODERATOR))
            return
        await self._post_group(Say(self.queue(user_id)), Priority.NORMAL.rank)

    async def block(self, moderator: Moderator, number: int | None, replied_to: Quoted | None) -> str:
        """`/block [number]`: the case's person can't reach the bot or moderators for a while; it closes.

        A claimed case's person is blocked only by the moderator holding it (another takes it over first).
        """
        if not self._authorised(moderator, "block"):
            return cards.NOT_A_MODERATOR
        number_or_answer = self._case_number(moderator, number, replied_to)
        if isinstance(number_or_answer, str):
            return number_or_answer
        now, case_number = self.clock(), number_or_answer

        def work(session: Session) -> tuple[cases.CaseView, UserBlock] | str:
            row = cases.get_case(session, case_number)
            if row is None:
                return f"There is no case #{case_number}."
            if row.state == CaseState.CLAIMED.value and row.claimed_by != moderator.user_id:
                return cards.not_yours(case_number, "block", row.claimed_by_name)
            blocked = privacy.block(session, row.user_ref, case_number, moderator.user_id, now)
            detail = f"block #{blocked.id} until {blocked.until:%Y-%m-%d}"
            privacy.audit(session, moderator.user_id, "block", now, case_number, detail)
            return cases.CaseView.of(row, self.cipher), blocked

        try:
            with self.sessions.begin() as session:
                found = work(session)
        except SQLAlchemyError as exc:
            logger.error("block failed: %s", type(exc).__name__)
            return cards.DATABASE_DOWN
        if isinstance(found, str):
            return found
        case, blocked = found
        self._blocked[case.user_ref] = blocked.until
        logger.info("case #%d: its person was blocked (block #%d)", case_number, blocked.id)
        if case.state is not CaseState.CLOSED:
            closed = self._moved(moderator, case_number, Move.CLOSE, now, holder=moderator.user_id)
            if isinstance(closed, cases.CaseView):
                await self._update_card(closed)
                if closed.chat_id is not None:
                    self._told_blocked[case.user_ref] = self._seconds()
                    await self._tell(Person(closed.chat_id, closed.user_ref), _say("utter_blocked"))
        return cards.blocked(case_number, blocked.id, blocked.until)

    def unblock(self, moderator: Moderator, block_id: int | None) -> str:
        """`/unblock <block number>`: lift a block early."""
        if not self._authorised(moderator, "unblock"):
            return cards.NOT_A_MODERATOR
        if block_id is None:
            return "Say which block, e.g. /unblock 3. /blocks lists them."
        now = self.clock()

        def work(session: Session) -> str | None:
            lifted = privacy.unblock(session, block_id, moderator.user_id, now)
            if lifted is None:
                return None
            detail = f"block #{block_id}"
            privacy.audit(session, moderator.user_id, "unblock", now, lifted.case_number, detail)
            return lifted.user_ref

        ref = self._db(work)
        if ref is None:
            return f"There is no block #{block_id} in force."
        self._blocked.pop(ref, None)
        self._told_blocked.pop(ref, None)
        return f"Block #{block_id} is lifted."

    def blocks(self, moderator: Moderator) -> str:
        """`/blocks`: the blocks in force."""
        if not self._authorised(moderator, "blocks"):
            return cards.NOT_A_MODERATOR
        now = self.clock()
        found = self._db(lambda s: [cards.BlockView.of(b) for b in privacy.blocks_in_force(s, now)])
        if found is None:
            return cards.DATABASE_DOWN
        self._audit(moderator, "blocks", detail=f"{len(found)} in force")
        return cards.blocks_text(found)

    def refresh_blocks(self) -> None:
        """Load the blocks in force (at start, and with every waiting check: other instances block too)."""
        now = self.clock()
        found = self._db(lambda s: {b.user_ref: b.until for b in privacy.blocks_in_force(s, now)})
        if found is not None:
            self._blocked = found

    def _audit(
        self, moderator: Moderator, action: str, number: int | None = None, detail: str | None = None
    ) -> None:
        now = self.clock()
        self._db(lambda s: privacy.audit(s, moderator.user_id, action, now, number, detail))

    def _target(self, moderator: Moderator, replied_to: Quoted | None) -> cases.CaseView:
        def find(session: Session) -> cases.CaseView:
            held = cases.held_by(session, moderator.user_id)
            replied = None
            if replied_to is not None:
                replied = cases.case_for_relay(session, moderator.user_id, replied_to.message_id)
                # A line answered at once may not be linked yet (Telegram's answer to our send is still on
                # its way, or another instance sent it): its number then says the case; pick_case checks
                # that the moderator holds it.
                replied = replied or replied_to.case_number
                if replied is None:
                    raise TargetError("That message isn't from a case. Nothing was sent.")
            number = pick_case(held, replied)
            row = cases.get_case(session, number)
            assert row is not None
            return cases.CaseView.of(row, self.cipher)

        try:
            with self.sessions.begin() as session:
                return find(session)
        except SQLAlchemyError as exc:
            logger.error("finding a moderator's case failed: %s", type(exc).__name__)
            raise TargetError(cards.DATABASE_DOWN) from None

    async def _to_moderator(self, case: cases.CaseView, text: str, sender: Sender) -> bool:
        """Relay a line of a claimed case to the moderator holding it, and keep it in the transcript.

        The allow-list is checked on every line: a holder no longer on it, or whose chat refuses the
        line, gets nothing, and the case goes back to the queue. Returns whether the line was relayed.
        """
        self._transcribe(case.number, sender, text)
        holder = case.claimed_by
        if holder is None or not is_moderator(holder, self.settings.moderator_user_ids):
            await self._requeue(case, HolderGone.NOT_A_MODERATOR)
            return False
        try:
            parts = await self.outbox.send(holder, cards.relayed(case.number, sender, text))
        except UnreachableError:
            logger.error("the moderator holding case #%d can't be reached", case.number)
            self._unreachable.add(holder)
            await self._requeue(case, HolderGone.UNREACHABLE)
            return False
        self._db(lambda s: cases.link_relay(s, holder, parts, case.number))
        return True

    async def _requeue(self, case: cases.CaseView, why: HolderGone) -> None:
        """Give a claimed case back to the queue (its holder can't carry it): a fresh card, the person told.

        If the database fails, the case stays claimed and the next waiting check tries again.
        """
        now = self.clock()
        try:
            with self.sessions.begin() as session:
                moved = cases.move(
                    session, self.cipher, case.number, Move.REQUEUE, cases.SYSTEM, now, holder=case.claimed_by
                )
        except (LookupError, TransitionError):
            return  # closed, released or taken over meanwhile
        except SQLAlchemyError as exc:
            logger.error("could not give case #%d back to the queue: %s", case.number, type(exc).__name__)
            return
        logger.warning("case #%d is back in the queue: its moderator is %s", case.number, why.value)
        self.board.owe_notice(cards.requeued(case.number, why), case.priority.rank)
        self.board.owe_card(case.number, case.priority.rank, new_card=True)
        await self.board.flush()
        if moved.chat_id is not None:
            await self._tell(Person(moved.chat_id, moved.user_ref), _say("utter_moderator_left"))

    async def return_lost_claims(self) -> None:
        """Give back to the queue every case held by someone off the allow-list or unreachable (at start-up
        and with every waiting check)."""
        held = self._db(lambda s: cases.claimed(s, self.cipher)) or []
        for case in held:
            why = holder_gone(case.claimed_by, self.settings.moderator_user_ids, self._unreachable)
            if why is not None:
                await self._requeue(case, why)

    # ---------------------------------------------------------------- jobs

    async def purge(self) -> privacy.Purged | None:
        """Delete what is past its retention time (a job, hourly; also `make purge`)."""
        now = self.clock()
        try:
            purged = await asyncio.to_thread(
                privacy.purge_all,
                self.sessions,
                self.trackers,
                now,
                self.settings.retention,
                self.settings.audit_retention,
            )
        except SQLAlchemyError as exc:
            logger.error("retention purge failed (tried again next hour): %s", type(exc).__name__)
            return None
        logger.info("retention purge: %s", purged)
        days = self.settings.retention.days
        for number, chat_id, message_id in purged.cards:  # their cards keep no one's words either
            self.board.owe_edit(chat_id, message_id, cards.abandoned(number, days), Priority.NORMAL.rank)
        if purged.cards:
            await self.board.flush()
        return purged

    async def check_waiting(self) -> None:
        """Tell people nobody has picked up yet, remind moderators, and owe a card to any case without one."""
        self.refresh_blocks()
        await self.return_lost_claims()
        now = self.clock()
        for unsaved in list(self._unsaved.values()):
            await self.request_handover(unsaved.person, unsaved.priority, unsaved.reason)
        settings = self.settings

        def due(session: Session) -> _Due:
            told = [
                c
                for c in cases.overdue_untold(session, self.cipher, now - settings.handover_wait)
                if cases.mark_told_wait(session, c.number, now)
            ]
            every = settings.handover_remind_every
            reminders = cases.claim_reminder(session, self.cipher, now, settings.handover_wait, every)
            idle = cases.idle_claims(session, self.cipher, now, settings.claim_idle, every)
            cardless = [c for c in cases.open_queue(session, self.cipher) if c.card_message_id is None]
            return _Due(told, reminders, idle, cardless)

        found = self._db(due)
        if found is None:
            return
        for case in found.told:
            if case.chat_id is not None:
                await self._tell(Person(case.chat_id, case.user_ref), _say("utter_handover_waiting"))
        self.board.owe_missing(found.cardless)
        if found.reminders:
            await self._post_group(cards.reminder(found.reminders, now), Priority.NORMAL.rank)
        if found.idle:
            rank = min(c.priority.rank for c, _ in found.idle)
            await self._post_group(cards.idle_reminder(found.idle, now), rank)
        await self.board.flush()

    async def flush_cards(self) -> None:
        """Write the cards and notices the moderators' group is owed, as its limit allows (a job)."""
        await self.board.flush()

    # ---------------------------------------------------------------- plumbing

    def _seconds(self) -> float:
        """Return the relay's clock in seconds (flood control and reminders run on it, so tests can too)."""
        return self.clock().timestamp()

    def _lock(self, ref: str) -> asyncio.Lock:
        lock = self._locks.get(ref)
        if lock is None:
            if len(self._locks) > REMEMBERED_PEOPLE:
                for key in [k for k, v in self._locks.items() if not v.locked()]:
                    del self._locks[key]
            lock = self._locks[ref] = asyncio.Lock()
        return lock

    def _remember(self, ref: str, text: str) -> None:
        """Keep a person's last few messages in memory only, for a card if they ask for a person."""
        recent = self._recent.pop(ref, None) or deque(maxlen=cards.RECENT_LINES)
        recent.append(text)
        self._recent[ref] = recent
        while len(self._recent) > REMEMBERED_PEOPLE:
            self._recent.popitem(last=False)

    def _open_case(self, person: Person) -> cases.CaseView | None:
        def find(session: Session) -> cases.CaseView | None:
            case = cases.open_case_for(session, person.ref)
            return cases.CaseView.of(case, self.cipher) if case else None

        return self._db(find)

    def _transcript(self, number: int) -> list[tuple[Sender, str]]:
        return self._db(lambda s: cases.transcript(s, self.cipher, number)) or []

    def _transcribe(self, number: int, sender: Sender, text: str) -> None:
        now = self.clock()
        self._db(lambda s: cases.add_message(s, self.cipher, number, sender, text, now))

    def _db(self, work: Callable[[Session], _T]) -> _T | None:
        """Run one unit of work; on a database failure log its kind (never its data) and return None."""
        try:
            with self.sessions.begin() as session:
                return work(session)
        except SQLAlchemyError as exc:
            logger.error("database unavailable: %s", type(exc).__name__)
            return None

    async def _send(self, chat_id: int, message: Say) -> list[int]:
        try:
            return await self.outbox.send(chat_id, message)
        except UnreachableError:
            logger.info("a chat could not be reached")
            return []

    async def _tell(self, person: Person, message: Say) -> None:
        """Send a message to a person, and note its ids so quick exit can delete it.

        Work from before the person left sends nothing (and what was on its way is deleted again).
        """
        if self._left(person.ref):
            return
        sent = await self._send(person.chat_id, message)
        if self._left(person.ref):
            await self.outbox.delete_many(person.chat_id, sent)
            return
        self._record_trail(person.ref, sent)

    def note_sent(self, person: Person, message_ids: list[int]) -> None:
        """Note messages sent to a person outside the relay (the error handler's answer) for quick exit."""
        self._record_trail(person.ref, message_ids)

    def _record_trail(self, ref: str, message_ids: list[int]) -> None:
        if message_ids:
            now = self.clock()
            self._db(lambda s: privacy.record_trail(s, ref, message_ids, now))

    async def _post_group(self, message: Say, rank: int) -> None:
        """Post a notice to the moderators' group, in turn with the cards (never over its limit)."""
        self.board.owe_notice(message, rank)
        await self.board.flush()
