"""The moderators' desk: claim, close, release, take over, write to the person, note, block, the queue.

Every action is checked against MODERATOR_USER_IDS once, where it comes in (`@moderators_only`). What
can't be done is raised as a `RefusalError` carrying what to tell the moderator (cards.py words it); the
entry point turns it into the answer. Nothing here keeps anything of a person's.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy.orm import Session

from bot import cards, cases, privacy
from bot.channel import Say, UnreachableError
from bot.conversation import Conversation
from bot.escalation import (
    CaseState,
    Move,
    NoTarget,
    NotHolderError,
    Priority,
    Sender,
    TargetError,
    TransitionError,
    feedback_button,
    parse_case_button,
    pick_case,
)
from bot.gate import Gate
from bot.handover import Handover
from bot.models import UserBlock
from bot.people import Moderator, Person, Quoted
from bot.roster import NotAModeratorError, Roster
from bot.store import DatabaseDownError, Store
from bot.talk import Talk, say
from bot.text import clean_text

logger = logging.getLogger(__name__)

LABEL = "utter_moderator_label"
_P = ParamSpec("_P")
_T = TypeVar("_T")


class RefusalError(Exception):
    """A moderator's action that can't be done; its message is what to tell them."""

    def __init__(self, answer: str) -> None:
        super().__init__(answer)
        self.answer = answer


def moderators_only(
    what: str,
) -> Callable[
    [Callable[Concatenate[Desk, Moderator, _P], Awaitable[str | None]]],
    Callable[Concatenate[Desk, Moderator, _P], Awaitable[str | None]],
]:
    """Check the allow-list once, where a moderator's action comes in; turn a refusal into its answer."""

    def wrap(
        action: Callable[Concatenate[Desk, Moderator, _P], Awaitable[str | None]],
    ) -> Callable[Concatenate[Desk, Moderator, _P], Awaitable[str | None]]:
        @functools.wraps(action)
        async def checked(
            desk: Desk, moderator: Moderator, /, *args: _P.args, **kwargs: _P.kwargs
        ) -> str | None:
            try:
                desk.roster.authorise(moderator.user_id, what)
                return await action(desk, moderator, *args, **kwargs)
            except NotAModeratorError:
                return cards.NOT_A_MODERATOR
            except RefusalError as exc:
                return exc.answer
            except TargetError as exc:
                return cards.no_target(exc)

        return checked

    return wrap


class Desk:
    """What moderators do with cases, from the group's card buttons or their private chat."""

    def __init__(
        self,
        store: Store,
        talk: Talk,
        roster: Roster,
        handover: Handover,
        gate: Gate,
        conversation: Conversation,
    ) -> None:
        self.store = store
        self.talk = talk
        self.roster = roster
        self.handover = handover
        self.gate = gate
        self.conversation = conversation

    # ---------------------------------------------------------------- card buttons

    async def button(self, moderator: Moderator, data: str) -> str:
        """A card's Claim, Take over or Close was pressed: check what and who, then do it."""
        parsed = parse_case_button(data)
        if parsed is None:
            logger.info("ignored a card button with unexpected data (%d characters)", len(data))
            return cards.EXPIRED
        move, number = parsed
        if move is Move.CLAIM:
            answer = await self.claim(moderator, number)
        elif move is Move.TAKEOVER:
            answer = await self.takeover(moderator, number)
        else:
            answer = await self.close(moderator, number)
        return answer or ""

    # ---------------------------------------------------------------- moves

    @moderators_only("claim")
    async def claim(self, moderator: Moderator, number: int) -> str | None:
        """A moderator takes a case: they get the transcript in private, the person is told."""
        now = self.store.now()
        case = await self._moved(moderator, number, Move.CLAIM, now)
        lines = await self.handover.transcript(number)
        try:
            intro = await self.talk.channel.send(moderator.user_id, cards.claimed_intro(case, lines))
        except UnreachableError:
            # Should giving it back fail too, the waiting check returns the case to the queue.
            self.roster.unreachable_now(moderator.user_id)
            cipher = self.store.cipher
            await self.store.db(
                lambda s: cases.move(s, cipher, number, Move.RELEASE, cases.SYSTEM, now), "giving a case back"
            )
            return cards.START_PRIVATE_CHAT
        self.roster.reachable_again(moderator.user_id)
        logger.info("case #%d claimed", number)
        await self._link(moderator, intro, number)
        if case.chat_id is not None:
            await self.talk.tell(Person(case.chat_id, case.user_ref), say("utter_moderator_joined"))
        await self.handover.update_card(case)
        return cards.claimed(number)

    @moderators_only("close")
    async def close(self, moderator: Moderator, number: int) -> str | None:
        """A moderator ends a case: the person is back with the bot and asked how it went.

        A claimed case is closed only by the moderator holding it (another takes it over first).
        """
        return await self._close(moderator, number)

    async def _close(self, moderator: Moderator, number: int) -> str:
        case = await self._moved(moderator, number, Move.CLOSE, self.store.now(), holder=moderator.user_id)
        logger.info("case #%d closed", number)
        if case.chat_id is not None:
            person = Person(case.chat_id, case.user_ref)
            await self.talk.tell(person, say("utter_handover_closed"))
            ratings = tuple((str(n), feedback_button(number, n)) for n in range(1, 6))
            await self.talk.tell(person, say("utter_ask_handover_feedback", ratings))
        await self.conversation.new_session(case.user_ref)
        await self.handover.update_card(case)
        return cards.closed(number)

    @moderators_only("close")
    async def close_named(
        self, moderator: Moderator, number: int | None, replied_to: Quoted | None
    ) -> str | None:
        """`/close [number]` in a private chat: the case named, replied to, or the only one held."""
        return await self._close(moderator, await self._case_number(moderator, number, replied_to))

    @moderators_only("release")
    async def release(
        self, moderator: Moderator, number: int | None, replied_to: Quoted | None
    ) -> str | None:
        """`/release [number]`: the holder gives a case back to the queue; a fresh card goes to the group."""
        number = await self._case_number(moderator, number, replied_to)
        case = await self._moved(moderator, number, Move.RELEASE, self.store.now(), holder=moderator.user_id)
        logger.info("case #%d released to the queue", case.number)
        self.handover.board.owe_card(case.number, case.priority.rank, new_card=True)
        await self.handover.board.flush()
        if case.chat_id is not None:
            await self.talk.tell(Person(case.chat_id, case.user_ref), say("utter_moderator_left"))
        return cards.released(case.number)

    @moderators_only("takeover")
    async def takeover(self, moderator: Moderator, number: int) -> str | None:
        """Another moderator takes a claimed case: the transcript comes to them, the first holder is told."""
        cipher = self.store.cipher

        def find(session: Session) -> cases.CaseView | None:
            row = cases.get_case(session, number)
            return cases.CaseView.of(row, cipher) if row is not None else None

        before = await self._unit(find, f"takeover of case #{number}")
        if before is None:
            raise RefusalError(cards.no_case(number))
        if before.state is not CaseState.CLAIMED or before.claimed_by is None:
            raise RefusalError(cards.not_held(number, before.state))
        if before.claimed_by == moderator.user_id:
            raise RefusalError(cards.already_yours(number))
        now, previous = self.store.now(), before.claimed_by
        detail = f"from moderator {previous}"
        case = await self._moved(moderator, number, Move.TAKEOVER, now, holder=previous, detail=detail)
        try:
            intro = await self.talk.channel.send(
                moderator.user_id, cards.claimed_intro(case, await self.handover.transcript(number))
            )
        except UnreachableError:
            self.roster.unreachable_now(moderator.user_id)
            await self.store.db(
                lambda s: cases.move(
                    s,
                    cipher,
                    number,
                    Move.TAKEOVER,
                    cases.SYSTEM,
                    now,
                    moderator_id=previous,
                    moderator_name=before.claimed_by_name,
                    holder=moderator.user_id,
                ),
                "giving a case back to its holder",
            )
            return cards.START_PRIVATE_CHAT
        self.roster.reachable_again(moderator.user_id)
        logger.info("case #%d taken over", number)
        await self._link(moderator, intro, number)
        if self.roster.is_moderator(previous):
            await self.talk.send(previous, cards.taken_from(number, moderator.name))
        await self.handover.update_card(case)
        return cards.taken_over(number, before.claimed_by_name)

    # ---------------------------------------------------------------- the private chat

    @moderators_only("reply")
    async def text(self, moderator: Moderator, text: str, replied_to: Quoted | None) -> str | None:
        """A moderator wrote in their private chat: it reaches the young person of the case it is for."""
        text = clean_text(text)
        if not text:
            raise RefusalError(cards.TEXT_ONLY)
        case = await self._target(moderator, replied_to)
        if case.chat_id is None:
            raise RefusalError(cards.USER_GONE)
        label = say(LABEL)
        try:
            sent = await self.talk.channel.send(case.chat_id, Say(f"{label.text} {text}", label.buttons))
        except UnreachableError:
            raise RefusalError(cards.USER_GONE) from None
        self.roster.reachable_again(moderator.user_id)  # they wrote to the bot: their chat is open again
        await self.talk.note_sent(Person(case.chat_id, case.user_ref), sent)
        await self.handover.transcribe(case.number, Sender.MODERATOR, text)
        await self._audit(moderator, "reply", case.number)
        return None

    @moderators_only("note")
    async def note(self, moderator: Moderator, text: str, replied_to: Quoted | None) -> str | None:
        """A moderator adds a private note to the case (the young person never sees it)."""
        text = clean_text(text)
        if not text:
            raise RefusalError(cards.NOTE_HOW)
        case = await self._target(moderator, replied_to)
        await self.handover.transcribe(case.number, Sender.NOTE, text)
        await self._audit(moderator, "note", case.number)
        return cards.noted(case.number)

    # ---------------------------------------------------------------- the queue

    async def queue(self, user_id: int) -> str:
        """`/queue`: the open cases, in the order they should be taken."""
        return await self._queue(Moderator(user_id, "")) or ""

    @moderators_only("queue")
    async def _queue(self, moderator: Moderator) -> str | None:
        cipher = self.store.cipher
        open_cases = await self._unit(lambda s: cases.open_queue(s, cipher), "reading the queue")
        await self._audit(moderator, "queue", detail=f"{len(open_cases)} open")
        return cards.queue_text(open_cases, self.store.now())

    async def queue_in_group(self, user_id: int) -> None:
        """`/queue` in the moderators' group: the answer is posted in turn with the cards; a refusal goes
        to the asker's private chat (if they have one), never into the group."""
        if not self.roster.is_moderator(user_id):
            logger.warning("refused queue in the group: not on MODERATOR_USER_IDS; answered privately")
            await self.talk.send(user_id, Say(cards.NOT_A_MODERATOR))
            return
        await self.handover.post_group(Say(await self.queue(user_id)), Priority.NORMAL.rank)

    # ---------------------------------------------------------------- blocks

    @moderators_only("block")
    async def block(self, moderator: Moderator, number: int | None, replied_to: Quoted | None) -> str | None:
        """`/block [number]`: the case's person can't reach the bot or moderators for a while; it closes.

        A claimed case's person is blocked only by the moderator holding it (another takes it over first).
        """
        case_number = await self._case_number(moderator, number, replied_to)
        now, cipher = self.store.now(), self.store.cipher

        def work(session: Session) -> tuple[cases.CaseView, UserBlock]:
            row = cases.get_case(session, case_number)
            if row is None:
                raise RefusalError(cards.no_case(case_number))
            if row.state == CaseState.CLAIMED.value and row.claimed_by != moderator.user_id:
                raise RefusalError(cards.not_yours(case_number, "block", row.claimed_by_name))
            blocked = privacy.block(session, row.user_ref, case_number, moderator.user_id, now)
            detail = f"block #{blocked.id} until {blocked.until:%Y-%m-%d}"
            privacy.audit(session, moderator.user_id, "block", now, case_number, detail)
            return cases.CaseView.of(row, cipher), blocked

        case, blocked = await self._unit(work, "block")
        self.gate.blocked(case.user_ref, blocked.until)
        logger.info("case #%d: its person was blocked (block #%d)", case_number, blocked.id)
        if case.state is not CaseState.CLOSED:
            try:
                closed = await self._moved(moderator, case_number, Move.CLOSE, now, holder=moderator.user_id)
            except RefusalError:
                closed = None
            if closed is not None:
                await self.handover.update_card(closed)
                if closed.chat_id is not None:
                    await self.gate.tell_blocked(Person(closed.chat_id, closed.user_ref))
        return cards.blocked(case_number, blocked.id, blocked.until)

    @moderators_only("unblock")
    async def unblock(self, moderator: Moderator, block_id: int | None) -> str | None:
        """`/unblock <block number>`: lift a block early."""
        if block_id is None:
            raise RefusalError(cards.UNBLOCK_HOW)
        now = self.store.now()

        def work(session: Session) -> str | None:
            lifted = privacy.unblock(session, block_id, moderator.user_id, now)
            if lifted is None:
                return None
            detail = f"block #{block_id}"
            privacy.audit(session, moderator.user_id, "unblock", now, lifted.case_number, detail)
            return lifted.user_ref

        ref = await self.store.db(work, "unblock")
        if ref is None:
            raise RefusalError(cards.no_block(block_id))
        self.gate.lifted(ref)
        return cards.unblocked(block_id)

    @moderators_only("blocks")
    async def blocks(self, moderator: Moderator) -> str | None:
        """`/blocks`: the blocks in force."""
        now = self.store.now()
        found = await self._unit(
            lambda s: [cards.BlockView.of(b) for b in privacy.blocks_in_force(s, now)], "listing blocks"
        )
        await self._audit(moderator, "blocks", detail=f"{len(found)} in force")
        return cards.blocks_text(found)

    # ---------------------------------------------------------------- plumbing

    async def _unit(self, work: Callable[[Session], _T], what: str) -> _T:
        """Run one unit of work; the database being down is a refusal (nothing changed)."""
        try:
            return await self.store.unit(work, what)
        except DatabaseDownError:
            raise RefusalError(cards.DATABASE_DOWN) from None

    async def _moved(
        self,
        moderator: Moderator,
        number: int,
        name: Move,
        now: dt.datetime,
        holder: int | None = None,
        detail: str | None = None,
    ) -> cases.CaseView:
        """Make a moderator's move on a case and return it; raise a RefusalError saying why it can't be done.

        With `holder`, a claimed case moves only while that moderator holds it.
        """
        cipher = self.store.cipher

        def work(session: Session) -> cases.CaseView:
            moved = cases.move(
                session,
                cipher,
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

        try:
            return await self._unit(work, f"{name.value} of case #{number}")
        except LookupError:
            raise RefusalError(cards.no_case(number)) from None
        except NotHolderError as exc:
            raise RefusalError(cards.not_yours(number, name.value, exc.holder_name)) from None
        except TransitionError:
            raise RefusalError(cards.cannot_move(number, name)) from None

    async def _case_number(self, moderator: Moderator, number: int | None, replied_to: Quoted | None) -> int:
        """Return the case a command means (named, replied to, or the only one held); raise TargetError."""
        if number is not None:
            return number
        return (await self._target(moderator, replied_to)).number

    async def _target(self, moderator: Moderator, replied_to: Quoted | None) -> cases.CaseView:
        """Return the case a moderator's message is for; raise TargetError (why there is none) or a
        RefusalError (the database is down)."""
        cipher = self.store.cipher

        def find(session: Session) -> cases.CaseView:
            held = cases.held_by(session, moderator.user_id)
            replied = None
            if replied_to is not None:
                replied = cases.case_for_relay(session, moderator.user_id, replied_to.message_id)
                # A line answered at once may not be linked yet (the channel's answer to our send is still
                # on its way, or another instance sent it): its number then says the case; pick_case checks
                # that the moderator holds it.
                replied = replied or replied_to.case_number
                if replied is None:
                    raise TargetError(NoTarget.NOT_A_CASE)
            number = pick_case(held, replied)
            row = cases.get_case(session, number)
            assert row is not None
            return cases.CaseView.of(row, cipher)

        try:
            return await self.store.unit(find, "finding a moderator's case")
        except DatabaseDownError:
            raise RefusalError(cards.DATABASE_DOWN) from None

    async def _link(self, moderator: Moderator, message_ids: list[int], number: int) -> None:
        await self.store.db(
            lambda s: cases.link_relay(s, moderator.user_id, message_ids, number), "linking a relayed line"
        )

    async def _audit(
        self, moderator: Moderator, action: str, number: int | None = None, detail: str | None = None
    ) -> None:
        now = self.store.now()
        await self.store.db(
            lambda s: privacy.audit(s, moderator.user_id, action, now, number, detail), "audit"
        )
