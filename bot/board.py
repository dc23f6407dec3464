"""The moderators' board: every open case has exactly one card in the moderators' group, kept up to date.

Telegram lets a bot write about 20 messages a minute into one group, and edits count as much as new
messages (TDLib's maintainer: "They share the limit", https://github.com/tdlib/td/issues/2592). Left to
python-telegram-bot's rate limiter, a burst of cases would queue sends for minutes, meet 429s (whose wait
halts every other chat too), and lose cards that ran out of retries. So every write into the group goes
through this board:

* What is owed is kept per card, never as queued messages: a card is rendered from the database when
  its turn comes, so however often a case changes while it waits, it costs one write and shows the
  latest state.
* A case with no card is owed one until it has one (the waiting check sweeps the database for them); a
  write that fails stays owed and is tried again with backoff. A case closed before its card went out
  gets none (a closed case keeps no one's words in the group).
* Writes go most urgent first, then oldest first, no more than the group's limit allows: a sliding
  window a little under Telegram's 20 a minute, so moderators' own commands in the group fit too.
* A 429 closes the group for its retry_after; the card stays owed and nothing else waits for it.

The database stays the source of truth (`cases.set_card` records where a case's card is); this holds only
what is still to be written, in memory, per adapter process.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import logging
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from bot import cards, cases
from bot.channel import Channel, ChatBusyError, MessageGoneError, Say, parts
from bot.escalation import CaseState, Sender
from bot.store import Store

logger = logging.getLogger(__name__)

GROUP_WRITES_PER_MINUTE = 19  # Telegram's 20, less one for moderators' commands answered in the group
WINDOW_SECONDS = 61.0  # a minute and a second: our clock and Telegram's need not agree to the millisecond
WAIT_FOR_WRITES_SECONDS = 2.0  # how long a caller waits for the board before carrying on
RETRY_FIRST_SECONDS = 5.0
RETRY_MAX_SECONDS = 60.0
FIRST = -1  # rank of what must leave the group first: a person's words they asked us to forget


class GroupWindow:
    """At most `limit` writes in any `period` seconds (None: no limit), and shut while Telegram says so."""

    def __init__(self, limit: int | None = GROUP_WRITES_PER_MINUTE, period: float = WINDOW_SECONDS) -> None:
        self.limit = limit
        self.period = period
        self.shut_until = 0.0
        self._writes: deque[float] = deque()

    def wait(self, now: float) -> float:
        """Return how many seconds until the next write may go (0.0: now)."""
        while self._writes and self._writes[0] <= now - self.period:
            self._writes.popleft()
        wait = max(0.0, self.shut_until - now)
        if self.limit is not None and len(self._writes) >= self.limit:
            wait = max(wait, self._writes[len(self._writes) - self.limit] + self.period - now)
        return wait

    def take(self, now: float, writes: int = 1) -> None:
        """Count writes made now."""
        self._writes.extend([now] * writes)

    def shut(self, now: float, seconds: float) -> None:
        """Stop writing for a while (Telegram answered 429 with this retry_after)."""
        self.shut_until = max(self.shut_until, now + seconds)


@dataclass
class _Owed:
    """One write still owed: a case's card (posted or edited), a fixed text on a message, or a notice."""

    key: Hashable
    rank: int
    order: int
    number: int | None = None  # a case's card, rendered from the database when it is written
    new_card: bool = False  # post a new card even if the case has one (its priority went up)
    message: tuple[int, int] | None = None  # (chat, message id) to edit to `text`
    text: Say | None = None  # a fixed text: for `message`, or a notice to post
    note: Hashable | None = None  # a notice that may have to be retracted later (retract_notice)
    failures: int = 0
    not_before: float = 0.0


class CardBoard:
    """Owed writes into the moderators' group, written as Telegram's group limit allows, latest wins."""

    def __init__(
        self,
        writer: Channel,
        group: int | None,
        store: Store,
        paced: bool = True,
    ) -> None:
        self.writer = writer
        self.group = group
        self.store = store
        self.cipher = store.cipher
        self.clock: Callable[[], dt.datetime] = store.clock
        self.window = GroupWindow() if paced else GroupWindow(limit=None)
        self._owed: dict[Hashable, _Owed] = {}
        self._writing: Hashable | None = None
        self._order = itertools.count()
        self._notices = itertools.count()
        self._drain: asyncio.Task[None] | None = None
        self._posted: dict[int, int] = {}  # cards posted whose place the database couldn't record yet
        self._notes: dict[Hashable, int] = {}  # retractable notices posted: where they are
        self._retracted: dict[Hashable, tuple[Say, int]] = {}  # retracted while being posted

    # ---------------------------------------------------------------- what is owed

    def owe_card(self, number: int, rank: int, new_card: bool = False) -> None:
        """A case's card must show its current state: posted if it has none (or a new one), else edited."""
        self._owe(_Owed(("case", number), rank, next(self._order), number=number, new_card=new_card))

    def owe_edit(self, chat_id: int, message_id: int, text: Say, rank: int) -> None:
        """A message in the group must read `text` (an old card superseded, a forgotten case)."""
        key = ("message", chat_id, message_id)
        self._owe(_Owed(key, rank, next(self._order), message=(chat_id, message_id), text=text))

    def owe_notice(self, text: Say, rank: int, note: Hashable | None = None) -> None:
        """A message for the moderators' group (a reminder, an unsaved request), posted once, in turn.

        With `note`, the notice can be retracted later (`retract_notice`), posted or not.
        """
        key = ("notice", next(self._notices)) if note is None else ("note", note)
        self._owe(_Owed(key, rank, next(self._order), text=text, note=note))

    def retract_notice(self, note: Hashable, text: Say, rank: int) -> None:
        """A notice is no longer true: never posted if it is still owed, else edited to read `text`."""
        key = ("note", note)
        if self._owed.pop(key, None) is not None:
            return
        if self._writing == key:  # on its way: edited as soon as it is known where it went
            self._retracted[note] = (text, rank)
            return
        posted = self._notes.pop(note, None)
        if posted is not None and self.group is not None:
            self.owe_edit(self.group, posted, text, rank)

    def owe_missing(self, found: Iterable[cases.CaseView]) -> int:
        """Owe a card to every open case given that has none and none on its way; return how many."""
        missing = [
            c
            for c in found
            if c.state is not CaseState.CLOSED
            and c.card_message_id is None
            and ("case", c.number) not in self._owed
            and ("case", c.number) != self._writing
        ]
        for case in missing:
            logger.warning("case #%d has no card in the group; it is owed one", case.number)
            self.owe_card(case.number, case.priority.rank)
        return len(missing)

    def card_waiting(self, number: int) -> bool:
        """Return whether a case's card is still to be written (owed, or on its way now)."""
        key = ("case", number)
        return key in self._owed or self._writing == key

    def owed(self) -> int:
        """Return how many writes are still owed (the one being written counts)."""
        return len(self._owed) + (self._writing is not None)

    def _owe(self, owed: _Owed) -> None:
        if self.group is None:
            logger.error("no MODERATOR_CHAT_ID: nothing can be written to the moderators' group")
            return
        earlier = self._owed.get(owed.key)
        if earlier is not None:  # latest wins, at the earlier place in the queue
            earlier.rank = min(earlier.rank, owed.rank)
            earlier.new_card = earlier.new_card or owed.new_card
            earlier.text = owed.text if owed.text is not None else earlier.text
            return
        self._owed[owed.key] = owed

    # ---------------------------------------------------------------- writing

    async def flush(self) -> None:
        """Write what is owed and may go now; wait for that a moment at most (the writing carries on)."""
        if self._owed and (self._drain is None or self._drain.done()):
            self._drain = asyncio.create_task(self._write_due())
        if self._drain is not None and not self._drain.done():
            await asyncio.wait({self._drain}, timeout=WAIT_FOR_WRITES_SECONDS)

    async def close(self) -> None:
        """Stop writing (at shutdown). Missing cards are owed again after a restart; notices and edits not."""
        if self._drain is not None and not self._drain.done():
            self._drain.cancel()
            await asyncio.gather(self._drain, return_exceptions=True)

    def _seconds(self) -> float:
        return self.clock().timestamp()

    def _next(self, now: float) -> _Owed | None:
        due = [o for o in self._owed.values() if o.not_before <= now]
        return min(due, key=lambda o: (o.rank, o.order)) if due else None

    async def _write_due(self) -> None:
        """Write owed things, most urgent first, while the window allows; stop when it doesn't."""
        while True:
            now = self._seconds()
            if self.window.wait(now) > 0:
                return
            owed = self._next(now)
            if owed is None:
                return
            del self._owed[owed.key]
            self._writing = owed.key
            try:
                await self._write(owed)
            except ChatBusyError as exc:
                seconds = exc.seconds
                logger.warning("moderators' group at Telegram's limit; writing again in %.0f s", seconds)
                self.window.shut(now, seconds)
                self._again(owed, now, backoff=False)
            except Exception as exc:  # kept owed: the next flush tries again, with backoff
                logger.warning("could not write to the moderators' group: %s", type(exc).__name__)
                self._again(owed, now, backoff=True)
            finally:
                self._writing = None

    def _again(self, owed: _Owed, now: float, backoff: bool) -> None:
        """Owe a write that failed again (merged with anything newer owed for the same card)."""
        if backoff:
            owed.failures += 1
            owed.not_before = now + min(RETRY_FIRST_SECONDS * 2 ** (owed.failures - 1), RETRY_MAX_SECONDS)
        newer = self._owed.pop(owed.key, None)
        if newer is not None:
            owed.rank = min(owed.rank, newer.rank)
            owed.new_card = owed.new_card or newer.new_card
            owed.text = newer.text if newer.text is not None else owed.text
        self._owed[owed.key] = owed

    async def _post(self, text: Say) -> int:
        self.window.take(self._seconds(), parts(self.writer, text.text))
        assert self.group is not None
        return (await self.writer.send(self.group, text))[-1]

    async def _edit(self, chat_id: int, message_id: int, text: Say) -> None:
        self.window.take(self._seconds())
        await self.writer.edit(chat_id, message_id, text)

    async def _write(self, owed: _Owed) -> None:
        if owed.number is not None:
            await self._write_card(owed.number, owed.new_card, owed.rank)
        elif owed.message is not None and owed.text is not None:
            with contextlib.suppress(MessageGoneError):
                await self._edit(*owed.message, owed.text)
        elif owed.text is not None:
            posted = await self._post(owed.text)
            if owed.note is not None:
                self._noted(owed.note, posted)

    def _noted(self, note: Hashable, message_id: int) -> None:
        """Remember where a retractable notice went (or edit it at once if it was retracted meanwhile)."""
        retracted = self._retracted.pop(note, None)
        if retracted is None:
            self._notes[note] = message_id
        elif self.group is not None:
            self.owe_edit(self.group, message_id, *retracted)

    async def _load(self, number: int) -> tuple[cases.CaseView, list[tuple[Sender, str]]] | None:
        """Read a case and its transcript (None if it no longer exists); a database error is raised."""
        cipher = self.cipher

        def load(session: Session) -> tuple[cases.CaseView, list[tuple[Sender, str]]] | None:
            row = cases.get_case(session, number)
            if row is None:
                return None
            return cases.CaseView.of(row, cipher), cases.transcript(session, cipher, number)

        return await self.store.unit(load, "reading a case for its card")

    async def _write_card(self, number: int, new_card: bool, rank: int) -> None:
        """Post or edit a case's card as the database has it now."""
        assert self.group is not None
        group = self.group
        posted = self._posted.pop(number, None)
        if posted is not None:  # posted before, but the database couldn't record where: record it now
            await self._record(number, group, posted)
            new_card = False
        found = await self._load(number)
        if found is None:
            return  # forgotten meanwhile: nothing to show
        case, lines = found
        card = cards.case_card(case, lines, self.clock())
        old = (case.card_chat_id, case.card_message_id)
        if old[0] is not None and old[1] is not None and not new_card:
            try:
                await self._edit(old[0], old[1], card)
                return
            except MessageGoneError:
                logger.warning("the card of case #%d was gone from the group; posting it again", number)
                old = (None, None)
        if case.state is CaseState.CLOSED:
            return  # a case closed before its card went out gets none
        await self._record(number, group, await self._post(card))
        logger.info("case #%d: card posted", number)
        if old[0] is not None and old[1] is not None:
            self.owe_edit(old[0], old[1], cards.superseded_card(case), rank)

    async def _record(self, number: int, group: int, message_id: int) -> None:
        """Note in the database where a case's card is (kept to retry if the database fails)."""
        try:
            saved = await self.store.unit(
                lambda s: cases.set_card(s, number, group, message_id), "noting where a card is"
            )
        except Exception:
            self._posted[number] = message_id  # record it next time; never post it twice
            raise
        if not saved:  # the case was forgotten while its card was on its way
            self.owe_edit(group, message_id, cards.forgotten(number), FIRST)
