"""The handover: a person asks for (or needs) a person; their case, its card, and the waiting checks.

Opens or raises the person's case and owes its card to the moderators' group (bot/board.py); relays a
claimed case's lines to the moderator holding it, and gives the case back to the queue when that
moderator is gone (off the allow-list, or unreachable); reminds people and moderators while a case waits;
and keeps a request the database could not save until it can. Its share of a person: their last few
messages (for a card, in memory only) and a request not saved yet.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from bot import cards, cases, privacy
from bot.board import FIRST, CardBoard
from bot.channel import Say, UnreachableError
from bot.escalation import CaseState, HolderGone, Move, Priority, Sender, TransitionError
from bot.people import Person
from bot.roster import Roster
from bot.settings import Settings
from bot.store import DatabaseDownError, Store
from bot.talk import Talk, say

logger = logging.getLogger(__name__)

REMEMBERED_PEOPLE = 10_000
ALERT_WAIT_SECONDS = 2.0  # how long a handover waits for moderators' private alerts before carrying on


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


def _unsaved_note(ref: str) -> tuple[str, str]:
    """Return the board's key for a person's NOT SAVED card."""
    return ("unsaved", ref)


class Handover:
    """Cases from the person's side and the adapter's: request, relay to the holder, requeue, waiting."""

    def __init__(
        self, settings: Settings, store: Store, talk: Talk, board: CardBoard, roster: Roster
    ) -> None:
        self.settings = settings
        self.store = store
        self.talk = talk
        self.board = board
        self.roster = roster
        self._recent: OrderedDict[str, deque[str]] = OrderedDict()
        self._unsaved: dict[str, _Unsaved] = {}
        self._alerts: set[asyncio.Task[None]] = set()  # urgent alerts on their way to moderators

    # ---------------------------------------------------------------- a person's share

    def remember(self, ref: str, text: str) -> None:
        """Keep a person's last few messages in memory only, for a card if they ask for a person."""
        recent = self._recent.pop(ref, None) or deque(maxlen=cards.RECENT_LINES)
        recent.append(text)
        self._recent[ref] = recent
        while len(self._recent) > REMEMBERED_PEOPLE:
            self._recent.popitem(last=False)

    def knows(self, ref: str) -> bool:
        """Return whether anything of the person's is held here."""
        return ref in self._recent or ref in self._unsaved

    async def forget(self, ref: str) -> None:
        """Forget the person's last messages; withdraw a request of theirs that was never saved."""
        self._recent.pop(ref, None)
        if self._unsaved.pop(ref, None) is not None:
            self.board.retract_notice(_unsaved_note(ref), cards.unsaved_forgotten(), FIRST)
            await self.board.flush()

    # ---------------------------------------------------------------- requests

    async def request(self, person: Person, priority: Priority, reason: str) -> None:
        """Open (or raise) the person's case and put its card in the moderators' group."""
        now = self.store.now()
        recent = list(self._recent.get(person.ref, ()))
        try:
            opened = await self._open_or_raise(person, priority, reason, recent, now)
        except DatabaseDownError:
            logger.error("could not save a %s handover", priority.value)
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
        if off_duty and await self.store.db(lambda s: cases.mark_told_wait(s, case.number, now)):
            await self.talk.tell(person, say("utter_handover_out_of_hours"))

    async def _open_or_raise(
        self, person: Person, priority: Priority, reason: str, recent: list[str], now: dt.datetime
    ) -> cases.Opened:
        """Open or raise the person's case. Another instance opening it at the same moment (the unique
        index on open cases answers IntegrityError) means it is open: it is raised instead."""
        cipher = self.store.cipher

        def work(session: Session) -> cases.Opened:
            return cases.open_or_raise(
                session, cipher, person.ref, person.chat_id, priority, reason, recent, now
            )

        try:
            return await self.store.unit(work, "saving a handover", keep=(IntegrityError,))
        except IntegrityError:
            logger.info("a case for the person was opened elsewhere at the same moment; raising it")
        return await self.store.unit(work, "saving a handover")  # a second IntegrityError: DatabaseDownError

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
                await self.talk.channel.send(moderator, alert)
            except UnreachableError:
                self.roster.unreachable_now(moderator)
            except Exception as exc:  # one moderator's chat failing must not stop the others
                logger.warning("urgent alert to a moderator failed: %s", type(exc).__name__)

        reachable = self.roster.reachable()
        logger.warning(
            "case #%d is urgent and its card is late: alerting %d moderators", case.number, len(reachable)
        )
        sending = {asyncio.create_task(alert_one(m)) for m in reachable}
        self._alerts |= sending
        for task in sending:
            task.add_done_callback(self._alerts.discard)
        if sending:
            await asyncio.wait(sending, timeout=ALERT_WAIT_SECONDS)

    # ---------------------------------------------------------------- a case's lines

    async def open_case(self, person: Person) -> cases.CaseView | None:
        """Return the person's open case (None if none, or the database is down)."""
        cipher = self.store.cipher

        def find(session: Session) -> cases.CaseView | None:
            case = cases.open_case_for(session, person.ref)
            return cases.CaseView.of(case, cipher) if case else None

        return await self.store.db(find, "finding a person's case")

    async def transcribe(self, number: int, sender: Sender, text: str) -> None:
        """Add a line to a case's transcript (skipped while the database is down)."""
        now, cipher = self.store.now(), self.store.cipher
        await self.store.db(
            lambda s: cases.add_message(s, cipher, number, sender, text, now), "a transcript line"
        )

    async def transcript(self, number: int) -> list[tuple[Sender, str]]:
        """Return a case's transcript (empty while the database is down)."""
        cipher = self.store.cipher
        lines = await self.store.db(lambda s: cases.transcript(s, cipher, number), "reading a transcript")
        return lines or []

    async def to_case(self, person: Person, text: str, sender: Sender) -> bool:
        """Add a line to the person's open case; True if a moderator holds it (and so got the line)."""
        case = await self.open_case(person)
        if case is None:
            return False
        if case.state is CaseState.CLAIMED:
            # Kept in the case either way; if it went back to the queue, the person was told so.
            self.talk.answered(person.ref)  # a person has their words: no crisis answer from the bot
            await self.to_moderator(case, text, sender)
            return True
        await self.transcribe(case.number, sender, text)
        return False

    async def to_moderator(self, case: cases.CaseView, text: str, sender: Sender) -> bool:
        """Relay a line of a claimed case to the moderator holding it, and keep it in the transcript.

        The allow-list is checked on every line: a holder no longer on it, or whose chat refuses the
        line, gets nothing, and the case goes back to the queue. Returns whether the line was relayed.
        """
        await self.transcribe(case.number, sender, text)
        holder = case.claimed_by
        if holder is None or not self.roster.is_moderator(holder):
            await self.requeue(case, HolderGone.NOT_A_MODERATOR)
            return False
        try:
            parts = await self.talk.channel.send(holder, cards.relayed(case.number, sender, text))
        except UnreachableError:
            logger.error("the moderator holding case #%d can't be reached", case.number)
            self.roster.unreachable_now(holder)
            await self.requeue(case, HolderGone.UNREACHABLE)
            return False
        await self.store.db(
            lambda s: cases.link_relay(s, holder, parts, case.number), "linking a relayed line"
        )
        return True

    # ---------------------------------------------------------------- holders gone

    async def requeue(self, case: cases.CaseView, why: HolderGone) -> None:
        """Give a claimed case back to the queue (its holder can't carry it): a fresh card, the person told.

        If the database fails, the case stays claimed and the next waiting check tries again.
        """
        now, cipher = self.store.now(), self.store.cipher
        try:
            moved = await self.store.unit(
                lambda s: cases.move(
                    s, cipher, case.number, Move.REQUEUE, cases.SYSTEM, now, holder=case.claimed_by
                ),
                f"giving case #{case.number} back to the queue",
            )
        except (LookupError, TransitionError, DatabaseDownError):
            return  # closed, released or taken over meanwhile; or tried again at the next check
        logger.warning("case #%d is back in the queue: its moderator is %s", case.number, why.value)
        self.board.owe_notice(cards.requeued(case.number, why), case.priority.rank)
        self.board.owe_card(case.number, case.priority.rank, new_card=True)
        await self.board.flush()
        if moved.chat_id is not None:
            await self.talk.tell(Person(moved.chat_id, moved.user_ref), say("utter_moderator_left"))

    async def return_lost_claims(self) -> None:
        """Give back to the queue every case held by someone off the allow-list or unreachable (at start-up
        and with every waiting check)."""
        cipher = self.store.cipher
        held = await self.store.db(lambda s: cases.claimed(s, cipher), "finding claimed cases") or []
        for case in held:
            why = self.roster.holder_gone(case.claimed_by)
            if why is not None:
                await self.requeue(case, why)

    # ---------------------------------------------------------------- cards and checks

    async def update_card(self, case: cases.CaseView) -> None:
        """Bring the case's card up to date (claimed, closed): one owed write, however often it changes."""
        self.board.owe_card(case.number, case.priority.rank)
        await self.board.flush()

    async def post_group(self, message: Say, rank: int) -> None:
        """Post a notice to the moderators' group, in turn with the cards (never over its limit)."""
        self.board.owe_notice(message, rank)
        await self.board.flush()

    async def case_forgotten(self, case: cases.CaseView) -> None:
        """Tell moderators a case is gone because the person asked to be forgotten."""
        notice = cards.forgotten(case.number)
        if case.card_chat_id is not None and case.card_message_id is not None:
            self.board.owe_edit(case.card_chat_id, case.card_message_id, notice, FIRST)
            await self.board.flush()
        if case.claimed_by is not None:
            await self.talk.send(case.claimed_by, notice)

    async def check_waiting(self) -> None:
        """Tell people nobody has picked up yet, remind moderators, and owe a card to any case without one."""
        await self.return_lost_claims()
        now = self.store.now()
        for unsaved in list(self._unsaved.values()):
            await self.request(unsaved.person, unsaved.priority, unsaved.reason)
        settings, cipher = self.settings, self.store.cipher

        def due(session: Session) -> _Due:
            told = [
                c
                for c in cases.overdue_untold(session, cipher, now - settings.handover_wait)
                if cases.mark_told_wait(session, c.number, now)
            ]
            every = settings.handover_remind_every
            reminders = cases.claim_reminder(session, cipher, now, settings.handover_wait, every)
            idle = cases.idle_claims(session, cipher, now, settings.claim_idle, every)
            cardless = [c for c in cases.open_queue(session, cipher) if c.card_message_id is None]
            return _Due(told, reminders, idle, cardless)

        found = await self.store.db(due, "the waiting check")
        if found is None:
            return
        for case in found.told:
            if case.chat_id is not None:
                await self.talk.tell(Person(case.chat_id, case.user_ref), say("utter_handover_waiting"))
        self.board.owe_missing(found.cardless)
        if found.reminders:
            await self.post_group(cards.reminder(found.reminders, now), Priority.NORMAL.rank)
        if found.idle:
            rank = min(c.priority.rank for c, _ in found.idle)
            await self.post_group(cards.idle_reminder(found.idle, now), rank)
        await self.board.flush()

    async def purge(self) -> privacy.Purged | None:
        """Delete what is past its retention time (a job, hourly; also `make purge`); edit purged cases'
        cards, which keep no one's words either."""
        now, settings = self.store.now(), self.settings
        try:
            purged = await self.store.off_loop(
                privacy.purge_all,
                self.store.sessions,
                self.store.trackers,
                now,
                settings.retention,
                settings.audit_retention,
            )
        except SQLAlchemyError as exc:
            logger.error("retention purge failed (tried again next hour): %s", type(exc).__name__)
            return None
        logger.info("retention purge: %s", purged)
        days = settings.retention.days
        for number, chat_id, message_id in purged.cards:
            self.board.owe_edit(chat_id, message_id, cards.abandoned(number, days), Priority.NORMAL.rank)
        if purged.cards:
            await self.board.flush()
        return purged
