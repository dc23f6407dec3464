"""The relay: routes a person's events (a message, a button, media, an edit) to the parts of the core.

One instance per adapter process, made by `assemble` from its parts, each in its own module and each
owning its state and its share of forgetting a person:

- `Store` (store.py): the case database, Rasa's tracker store, the cipher and the one clock;
- `Turns` (turns.py): one message at a time per person, and the generation leaving moves on;
- `Talk` (talk.py): speaking through the channel (channel.py), noting what a person's chat holds;
- `Gate` (gate.py): flood control and blocks;
- `Conversation` (conversation.py): Rasa, with retries, typing and the crisis answer on a timeout;
- `Handover` (handover.py): cases from the person's side, the card board, the waiting checks;
- `Desk` (desk.py): what moderators do, authorised once;
- `Leaving` (leaving.py): quick exit and "forget me".

The channel is an interface (bot/channel.py): the core never imports Telegram or the terminal. Nothing
here logs what anyone wrote (DESIGN.md, non-negotiable 3).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from actions.db import sessionmaker_for
from bot import cards, cases, privacy
from bot.board import CardBoard
from bot.channel import Channel
from bot.conversation import Conversation
from bot.crypto import Cipher
from bot.desk import Desk
from bot.escalation import CaseState, Sender, parse_feedback_button
from bot.flood import FloodGuard, Verdict
from bot.gate import Gate
from bot.handover import Handover
from bot.leaving import Leaving, PersonalState
from bot.people import Person
from bot.rasa_client import RasaClient
from bot.responses import button_payloads
from bot.roster import Roster
from bot.settings import Settings
from bot.store import DatabaseDownError, Store, utcnow
from bot.talk import Talk, say
from bot.text import clean_text
from bot.turns import Turns

logger = logging.getLogger(__name__)

# Commands a person may type that mean something to Rasa.
COMMANDS = {"/start": "/greet", "/help": "/ask_helplines"}
# Quick exit and "forget me" are the core's own, so they work in every state, Rasa up or down.
QUICK_EXIT = {"/exit", "/quick_exit"}
FORGET = "/forget"
FORGET_YES, FORGET_NO = "forget:yes", "forget:no"
JOBS_EVERY_SECONDS = 10  # where no Telegram job queue runs them (run_jobs)
PURGE_EVERY_SECONDS = 3600


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
    """Routes each person's events to the parts of the core, and runs the core's jobs."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        turns: Turns,
        talk: Talk,
        gate: Gate,
        conversation: Conversation,
        handover: Handover,
        desk: Desk,
        leaving: Leaving,
    ) -> None:
        self.settings = settings
        self.store = store
        self.turns = turns
        self.talk = talk
        self.gate = gate
        self.conversation = conversation
        self.handover = handover
        self.desk = desk
        self.leaving = leaving

    @property
    def channel(self) -> Channel:
        """Return the channel the core speaks through."""
        return self.talk.channel

    @property
    def board(self) -> CardBoard:
        """Return the moderators' card board."""
        return self.handover.board

    @property
    def roster(self) -> Roster:
        """Return who may act as a moderator (the allow-list the desk and the handover check)."""
        return self.desk.roster

    @property
    def cipher(self) -> Cipher:
        """Return the cipher for what the database keeps."""
        return self.store.cipher

    @property
    def parts(self) -> tuple[PersonalState, ...]:
        """Return the parts that keep something of a person's (what "forget me" asks to forget them)."""
        return tuple(self.leaving.parts)

    # ---------------------------------------------------------------- updates

    def arrived(self, person: Person, expects_answer: bool) -> None:
        """An update of the person's arrived (called before any await). It belongs to their generation
        now, so a message sent before a quick exit is dropped by it however long checking it takes; and
        if it is a person's message (not a moderator's), they hear from us in time: the answer, or the
        crisis numbers after RASA_TIMEOUT_SECONDS."""
        self.turns.arrive(person.ref)
        if expects_answer:
            self.conversation.expect(person)

    async def first_delivery(self, bot_id: int, update_id: int) -> bool:
        """False if this bot's update was taken before, by any instance: it was delivered again."""
        now = self.store.now()
        try:
            await self.store.unit(
                lambda s: privacy.note_update(s, bot_id, update_id, now),
                "checking an update",
                keep=(IntegrityError,),
            )
        except IntegrityError:
            logger.info("update %d came again; it was handled already", update_id)
            return False
        except DatabaseDownError:  # never lose a message for want of this check
            logger.error("update handled unchecked")
        return True

    # ---------------------------------------------------------------- people

    async def user_text(self, person: Person, text: str, message_id: int | None = None) -> None:
        """A person wrote: quick exit and "forget me" first; then their case's moderator, or Rasa."""
        text = clean_text(text)
        command = command_of(text)
        if command in QUICK_EXIT:
            await self.leaving.quick_exit(person, message_id)
            return
        if command == FORGET:  # asked even of a blocked person: being forgotten is always their right
            await self.talk.note(person, message_id)
            await self.talk.tell(person, say("utter_ask_forget"))
            return
        if not await self.gate.arrived(person, message_id):
            return
        await self.gate.guarded(person, lambda: self._user_text(person, text))

    async def _user_text(self, person: Person, text: str) -> None:
        if not text:
            await self.talk.tell(person, say("utter_unsupported_message"))
            return
        async with self.turns.lock(person.ref):
            if self.turns.left():
                return
            if await self.handover.to_case(person, text, sender=Sender.USER):
                return
            self.handover.remember(person.ref, text)
            await self.conversation.converse(person, to_rasa(text))

    async def user_button(
        self, person: Person, data: str, title: str | None, message_id: int | None = None
    ) -> None:
        """A person pressed one of our buttons (under message `message_id`): quick exit, forget, a rating,
        or a Rasa payload (checked)."""
        if data in QUICK_EXIT:
            await self.leaving.quick_exit(person, message_id)
            return
        if data == FORGET_YES:
            await self.leaving.forget(person, message_id)
            return
        if data == FORGET_NO:
            await self.talk.tell(person, say("utter_forget_cancelled"))
            return
        if not await self.gate.arrived(person, None):
            return
        await self.gate.guarded(person, lambda: self._user_button(person, data, title))

    async def _user_button(self, person: Person, data: str, title: str | None) -> None:
        rating = parse_feedback_button(data)
        if rating is not None:
            saved = await self.store.db(
                lambda s: cases.set_feedback(s, rating[0], person.ref, rating[1]), "saving a rating"
            )
            await self.talk.tell(person, say("utter_feedback_thanks" if saved else "utter_button_expired"))
            return
        if data not in button_payloads():
            logger.info("ignored a button press with unexpected data (%d characters)", len(data))
            await self.talk.tell(person, say("utter_button_expired"))
            return
        async with self.turns.lock(person.ref):
            if self.turns.left():
                return
            case = await self.handover.open_case(person)
            if case is not None and case.state is CaseState.CLAIMED:
                await self.handover.to_moderator(case, cards.pressed_notice(title or data), Sender.SYSTEM)
                return
            await self.conversation.converse(person, data)

    async def user_media(self, person: Person, kind: str, message_id: int, caption: str | None) -> None:
        """A person sent media: delete it unopened, explain why, tell a moderator only that it happened.

        Media counts against the person's flood bucket like any message. Within it, the media is deleted
        at once; past it, with the rest of their flood in one call at the next release (a few seconds),
        so a flood of stickers costs the channel one call, not one each.
        """
        await self.turns.in_line(person.ref)  # counted against the flood bucket in the order sent
        verdict = self.gate.admit(person.ref)
        if verdict is Verdict.HOLD:
            self.gate.hold_media(person, message_id)
            deleted = True
        else:
            deleted = self.channel.can_delete and await self.channel.delete(person.chat_id, message_id)
        logger.info("deleted=%s media of kind %s from a person", deleted, kind)
        if not await self.gate.arrived(person, None if deleted else message_id):
            return

        async def explain() -> None:
            await self.talk.tell(person, say("utter_media_deleted" if deleted else "utter_media_not_deleted"))
            await self._notice(person, cards.media_notice(kind, deleted))
            if caption:
                await self._user_text(person, clean_text(caption))

        await self.gate.guarded(person, explain, verdict)

    async def user_personal(self, person: Person, kind: str, message_id: int) -> None:
        """A person shared a location or contact: remove it from the chat and say so."""
        deleted = self.channel.can_delete and await self.channel.delete(person.chat_id, message_id)
        if not await self.gate.arrived(person, None if deleted else message_id):
            return

        async def explain() -> None:
            await self.talk.tell(person, say("utter_personal_details_removed"))
            await self._notice(person, cards.media_notice(kind, deleted))

        await self.gate.guarded(person, explain)

    async def user_unsupported(self, person: Person, kind: str, message_id: int | None = None) -> None:
        """A person sent something that isn't text (a poll, dice, …): ask them to write instead."""
        if not await self.gate.arrived(person, message_id):
            return

        async def explain() -> None:
            await self.talk.tell(person, say("utter_unsupported_message"))
            await self._notice(person, cards.unsupported_notice(kind))

        await self.gate.guarded(person, explain)

    async def user_edited(self, person: Person, text: str) -> None:
        """A person edited a message: the moderator sees the new text; the bot asks them to resend."""
        if not await self.gate.arrived(person, None):
            return
        await self.gate.guarded(person, lambda: self._user_edited(person, clean_text(text)))

    async def _user_edited(self, person: Person, text: str) -> None:
        async with self.turns.lock(person.ref):
            if self.turns.left():
                return
            case = await self.handover.open_case(person)
            if case is not None and case.state is CaseState.CLAIMED and text:
                await self.handover.to_moderator(case, cards.edited_notice(text), sender=Sender.USER)
                return
        await self.talk.tell(person, say("utter_edited_message"))

    async def _notice(self, person: Person, notice: str) -> None:
        """Put a note of something we didn't relay into the case, and in the moderator's chat if claimed."""
        async with self.turns.lock(person.ref):
            await self.handover.to_case(person, notice, sender=Sender.SYSTEM)

    async def note_sent(self, person: Person, message_ids: list[int]) -> None:
        """Note messages sent to a person outside the core (the error handler's answer) for quick exit."""
        await self.talk.note_sent(person, message_ids)

    # ---------------------------------------------------------------- jobs

    async def start(self) -> None:
        """At start-up: load the blocks in force; give back every case held by someone who can't carry it;
        have Rasa make its first prediction, so that the first person is not the one who waits for it."""
        await self.gate.refresh_blocks()
        await self.handover.return_lost_claims()
        await self.conversation.warm_up()

    async def check_waiting(self) -> None:
        """Tell people nobody has picked up yet, remind moderators, and owe a card to any case without one."""
        await self.gate.refresh_blocks()
        await self.handover.check_waiting()

    async def retry_pending(self) -> None:
        """Retry messages Rasa couldn't answer (a job)."""
        await self.conversation.retry_pending()

    async def release_held(self) -> None:
        """Work through messages held by flood control (a job)."""
        await self.gate.release_held()

    async def flush_cards(self) -> None:
        """Write the cards and notices the moderators' group is owed, as its limit allows (a job)."""
        await self.board.flush()

    async def purge(self) -> privacy.Purged | None:
        """Delete what is past its retention time (a job, hourly)."""
        return await self.handover.purge()

    async def run_jobs(self, every: float = JOBS_EVERY_SECONDS) -> None:
        """Run the core's jobs on a timer, where no Telegram job queue does (the terminal, the web alone)."""
        purged_at = -float(PURGE_EVERY_SECONDS)
        while True:
            if time.monotonic() - purged_at >= PURGE_EVERY_SECONDS:
                purged_at = time.monotonic()
                await self.purge()
            await asyncio.sleep(every)
            await self.retry_pending()
            await self.release_held()
            await self.check_waiting()

    async def refresh_blocks(self) -> None:
        """Load the blocks in force (other instances block too)."""
        await self.gate.refresh_blocks()


def assemble(
    settings: Settings,
    rasa: RasaClient,
    channel: Channel,
    sessions: sessionmaker[Session],
    clock: Callable[[], dt.datetime] = utcnow,
    trackers: sessionmaker[Session] | None = None,
    flood: FloodGuard | None = None,
) -> Relay:
    """Return the core for a channel: every part made once and handed to those that use it."""
    button_payloads()  # domain.yml is read now, not on the first person's message
    store = Store(
        sessions,
        trackers or sessionmaker_for(settings.tracker_store_url, settings.database_timeouts),
        Cipher(settings.transcript_keys),
        clock,
    )
    turns = Turns()
    talk = Talk(channel, store, turns)
    roster = Roster(settings.moderator_user_ids)
    # Every write into the moderators' group goes through the board: paced, coalesced, never lost.
    board = CardBoard(channel, settings.moderator_chat_id, store, settings.telegram_rate_limit)
    handover = Handover(settings, store, talk, board, roster)
    gate = Gate(store, talk, turns, handover, flood)
    conversation = Conversation(settings, rasa, store, talk, turns, handover)
    desk = Desk(store, talk, roster, handover, gate, conversation)
    leaving = Leaving(store, talk, turns, conversation, gate, handover, parts=(conversation, gate, handover))
    return Relay(settings, store, turns, talk, gate, conversation, handover, desk, leaving)
