"""What Signpost keeps about people, and how it goes away: the quick-exit trail, "forget me", the
retention purge, blocks, the moderators' audit trail and transcript key rotation.

Query functions take the caller's session and never commit. Rasa's tracker store is reached through its
own URL (`TRACKER_STORE_URL`, the database endpoints.yml gives Rasa). docs/privacy.md is the data map
these functions enforce.

Command line (`make purge` runs the first):
    python -m bot.privacy purge          delete what is past its retention time, now
    python -m bot.privacy rotate-keys    re-encrypt every transcript line with the first TRANSCRIPT_KEYS key
    python -m bot.privacy new-key        print a new key for TRANSCRIPT_KEYS
    python -m bot.privacy audit [DAYS]   print the moderators' audit trail of the last DAYS days (default 7)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    inspect,
    or_,
    select,
)
from sqlalchemy.orm import Session, sessionmaker

from bot.crypto import Cipher, new_key
from bot.escalation import UK_TIME
from bot.models import (
    CaseEvent,
    CaseMessage,
    ChatTrail,
    HandledUpdate,
    HandoverCase,
    ModeratorAction,
    RelayMessage,
    UserBlock,
)

# The Bot API deletes a message only within 48 hours of sending, so the trail keeps ids that long.
TRAIL_KEEP = dt.timedelta(hours=48)
BLOCK_FOR = dt.timedelta(days=30)
# Telegram keeps an update it could not deliver for 24 hours, so a second delivery comes within that.
UPDATE_KEEP = dt.timedelta(hours=24)

# Rasa's SQL tracker store table (rasa.core.tracker_store.SQLTrackerStore.SQLEvent): the columns used here.
_rasa = MetaData()
EVENTS = Table(
    "events",
    _rasa,
    Column("id", Integer, primary_key=True),
    Column("sender_id", String(255), nullable=False, index=True),
    Column("type_name", String(255), nullable=False),
    Column("timestamp", Float),
    Column("data", Text),
)


# ---------------------------------------------------------------- quick-exit trail


def record_trail(session: Session, user_ref: str, message_ids: Iterable[int], now: dt.datetime) -> None:
    """Remember message ids in a person's chat, so quick exit can delete them.

    One INSERT through SQLAlchemy Core (a row per id): nothing here needs the ORM's unit of work, which
    cost more CPU than the statement on every message.
    """
    rows = [{"user_ref": user_ref, "message_id": m, "at": now} for m in message_ids]
    if rows:
        session.execute(insert(ChatTrail), rows)


def trail(session: Session, user_ref: str, now: dt.datetime) -> list[int]:
    """Return the ids of the person's chat messages the Bot API can still delete, oldest first."""
    return list(
        session.scalars(
            select(ChatTrail.message_id)
            .where(ChatTrail.user_ref == user_ref, ChatTrail.at > now - TRAIL_KEEP)
            .order_by(ChatTrail.id)
        )
    )


def clear_trail(session: Session, user_ref: str) -> int:
    """Forget every message id of a person's chat; return how many."""
    return _deleted(session.execute(delete(ChatTrail).where(ChatTrail.user_ref == user_ref)))


# ---------------------------------------------------------------- updates taken


def note_update(session: Session, bot_id: int, update_id: int, now: dt.datetime) -> None:
    """Note that an update was taken; the INSERT fails (IntegrityError) if any instance took it before."""
    session.execute(insert(HandledUpdate).values(bot_id=bot_id, update_id=update_id, at=now))


# ---------------------------------------------------------------- audit trail


def audit(
    session: Session,
    moderator_id: int,
    action: str,
    now: dt.datetime,
    case_number: int | None = None,
    detail: str | None = None,
) -> None:
    """Record a moderator action (never what anyone wrote)."""
    session.add(
        ModeratorAction(
            at=now, moderator_id=moderator_id, action=action, case_number=case_number, detail=detail
        )
    )


def audit_trail(session: Session, since: dt.datetime) -> list[ModeratorAction]:
    """Return moderator actions since a time, oldest first."""
    return list(
        session.scalars(
            select(ModeratorAction).where(ModeratorAction.at >= since).order_by(ModeratorAction.id)
        )
    )


# ---------------------------------------------------------------- blocks


def block(
    session: Session, user_ref: str, case_number: int | None, moderator_id: int, now: dt.datetime
) -> UserBlock:
    """Block a person for BLOCK_FOR (or extend their block); return the block."""
    row = session.scalars(
        select(UserBlock).where(
            UserBlock.user_ref == user_ref, UserBlock.lifted_at.is_(None), UserBlock.until > now
        )
    ).first()
    if row is None:
        row = UserBlock(user_ref=user_ref, case_number=case_number, blocked_by=moderator_id, at=now)
        session.add(row)
    row.until = now + BLOCK_FOR
    session.flush()
    return row


def unblock(session: Session, block_id: int, moderator_id: int, now: dt.datetime) -> UserBlock | None:
    """Lift a block early; None if there is no such block in force."""
    row = session.get(UserBlock, block_id)
    if row is None or row.lifted_at is not None or row.until <= now:
        return None
    row.lifted_at, row.lifted_by = now, moderator_id
    return row


def blocks_in_force(session: Session, now: dt.datetime) -> list[UserBlock]:
    """Return the blocks in force, newest first."""
    return list(
        session.scalars(
            select(UserBlock)
            .where(UserBlock.lifted_at.is_(None), UserBlock.until > now)
            .order_by(UserBlock.id.desc())
        )
    )


# ---------------------------------------------------------------- forget me


@dataclass(frozen=True)
class Forgotten:
    """What "forget me" deleted."""

    cases: int = 0
    case_lines: int = 0
    conversations: int = 0
    said: int = 0  # the person's own messages in Rasa's record
    trail: int = 0


def relayed_messages(session: Session, user_ref: str) -> list[tuple[int, int]]:
    """Return (chat, message) of every line of the person's cases the bot put in moderators' chats."""
    return [
        (chat_id, message_id)
        for chat_id, message_id in session.execute(
            select(RelayMessage.chat_id, RelayMessage.message_id)
            .join(HandoverCase, HandoverCase.id == RelayMessage.case_id)
            .where(HandoverCase.user_ref == user_ref)
        )
    ]


def forget_cases(session: Session, user_ref: str) -> Forgotten:
    """Delete the person's cases (every move, line and relay link with them) and their chat trail."""
    numbers = list(session.scalars(select(HandoverCase.id).where(HandoverCase.user_ref == user_ref)))
    lines = 0
    if numbers:
        lines = session.scalar(select(func.count()).where(CaseMessage.case_id.in_(numbers))) or 0
        # The foreign keys cascade: the cases' events, lines and relay links go with them.
        session.execute(delete(HandoverCase).where(HandoverCase.id.in_(numbers)))
    return Forgotten(cases=len(numbers), case_lines=lines, trail=clear_trail(session, user_ref))


def forget_conversation(tracker: Session, user_ref: str) -> Forgotten:
    """Delete every event of the person's conversation from Rasa's tracker store."""
    if not _has_events_table(tracker):
        return Forgotten()
    said = tracker.scalar(
        select(func.count()).where(EVENTS.c.sender_id == user_ref, EVENTS.c.type_name == "user")
    )
    events = _deleted(tracker.execute(delete(EVENTS).where(EVENTS.c.sender_id == user_ref)))
    return Forgotten(conversations=1 if events else 0, said=said or 0)


def answer_to(tracker: Session, user_ref: str, message_id: str) -> list[dict[str, Any]] | None:
    """Return the bot events Rasa recorded after the person's message with this id (REST metadata
    `message_id`); None if Rasa never recorded that message."""
    if not _has_events_table(tracker):
        return None
    ours = EVENTS.c.sender_id == user_ref
    candidates = tracker.execute(
        select(EVENTS.c.id, EVENTS.c.data)
        .where(ours, EVENTS.c.type_name == "user", EVENTS.c.data.contains(message_id))
        .order_by(EVENTS.c.id)
    )
    found = next((id_ for id_, data in candidates if _message_id(data) == message_id), None)
    if found is None:
        return None
    answer = []
    after = select(EVENTS.c.type_name, EVENTS.c.data).where(ours, EVENTS.c.id > found).order_by(EVENTS.c.id)
    for kind, data in tracker.execute(after):
        if kind == "user":
            break
        if kind == "bot":
            answer.append(_json(data))
    return answer


def _json(data: str | None) -> dict[str, Any]:
    try:
        value = json.loads(data or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _message_id(data: str | None) -> str | None:
    metadata = _json(data).get("metadata")
    return str(metadata.get("message_id")) if isinstance(metadata, dict) else None


# ---------------------------------------------------------------- retention


@dataclass(frozen=True)
class Purged:
    """How much the retention purge deleted."""

    cases: int = 0
    trail: int = 0
    blocks: int = 0
    audit: int = 0
    updates: int = 0
    conversations: int = 0
    tracker_events: int = 0
    abandoned: int = 0  # open or claimed cases nobody touched for the retention time
    # Where the abandoned cases' cards are: (case number, chat, message), to edit them.
    cards: tuple[tuple[int, int, int], ...] = ()

    def __str__(self) -> str:
        return (
            f"closed cases {self.cases}, untouched open cases {self.abandoned}, "
            f"quick-exit trail {self.trail}, ended blocks {self.blocks}, "
            f"audit entries {self.audit}, update ids {self.updates}, Rasa conversations {self.conversations} "
            f"({self.tracker_events} events)"
        )


def purge(
    session: Session, now: dt.datetime, retention: dt.timedelta, audit_retention: dt.timedelta
) -> Purged:
    """Delete what our database keeps past its time: closed cases, open and claimed ones nobody touched
    for as long, trail ids, ended blocks, old audit entries and update ids."""
    old = (HandoverCase.state == "closed") & (HandoverCase.closed_at <= now - retention)
    ended = or_(UserBlock.lifted_at.is_not(None), UserBlock.until <= now)
    abandoned = abandoned_cases(session, now - retention)
    if abandoned:
        session.execute(delete(HandoverCase).where(HandoverCase.id.in_([c.id for c in abandoned])))
    return Purged(
        abandoned=len(abandoned),
        cards=tuple(
            (c.id, c.card_chat_id, c.card_message_id)
            for c in abandoned
            if c.card_chat_id is not None and c.card_message_id is not None
        ),
        # The foreign keys cascade: each case's events, transcript and relay links go with it.
        cases=_deleted(session.execute(delete(HandoverCase).where(old))),
        trail=_deleted(session.execute(delete(ChatTrail).where(ChatTrail.at <= now - TRAIL_KEEP))),
        blocks=_deleted(session.execute(delete(UserBlock).where(ended))),
        audit=_deleted(
            session.execute(delete(ModeratorAction).where(ModeratorAction.at <= now - audit_retention))
        ),
        updates=_deleted(session.execute(delete(HandledUpdate).where(HandledUpdate.at <= now - UPDATE_KEEP))),
    )


def abandoned_cases(session: Session, cutoff: dt.datetime) -> list[HandoverCase]:
    """Return the open and claimed cases with no move and no line since `cutoff` (and opened before)."""
    moved = select(CaseEvent.case_id).where(CaseEvent.at > cutoff)
    written = select(CaseMessage.case_id).where(CaseMessage.at > cutoff)
    return list(
        session.scalars(
            select(HandoverCase).where(
                HandoverCase.state != "closed",
                HandoverCase.opened_at <= cutoff,
                HandoverCase.id.not_in(moved),
                HandoverCase.id.not_in(written),
            )
        )
    )


def purge_conversations(tracker: Session, now: dt.datetime, retention: dt.timedelta) -> Purged:
    """Delete Rasa conversations with no event for the retention time."""
    if not _has_events_table(tracker):
        return Purged()
    cutoff = (now - retention).timestamp()
    inactive = (
        select(EVENTS.c.sender_id)
        .group_by(EVENTS.c.sender_id)
        .having(func.max(EVENTS.c.timestamp) <= cutoff)
        .subquery()
    )
    senders = list(tracker.scalars(select(inactive.c.sender_id)))
    events = 0
    for chunk in _chunks(senders, 500):
        events += _deleted(tracker.execute(delete(EVENTS).where(EVENTS.c.sender_id.in_(chunk))))
    return Purged(conversations=len(senders), tracker_events=events)


def purge_all(
    sessions: sessionmaker[Session],
    trackers: sessionmaker[Session],
    now: dt.datetime,
    retention: dt.timedelta,
    audit_retention: dt.timedelta,
) -> Purged:
    """Run the whole retention purge, each store in its own unit of work."""
    with sessions.begin() as session:
        ours = purge(session, now, retention, audit_retention)
    with trackers.begin() as tracker:
        theirs = purge_conversations(tracker, now, retention)
    return replace(ours, conversations=theirs.conversations, tracker_events=theirs.tracker_events)


# ---------------------------------------------------------------- key rotation


def rotate_keys(session: Session, cipher: Cipher) -> tuple[int, int]:
    """Re-encrypt every transcript line and chat id with the newest key; return (done, unreadable)."""
    done = unreadable = 0
    for line in session.scalars(select(CaseMessage)):
        token = cipher.rotate(line.body)
        if token is None:
            unreadable += 1
        else:
            line.body, done = token, done + 1
    for case in session.scalars(select(HandoverCase).where(HandoverCase.chat_token.is_not(None))):
        token = cipher.rotate(case.chat_token or "")
        if token is None:
            unreadable += 1
        else:
            case.chat_token, done = token, done + 1
    return done, unreadable


# ---------------------------------------------------------------- plumbing


def _has_events_table(tracker: Session) -> bool:
    """True once Rasa has made its tracker table (it does on its first start)."""
    return inspect(tracker.connection()).has_table(EVENTS.name)


def _deleted(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def main(argv: Sequence[str] | None = None) -> int:
    """Run a privacy command (see the module docstring)."""
    from actions.db import sessionmaker_for
    from bot.settings import SettingsError, get_settings

    parser = argparse.ArgumentParser(prog="python -m bot.privacy", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("purge", help="delete what is past its retention time, now")
    commands.add_parser("rotate-keys", help="re-encrypt case data with the first TRANSCRIPT_KEYS key")
    commands.add_parser("new-key", help="print a new key for TRANSCRIPT_KEYS")
    show = commands.add_parser("audit", help="print the moderators' audit trail")
    show.add_argument("days", nargs="?", type=int, default=7)
    args = parser.parse_args(argv)
    if args.command == "new-key":
        print(new_key())
        return 0
    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sessions = sessionmaker_for(settings.database_url)
    now = dt.datetime.now(dt.UTC)
    if args.command == "purge":
        purged = purge_all(
            sessions,
            sessionmaker_for(settings.tracker_store_url),
            now,
            settings.retention,
            settings.audit_retention,
        )
        print(f"Purged (older than {settings.retention.days} days): {purged}")
    elif args.command == "rotate-keys":
        with sessions.begin() as session:
            done, unreadable = rotate_keys(session, Cipher(settings.transcript_keys))
        print(f"Re-encrypted {done} values with the first key; {unreadable} could not be opened by any key.")
        return 1 if unreadable else 0
    else:
        with sessions.begin() as session:
            for row in audit_trail(session, now - dt.timedelta(days=args.days)):
                case = f" case #{row.case_number}" if row.case_number is not None else ""
                detail = f" ({row.detail})" if row.detail else ""
                at = row.at.astimezone(UK_TIME).strftime("%Y-%m-%d %H:%M")
                print(f"{at}  moderator {row.moderator_id}  {row.action}{case}{detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
