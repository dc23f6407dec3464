"""The relay: a person's messages go to Rasa, or to the moderator holding their case; handover runs here.

One instance per adapter process. It speaks through an `Outbox` (Telegram, or the terminal in local
mode), so the same code runs both. Per person, messages are handled one at a time and in order.
Nothing here logs what anyone wrote (DESIGN.md, non-negotiable 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot import cards, cases
from bot.cards import Say
from bot.escalation import (
    CaseState,
    Priority,
    TargetError,
    TransitionError,
    feedback_button,
    is_moderator,
    parse_case_button,
    parse_feedback_button,
    pick_case,
)
from bot.rasa_client import BotMessage, RasaClient, RasaUnavailableError
from bot.responses import button_payloads, response_buttons, response_text
from bot.settings import Settings

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 4096
MAX_PENDING_PER_PERSON = 50
REMEMBERED_PEOPLE = 10_000
TYPING_EVERY_SECONDS = 4.0
RETRY_FIRST_SECONDS = 5.0
RETRY_MAX_SECONDS = 60.0
# Commands a person may type that mean something to Rasa.
COMMANDS = {"/start": "/greet", "/help": "/ask_helplines", "/exit": "/quick_exit"}
# The payload of utter_assistant_unavailable's button: with Rasa down, the relay opens the case itself.
ASK_FOR_PERSON = "/request_human"

_T = TypeVar("_T")


class UnreachableError(Exception):
    """The chat can't be written to (the person blocked the bot, or never started a chat with it)."""


class Outbox(Protocol):
    """Where the relay's messages go: Telegram, or the terminal in local mode."""

    async def send(self, chat_id: int, message: Say) -> int:
        """Send a message (split if too long); return the id of its last part. Raise UnreachableError."""
        ...

    async def edit(self, chat_id: int, message_id: int, message: Say) -> None:
        """Replace a message's text and buttons."""
        ...

    async def delete(self, chat_id: int, message_id: int) -> bool:
        """Delete a message from a chat; return False where that isn't allowed."""
        ...

    async def typing(self, chat_id: int) -> None:
        """Show "typing…" in a chat."""
        ...


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


@dataclass
class _Pending:
    """Messages Rasa hasn't answered yet, kept in order and retried with backoff."""

    chat_id: int
    messages: deque[str] = field(default_factory=deque)
    told: bool = False
    delay: float = RETRY_FIRST_SECONDS
    next_try: float = 0.0


@dataclass(frozen=True)
class _Unsaved:
    """A handover the database couldn't save; moderators have a card already, the case comes later."""

    person: Person
    priority: Priority
    reason: str


def utcnow() -> dt.datetime:
    """Return the time now, in UTC."""
    return dt.datetime.now(dt.timezone.utc)


def _say(name: str, extra: tuple[tuple[str, str], ...] = ()) -> Say:
    """Return a response from domain.yml, its own buttons first, then any the relay adds."""
    return Say(response_text(name), response_buttons(name) + extra)


def clean_text(text: str) -> str:
    """Return what a person typed without control characters, cut to Telegram's message size."""
    kept = "".join(ch for ch in text if ch in "\n\t" or ch.isprintable())
    return kept.strip()[:MAX_TEXT_CHARS]


def to_rasa(text: str) -> str:
    """Return what Rasa is sent for typed text: our commands mapped, an unknown /word read as words."""
    if not text.startswith("/"):
        return text
    command = text.split(maxsplit=1)[0].split("@")[0].lower()
    if command in COMMANDS:
        return COMMANDS[command]
    return text if text in button_payloads() else text.lstrip("/")


class Relay:
    """Carries each person's conversation to Rasa or to a moderator, and runs the handover."""

    def __init__(
        self,
        settings: Settings,
        rasa: RasaClient,
        outbox: Outbox,
        sessions: sessionmaker[Session],
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.rasa = rasa
        self.outbox = outbox
        self.sessions = sessions
        self.clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._recent: OrderedDict[str, deque[str]] = OrderedDict()
        self._pending: dict[str, _Pending] = {}
        self._unsaved: dict[str, _Unsaved] = {}

    # ---------------------------------------------------------------- people

    async def user_text(self, person: Person, text: str) -> None:
        """A person wrote: the moderator holding their case gets it, or Rasa answers."""
        text = clean_text(text)
        if not text:
            await self._send(person.chat_id, _say("utter_unsupported_message"))
            return
        async with self._lock(person.ref):
            if await self._to_case(person, text, sender="user"):
                return
            self._remember(person.ref, text)
            await self._converse(person, to_rasa(text))

    async def user_button(self, person: Person, data: str, title: str | None) -> None:
        """A person pressed one of our buttons: a rating, or one of Rasa's payloads (checked)."""
        rating = parse_feedback_button(data)
        if rating is not None:
            saved = self._db(lambda s: cases.set_feedback(s, rating[0], person.ref, rating[1]))
            await self._send(
                person.chat_id, _say("utter_feedback_thanks" if saved else "utter_button_expired")
            )
            return
        if data not in button_payloads():
            logger.info("ignored a button press with unexpected data (%d characters)", len(data))
            await self._send(person.chat_id, _say("utter_button_expired"))
            return
        async with self._lock(person.ref):
            case = self._open_case(person)
            if case is not None and case.state is CaseState.CLAIMED:
                await self._to_moderator(case, f"[pressed the button \u201c{title or data}\u201d]", "system")
                return
            await self._converse(person, data)

    async def user_media(self, person: Person, kind: str, message_id: int, caption: str | None) -> None:
        """A person sent media: delete it unopened, explain why, tell a moderator only that it happened."""
        deleted = await self.outbox.delete(person.chat_id, message_id)
        await self._send(
            person.chat_id, _say("utter_media_deleted" if deleted else "utter_media_not_deleted")
        )
        logger.info("deleted=%s media of kind %s from a person", deleted, kind)
        await self._notice(person, cards.media_notice(kind, deleted))
        if caption:
            await self.user_text(person, caption)

    async def user_personal(self, person: Person, kind: str, message_id: int) -> None:
        """A person shared a location or contact: remove it from the chat and say so."""
        deleted = await self.outbox.delete(person.chat_id, message_id)
        await self._send(person.chat_id, _say("utter_personal_details_removed"))
        await self._notice(person, cards.media_notice(kind, deleted))

    async def user_unsupported(self, person: Person, kind: str) -> None:
        """A person sent something that isn't text (a poll, dice, …): ask them to write instead."""
        await self._send(person.chat_id, _say("utter_unsupported_message"))
        await self._notice(person, cards.unsupported_notice(kind))

    async def user_edited(self, person: Person, text: str) -> None:
        """A person edited a message: the moderator sees the new text; the bot asks them to resend."""
        text = clean_text(text)
        async with self._lock(person.ref):
            case = self._open_case(person)
            if case is not None and case.state is CaseState.CLAIMED and text:
                await self._to_moderator(case, f"[edited] {text}", sender="user")
                return
        await self._send(person.chat_id, _say("utter_edited_message"))

    async def _notice(self, person: Person, notice: str) -> None:
        """Put a note of something we didn't relay into the case, and in the moderator's chat if claimed."""
        async with self._lock(person.ref):
            await self._to_case(person, notice, sender="system")

    async def _to_case(self, person: Person, text: str, sender: str) -> bool:
        """Add a line to the person's open case; True if a moderator holds it (and so got the line)."""
        case = self._open_case(person)
        if case is None:
            return False
        if case.state is CaseState.CLAIMED:
            await self._to_moderator(case, text, sender)
            return True
        self._transcribe(case.number, sender, text)
        return False

    # ---------------------------------------------------------------- Rasa

    async def _converse(self, person: Person, message: str) -> None:
        """Queue the message behind any the assistant hasn't answered, then try to get answers."""
        pending = self._pending.setdefault(person.ref, _Pending(person.chat_id))
        pending.chat_id = person.chat_id
        if len(pending.messages) >= MAX_PENDING_PER_PERSON:
            pending.messages.popleft()
            logger.warning("pending queue full for a person; dropped the oldest message")
        pending.messages.append(message)
        pending.told = False  # every message the person sends gets an answer, even during an outage
        await self._flush(person.ref, pending)

    async def _flush(self, ref: str, pending: _Pending) -> None:
        """Send waiting messages to Rasa in order; on failure tell the person once and retry later."""
        while pending.messages:
            try:
                replies = await self._ask(ref, pending)
            except RasaUnavailableError:
                if ASK_FOR_PERSON in pending.messages:
                    # Asking for a person must work without Rasa: the relay opens the case itself.
                    pending.messages = deque(m for m in pending.messages if m != ASK_FOR_PERSON)
                    person = Person(pending.chat_id, ref)
                    await self.request_handover(person, Priority.NORMAL, "assistant_unavailable")
                    await self._send(person.chat_id, _say("utter_handover"))
                pending.next_try = time.monotonic() + pending.delay
                pending.delay = min(pending.delay * 2, RETRY_MAX_SECONDS)
                return
            pending.messages.popleft()
            await self._deliver(Person(pending.chat_id, ref), replies)
        self._pending.pop(ref, None)

    async def _ask(self, ref: str, pending: _Pending) -> list[BotMessage]:
        """Ask Rasa, showing typing; if it is slow or down, answer at once with the crisis numbers."""
        request = asyncio.ensure_future(self.rasa.send(ref, pending.messages[0]))
        async with self._typing(pending.chat_id):
            try:
                return await asyncio.wait_for(asyncio.shield(request), self.settings.rasa_timeout_seconds)
            except asyncio.TimeoutError:
                logger.warning(
                    "Rasa slower than %.1f s; answered with the crisis numbers",
                    self.settings.rasa_timeout_seconds,
                )
                await self._tell_unavailable(pending)
            except RasaUnavailableError:
                await self._tell_unavailable(pending)
                raise
            return await request  # Rasa's own answer still comes, if it comes within its patience

    async def _tell_unavailable(self, pending: _Pending) -> None:
        if not pending.told:
            pending.told = True
            await self._send(pending.chat_id, _say("utter_assistant_unavailable"))

    async def retry_pending(self) -> None:
        """Retry messages Rasa couldn't answer (a job; also runs when the person writes again)."""
        now = time.monotonic()
        for ref, pending in list(self._pending.items()):
            lock = self._lock(ref)
            if pending.next_try <= now and not lock.locked():
                async with lock:
                    if self._pending.get(ref) is pending:
                        await self._flush(ref, pending)

    async def _deliver(self, person: Person, replies: list[BotMessage]) -> None:
        """Open or raise a case if Rasa asked for a person, then show Rasa's messages."""
        for reply in replies:
            if reply.handover:
                await self.request_handover(
                    person,
                    Priority.parse(reply.handover.get("priority", "")),
                    reply.handover.get("reason", ""),
                )
        for reply in replies:
            if reply.text:
                buttons = tuple((b.title, b.payload) for b in reply.buttons)
                await self._send(person.chat_id, Say(reply.text, buttons))

    @contextlib.asynccontextmanager
    async def _typing(self, chat_id: int) -> AsyncIterator[None]:
        async def keep_typing() -> None:
            while True:
                await self.outbox.typing(chat_id)
                await asyncio.sleep(TYPING_EVERY_SECONDS)

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
            with self.sessions.begin() as session:
                opened = cases.open_or_raise(
                    session, person.ref, person.chat_id, priority, reason, recent, now
                )
                lines = cases.transcript(session, opened.case.number)
        except SQLAlchemyError as exc:
            logger.error("could not save a %s handover: %s", priority.value, type(exc).__name__)
            if person.ref not in self._unsaved:
                await self._post_group(cards.unsaved_card(priority.value, reason, recent, now))
            self._unsaved[person.ref] = _Unsaved(person, priority, reason)
            return
        self._unsaved.pop(person.ref, None)
        case = opened.case
        if not (opened.created or opened.raised):
            return
        logger.info(
            "case #%d %s (%s)", case.number, "opened" if opened.created else "raised", case.priority.value
        )
        old_card = (case.card_chat_id, case.card_message_id)
        await self._post_card(case, lines)
        if opened.raised and old_card[0] is not None and old_card[1] is not None:
            await self._edit(old_card[0], old_card[1], cards.superseded_card(case))
        off_duty = opened.created and not self.settings.moderator_hours.on_duty(now)
        if off_duty and self._db(lambda s: cases.mark_told_wait(s, case.number, now)):
            await self._send(person.chat_id, _say("utter_handover_out_of_hours"))

    async def _post_card(self, case: cases.CaseView, lines: list[tuple[str, str]]) -> None:
        group = self.settings.moderator_chat_id
        if group is None:
            logger.error("no MODERATOR_CHAT_ID: case #%d has no card", case.number)
            return
        try:
            message_id = await self.outbox.send(group, cards.case_card(case, lines, self.clock()))
        except Exception as exc:  # the reminder job posts missing cards again
            logger.error("could not post the card of case #%d: %s", case.number, type(exc).__name__)
            return
        self._db(lambda s: cases.set_card(s, case.number, group, message_id))

    async def _update_card(self, case: cases.CaseView) -> None:
        if case.card_chat_id is None or case.card_message_id is None:
            return
        lines = self._transcript(case.number)
        await self._edit(case.card_chat_id, case.card_message_id, cards.case_card(case, lines, self.clock()))

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
        return await (self.claim(moderator, number) if move == "claim" else self.close(moderator, number))

    def _authorised(self, moderator: Moderator, what: str) -> bool:
        if is_moderator(moderator.user_id, self.settings.moderator_user_ids):
            return True
        logger.warning("refused %s: not on MODERATOR_USER_IDS", what)
        return False

    def _moved(self, moderator: Moderator, number: int, name: str, now: dt.datetime) -> cases.CaseView | str:
        """Make a moderator's move on a case; return the case, or what to tell them if it can't be done."""
        try:
            with self.sessions.begin() as session:
                return cases.move(
                    session,
                    number,
                    name,
                    cases.moderator_actor(moderator.user_id),
                    now,
                    moderator_id=moderator.user_id,
                    moderator_name=moderator.name,
                )
        except LookupError:
            return f"There is no case #{number}."
        except TransitionError:
            return f"Case #{number} is already {'claimed or closed' if name == 'claim' else 'closed'}."
        except SQLAlchemyError as exc:
            logger.error("%s of case #%d failed: %s", name, number, type(exc).__name__)
            return cards.DATABASE_DOWN

    async def claim(self, moderator: Moderator, number: int) -> str:
        """A moderator takes a case: they get the transcript in private, the person is told."""
        if not self._authorised(moderator, "claim"):
            return cards.NOT_A_MODERATOR
        now = self.clock()
        case = self._moved(moderator, number, "claim", now)
        if isinstance(case, str):
            return case
        lines = self._transcript(number)
        try:
            intro = await self.outbox.send(moderator.user_id, cards.claimed_intro(case, lines))
        except UnreachableError:
            self._db(lambda s: cases.move(s, number, "release", cases.SYSTEM, now))
            return cards.START_PRIVATE_CHAT
        logger.info("case #%d claimed", number)
        self._db(lambda s: cases.link_relay(s, moderator.user_id, intro, number))
        if case.chat_id is not None:
            await self._send(case.chat_id, _say("utter_moderator_joined"))
        await self._update_card(case)
        return f"Case #{number} is yours. Carry on in your private chat with the bot."

    async def close(self, moderator: Moderator, number: int) -> str:
        """A moderator ends a case: the person is back with the bot and asked how it went."""
        if not self._authorised(moderator, "close"):
            return cards.NOT_A_MODERATOR
        case = self._moved(moderator, number, "close", self.clock())
        if isinstance(case, str):
            return case
        logger.info("case #%d closed", number)
        if case.chat_id is not None:
            await self._send(case.chat_id, _say("utter_handover_closed"))
            ratings = tuple((str(n), feedback_button(number, n)) for n in range(1, 6))
            await self._send(case.chat_id, _say("utter_ask_handover_feedback", ratings))
        await self._new_rasa_session(case.user_ref)
        await self._update_card(case)
        if case.claimed_by is not None and case.claimed_by != moderator.user_id:
            await self._send(case.claimed_by, Say(f"Case #{number} was closed by {moderator.name}."))
        return f"Case #{number} is closed."

    async def _new_rasa_session(self, ref: str) -> None:
        """Start a new Rasa session, so the conversation picks up fresh (handover slots reset)."""
        try:
            await self.rasa.send(ref, "/session_start")
        except RasaUnavailableError:
            logger.warning("could not start a new Rasa session after a handover")

    async def moderator_text(self, moderator: Moderator, text: str, replied_to: int | None) -> str | None:
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
        label = response_text("utter_moderator_label")
        try:
            await self.outbox.send(case.chat_id, Say(f"{label} {text}"))
        except UnreachableError:
            return cards.USER_GONE
        self._transcribe(case.number, "moderator", text)
        return None

    async def moderator_note(self, moderator: Moderator, text: str, replied_to: int | None) -> str:
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
        self._transcribe(case.number, "note", text)
        return f"Note added to case #{case.number}. The young person doesn't see notes."

    async def moderator_close(self, moderator: Moderator, number: int | None, replied_to: int | None) -> str:
        """`/close [number]` in a moderator's private chat."""
        if not self._authorised(moderator, "close"):
            return cards.NOT_A_MODERATOR
        if number is None:
            try:
                number = self._target(moderator, replied_to).number
            except TargetError as exc:
                return str(exc)
        return await self.close(moderator, number)

    def queue(self, user_id: int) -> str:
        """`/queue`: the open cases, in the order they should be taken."""
        if not is_moderator(user_id, self.settings.moderator_user_ids):
            logger.warning("refused queue: not on MODERATOR_USER_IDS")
            return cards.NOT_A_MODERATOR
        open_cases = self._db(cases.open_queue)
        if open_cases is None:
            return cards.DATABASE_DOWN
        return cards.queue_text(open_cases, self.clock())

    def _target(self, moderator: Moderator, replied_to: int | None) -> cases.CaseView:
        def find(session: Session) -> cases.CaseView:
            held = cases.held_by(session, moderator.user_id)
            replied = None
            if replied_to is not None:
                replied = cases.case_for_relay(session, moderator.user_id, replied_to)
                if replied is None:
                    raise TargetError("That message isn't from a case. Nothing was sent.")
            number = pick_case(held, replied)
            row = cases.get_case(session, number)
            assert row is not None
            return cases.CaseView.of(row)

        try:
            with self.sessions.begin() as session:
                return find(session)
        except SQLAlchemyError as exc:
            logger.error("finding a moderator's case failed: %s", type(exc).__name__)
            raise TargetError(cards.DATABASE_DOWN) from None

    async def _to_moderator(self, case: cases.CaseView, text: str, sender: str) -> None:
        """Relay a line of a claimed case to the moderator holding it, and keep it in the transcript."""
        self._transcribe(case.number, sender, text)
        if case.claimed_by is None:
            return
        try:
            message_id = await self.outbox.send(case.claimed_by, cards.from_user(case.number, text))
        except UnreachableError:
            logger.error("the moderator holding case #%d can't be reached", case.number)
            return
        self._db(lambda s: cases.link_relay(s, case.claimed_by or 0, message_id, case.number))

    # ---------------------------------------------------------------- jobs

    async def check_waiting(self) -> None:
        """Tell people nobody has picked up yet, remind moderators, and repost cards or cases that failed."""
        now = self.clock()
        for unsaved in list(self._unsaved.values()):
            await self.request_handover(unsaved.person, unsaved.priority, unsaved.reason)

        def due(session: Session) -> tuple[list[cases.CaseView], list[cases.CaseView], list[cases.CaseView]]:
            told = [
                c
                for c in cases.overdue_untold(session, now - self.settings.handover_wait)
                if cases.mark_told_wait(session, c.number, now)
            ]
            reminders = cases.claim_reminder(
                session, now, self.settings.handover_wait, self.settings.handover_remind_every
            )
            cardless = [c for c in cases.open_queue(session) if c.card_message_id is None]
            return told, reminders, cardless

        found = self._db(due)
        if found is None:
            return
        told, reminders, cardless = found
        for case in told:
            if case.chat_id is not None:
                await self._send(case.chat_id, _say("utter_handover_waiting"))
        if reminders:
            await self._post_group(cards.reminder(reminders, now))
        for case in cardless:
            await self._post_card(case, self._transcript(case.number))

    # ---------------------------------------------------------------- plumbing

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
            return cases.CaseView.of(case) if case else None

        return self._db(find)

    def _transcript(self, number: int) -> list[tuple[str, str]]:
        return self._db(lambda s: cases.transcript(s, number)) or []

    def _transcribe(self, number: int, sender: str, text: str) -> None:
        now = self.clock()
        self._db(lambda s: cases.add_message(s, number, sender, text, now))

    def _db(self, work: Callable[[Session], _T]) -> _T | None:
        """Run one unit of work; on a database failure log its kind (never its data) and return None."""
        try:
            with self.sessions.begin() as session:
                return work(session)
        except SQLAlchemyError as exc:
            logger.error("database unavailable: %s", type(exc).__name__)
            return None

    async def _send(self, chat_id: int, message: Say) -> int | None:
        try:
            return await self.outbox.send(chat_id, message)
        except UnreachableError:
            logger.info("a chat could not be reached")
            return None

    async def _post_group(self, message: Say) -> None:
        if self.settings.moderator_chat_id is not None:
            await self._send(self.settings.moderator_chat_id, message)

    async def _edit(self, chat_id: int, message_id: int, message: Say) -> None:
        try:
            await self.outbox.edit(chat_id, message_id, message)
        except Exception as exc:
            logger.warning("could not update a card: %s", type(exc).__name__)
