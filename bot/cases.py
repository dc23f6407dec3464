"""Cases in the database: open, raise, claim, release, take over, close, the queue, transcript, relay map.

Every function takes the caller's session and never commits. State changes are conditional updates
(`... WHERE state = 'queued'`), so two moderators (or two adapter instances) can't both claim a case.
Transcript lines and the person's chat id are stored encrypted: functions that read or write them take
the relay's `Cipher`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from bot.crypto import Cipher
from bot.escalation import (
    CaseState,
    Move,
    NotHolderError,
    Priority,
    Sender,
    TransitionError,
    next_state,
    raises_priority,
)
from bot.models import CaseEvent, CaseMessage, HandoverCase, RelayMessage

# Who made a move, as the case history names them: the young person, the adapter, or a moderator.
USER = Sender.USER.value
SYSTEM = Sender.SYSTEM.value


def moderator_actor(moderator_id: int) -> str:
    """Return how a moderator is named in the case history."""
    return f"{Sender.MODERATOR.value}:{moderator_id}"


@dataclass(frozen=True)
class CaseView:
    """A case as the adapter shows it (a copy, safe to use after the session ends)."""

    number: int
    user_ref: str
    chat_id: int | None
    state: CaseState
    priority: Priority
    reason: str
    opened_at: dt.datetime
    claimed_by: int | None
    claimed_by_name: str | None
    claimed_at: dt.datetime | None
    closed_at: dt.datetime | None
    card_chat_id: int | None
    card_message_id: int | None

    @classmethod
    def of(cls, case: HandoverCase, cipher: Cipher) -> CaseView:
        """Return the view of a case row, the person's chat id decrypted."""
        chat = cipher.open(case.chat_token) if case.chat_token else ""
        return cls(
            number=case.id,
            user_ref=case.user_ref,
            chat_id=int(chat) if chat.lstrip("-").isdigit() else None,
            state=CaseState(case.state),
            priority=Priority(case.priority),
            reason=case.reason,
            opened_at=case.opened_at,
            claimed_by=case.claimed_by,
            claimed_by_name=case.claimed_by_name,
            claimed_at=case.claimed_at,
            closed_at=case.closed_at,
            card_chat_id=case.card_chat_id,
            card_message_id=case.card_message_id,
        )


def _record(
    session: Session, case: HandoverCase, move: Move, before: str | None, actor: str, now: dt.datetime
) -> None:
    session.add(
        CaseEvent(
            case_id=case.id, at=now, move=move.value, from_state=before, to_state=case.state, actor=actor
        )
    )


def open_case_for(session: Session, user_ref: str) -> HandoverCase | None:
    """Return the person's open (queued or claimed) case, if any."""
    return session.scalars(
        select(HandoverCase).where(
            HandoverCase.user_ref == user_ref, HandoverCase.state != CaseState.CLOSED.value
        )
    ).first()


@dataclass(frozen=True)
class Opened:
    """The result of a handover request: the case, and whether it is new or more urgent than before."""

    case: CaseView
    created: bool
    raised: bool


def open_or_raise(
    session: Session,
    cipher: Cipher,
    user_ref: str,
    chat_id: int,
    priority: Priority,
    reason: str,
    recent: Sequence[str],
    now: dt.datetime,
) -> Opened:
    """Open a queued case for the person, or raise the priority of the one already open."""
    case = open_case_for(session, user_ref)
    if case is not None:
        case.chat_token = cipher.seal(str(chat_id))
        if not raises_priority(priority, Priority(case.priority)):
            return Opened(CaseView.of(case, cipher), created=False, raised=False)
        case.priority, case.priority_rank, case.reason = priority.value, priority.rank, reason
        _record(session, case, Move.RAISE, case.state, USER, now)
        session.flush()
        return Opened(CaseView.of(case, cipher), created=False, raised=True)
    case = HandoverCase(
        user_ref=user_ref,
        chat_token=cipher.seal(str(chat_id)),
        state=CaseState.QUEUED.value,
        priority=priority.value,
        priority_rank=priority.rank,
        reason=reason,
        opened_at=now,
    )
    session.add(case)
    session.flush()
    _record(session, case, Move.OPEN, None, USER, now)
    for line in recent:
        add_message(session, cipher, case.id, Sender.USER, line, now)
    session.flush()
    return Opened(CaseView.of(case, cipher), created=True, raised=False)


def get_case(session: Session, number: int) -> HandoverCase | None:
    """Return a case by its number."""
    return session.get(HandoverCase, number)


def move(
    session: Session,
    cipher: Cipher,
    number: int,
    name: Move,
    actor: str,
    now: dt.datetime,
    *,
    moderator_id: int | None = None,
    moderator_name: str | None = None,
    holder: int | None = None,
) -> CaseView:
    """Make a move on a case (claim, release, requeue, takeover, close) or raise TransitionError/LookupError.

    With `holder`, a claimed case moves only while that moderator holds it (NotHolderError otherwise).
    The update only applies if the case is still as we read it, so of concurrent moves one wins, once.
    """
    case = session.get(HandoverCase, number)
    if case is None:
        raise LookupError(f"no case #{number}")
    before = CaseState(case.state)
    after = next_state(before, name)
    held = before is CaseState.CLAIMED
    if holder is not None and held and case.claimed_by != holder:
        raise NotHolderError(number, case.claimed_by_name)
    values: dict[str, object] = {"state": after.value}
    name = Move(name)
    if name in {Move.CLAIM, Move.TAKEOVER}:
        values |= {"claimed_by": moderator_id, "claimed_by_name": moderator_name, "claimed_at": now}
    elif name in {Move.RELEASE, Move.REQUEUE}:
        values |= {"claimed_by": None, "claimed_by_name": None, "claimed_at": None}
    elif name is Move.CLOSE:
        values |= {"closed_at": now, "chat_token": None}
    conditions = [HandoverCase.state == before.value]
    if held:
        conditions.append(HandoverCase.claimed_by == case.claimed_by)
    if not _update_if(session, number, *conditions, **values):
        raise TransitionError(f"case #{number} changed meanwhile")
    chat_id = CaseView.of(case, cipher).chat_id
    session.refresh(case)
    _record(session, case, name, before.value, actor, now)
    view = CaseView.of(case, cipher)
    # The closed case forgets how to reach the person; the caller still needs it once, to tell them.
    return view if name is not Move.CLOSE else replace(view, chat_id=chat_id)


def _update_if(session: Session, number: int, *conditions: ColumnElement[bool], **values: object) -> bool:
    """Set values on a case only while the conditions still hold (compare-and-set); True if it did."""
    result = session.execute(
        update(HandoverCase)
        .where(HandoverCase.id == number, *conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _unchanged(
    column: InstrumentedAttribute[dt.datetime | None], seen: dt.datetime | None
) -> ColumnElement[bool]:
    """Return a condition that the column still holds what we read (compare-and-set)."""
    return column.is_(None) if seen is None else column == seen


def held_by(session: Session, moderator_id: int) -> list[int]:
    """Return the numbers of the cases a moderator holds now."""
    return list(
        session.scalars(
            select(HandoverCase.id)
            .where(HandoverCase.state == CaseState.CLAIMED.value, HandoverCase.claimed_by == moderator_id)
            .order_by(HandoverCase.id)
        )
    )


def claimed(session: Session, cipher: Cipher) -> list[CaseView]:
    """Return every claimed case (to check that whoever holds it still can)."""
    rows = session.scalars(
        select(HandoverCase).where(HandoverCase.state == CaseState.CLAIMED.value).order_by(HandoverCase.id)
    )
    return [CaseView.of(c, cipher) for c in rows]


def open_queue(session: Session, cipher: Cipher) -> list[CaseView]:
    """Return the open cases, most urgent first, then the longest waiting (claimed ones after queued)."""
    rows = session.scalars(
        select(HandoverCase)
        .where(HandoverCase.state != CaseState.CLOSED.value)
        .order_by(
            (HandoverCase.state == CaseState.CLAIMED.value),
            HandoverCase.priority_rank,
            HandoverCase.opened_at,
            HandoverCase.id,
        )
    )
    return [CaseView.of(c, cipher) for c in rows]


def add_message(
    session: Session, cipher: Cipher, number: int, sender: Sender, body: str, now: dt.datetime
) -> None:
    """Append a line to a case's transcript (encrypted)."""
    session.add(CaseMessage(case_id=number, at=now, sender=Sender(sender).value, body=cipher.seal(body)))


def transcript(
    session: Session, cipher: Cipher, number: int, limit: int | None = None
) -> list[tuple[Sender, str]]:
    """Return (sender, text) of a case's transcript, oldest first (the last `limit` lines if given)."""
    query = select(CaseMessage.sender, CaseMessage.body).where(CaseMessage.case_id == number)
    if limit is None:
        rows = list(session.execute(query.order_by(CaseMessage.id)).all())
    else:
        rows = list(reversed(session.execute(query.order_by(CaseMessage.id.desc()).limit(limit)).all()))
    return [(Sender(sender), cipher.open(body)) for sender, body in rows]


def set_card(session: Session, number: int, chat_id: int, message_id: int) -> bool:
    """Remember where a case's card is, so it can be updated; False if the case no longer exists."""
    return _update_if(session, number, card_chat_id=chat_id, card_message_id=message_id)


def link_relay(session: Session, chat_id: int, message_ids: Iterable[int], number: int) -> None:
    """Remember that messages in a moderator's chat (every part of a split one) belong to a case."""
    for message_id in message_ids:
        session.merge(RelayMessage(chat_id=chat_id, message_id=message_id, case_id=number))


def case_for_relay(session: Session, chat_id: int, message_id: int) -> int | None:
    """Return the case a message in a moderator's chat belongs to, if it is one the bot relayed."""
    row = session.get(RelayMessage, (chat_id, message_id))
    return row.case_id if row else None


def mark_told_wait(session: Session, number: int, now: dt.datetime) -> bool:
    """Mark that the person was told nobody has picked up yet; False if someone already did."""
    return _update_if(
        session,
        number,
        HandoverCase.state == CaseState.QUEUED.value,
        HandoverCase.user_told_wait_at.is_(None),
        user_told_wait_at=now,
    )


def overdue_untold(session: Session, cipher: Cipher, older_than: dt.datetime) -> list[CaseView]:
    """Return queued cases opened before a time whose person hasn't been told about the wait."""
    rows = session.scalars(
        select(HandoverCase).where(
            HandoverCase.state == CaseState.QUEUED.value,
            HandoverCase.user_told_wait_at.is_(None),
            HandoverCase.opened_at <= older_than,
        )
    )
    return [CaseView.of(c, cipher) for c in rows]


def claim_reminder(
    session: Session, cipher: Cipher, now: dt.datetime, wait: dt.timedelta, every: dt.timedelta
) -> list[CaseView]:
    """Return queued cases due a reminder and mark them reminded (compare-and-set: once across instances)."""
    due = [
        c
        for c in session.scalars(
            select(HandoverCase).where(
                HandoverCase.state == CaseState.QUEUED.value, HandoverCase.opened_at <= now - wait
            )
        )
        if c.reminded_at is None or c.reminded_at <= now - every
    ]
    return [
        CaseView.of(case, cipher)
        for case in due
        if _update_if(
            session, case.id, _unchanged(HandoverCase.reminded_at, case.reminded_at), reminded_at=now
        )
    ]


def unanswered_since(session: Session, case: HandoverCase) -> dt.datetime | None:
    """Return since when a claimed case's person has been owed an answer by its moderator (None: not).

    Owed from the claim while the moderator hasn't written since; after that, from the person's first
    line after the moderator's last.
    """
    if case.claimed_at is None:
        return None
    lines = select(CaseMessage.id, CaseMessage.at).where(CaseMessage.case_id == case.id)
    answered = session.execute(
        lines.where(CaseMessage.sender == Sender.MODERATOR.value, CaseMessage.at >= case.claimed_at)
        .order_by(CaseMessage.id.desc())
        .limit(1)
    ).first()
    if answered is None:
        return case.claimed_at
    asked = session.execute(
        lines.where(CaseMessage.sender == Sender.USER.value, CaseMessage.id > answered.id)
        .order_by(CaseMessage.id)
        .limit(1)
    ).first()
    return asked.at if asked is not None else None


def idle_claims(
    session: Session, cipher: Cipher, now: dt.datetime, idle: dt.timedelta, every: dt.timedelta
) -> list[tuple[CaseView, dt.datetime]]:
    """Return claimed cases whose person has waited `idle` for an answer, with since when, and mark them
    reminded (again after `every`; compare-and-set: once across instances)."""
    due: list[tuple[HandoverCase, dt.datetime]] = []
    for case in session.scalars(
        select(HandoverCase).where(
            HandoverCase.state == CaseState.CLAIMED.value, HandoverCase.claimed_at <= now - idle
        )
    ):
        since = unanswered_since(session, case)
        if since is None or since > now - idle:
            continue
        seen = case.reminded_at
        if seen is None or seen <= now - every or seen < since:
            due.append((case, since))
    return [
        (CaseView.of(case, cipher), since)
        for case, since in due
        if _update_if(
            session, case.id, _unchanged(HandoverCase.reminded_at, case.reminded_at), reminded_at=now
        )
    ]


def set_feedback(session: Session, number: int, user_ref: str, score: int) -> bool:
    """Store the person's 1–5 rating of a closed case of theirs, once; False if not theirs or done."""
    return _update_if(
        session,
        number,
        HandoverCase.user_ref == user_ref,
        HandoverCase.state == CaseState.CLOSED.value,
        HandoverCase.feedback.is_(None),
        feedback=score,
    )
