"""The adapter's tables: handover cases, every move of a case, its transcript and the relay map.

They share the database kernel's declarative base with the directory (actions/db.py: one database, one
migration history in `migrations/`); the schema is made by Alembic, never by `create_all` in production
code. Nothing here holds a Telegram
user id or name of a young person in the clear: `user_ref` is the pseudonym; `chat_token` (how to reach
them) is encrypted and kept only while the case is open; transcripts are encrypted (bot/crypto.py).
docs/privacy.md maps every column to how long it is kept and who can see it.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, SmallInteger, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from actions.db import Base, Timestamp

TIMESTAMP = Timestamp()


class HandoverCase(Base):
    """One request for a person: its state, priority and how to reach the young person while open."""

    __tablename__ = "handover_case"
    __table_args__ = (
        Index("ix_handover_case_state_priority", "state", "priority_rank", "opened_at"),
        # At most one open case per person, even with several adapter instances.
        Index(
            "uq_handover_case_open_user",
            "user_ref",
            unique=True,
            sqlite_where=text("state != 'closed'"),
            postgresql_where=text("state != 'closed'"),
        ),
        # A case number is never handed out twice, even after /forget deleted the newest case (SQLite
        # reuses the largest rowid without AUTOINCREMENT; PostgreSQL's sequence never does; 0005).
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_ref: Mapped[str] = mapped_column(String(64), index=True)
    # The person's chat id, encrypted; set to NULL when the case closes.
    chat_token: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(16))
    priority_rank: Mapped[int] = mapped_column(SmallInteger)
    reason: Mapped[str] = mapped_column(String(64))
    opened_at: Mapped[dt.datetime] = mapped_column(TIMESTAMP)
    claimed_by: Mapped[int | None] = mapped_column(BigInteger, index=True)
    claimed_by_name: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP)
    closed_at: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP)
    card_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    card_message_id: Mapped[int | None] = mapped_column(BigInteger)
    user_told_wait_at: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP)
    reminded_at: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP)
    feedback: Mapped[int | None] = mapped_column(SmallInteger)

    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="CaseEvent.id"
    )
    messages: Mapped[list[CaseMessage]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="CaseMessage.id"
    )


class CaseEvent(Base):
    """One move of a case (open, raise, claim, release, close, …): when, and who made it."""

    __tablename__ = "case_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("handover_case.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(TIMESTAMP)
    move: Mapped[str] = mapped_column(String(16))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    # "user" (the pseudonymous young person), "system", or "moderator:<Telegram id>".
    actor: Mapped[str] = mapped_column(String(64))

    case: Mapped[HandoverCase] = relationship(back_populates="events")


class CaseMessage(Base):
    """The case's transcript: what the young person and the moderator wrote, and moderators' notes."""

    __tablename__ = "case_message"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("handover_case.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(TIMESTAMP)
    # "user", "moderator", "note" (private to moderators) or "system" (e.g. a deleted photo).
    sender: Mapped[str] = mapped_column(String(16))
    # The line, encrypted (a Fernet token).
    body: Mapped[str] = mapped_column(Text)

    case: Mapped[HandoverCase] = relationship(back_populates="messages")


class RelayMessage(Base):
    """A message the bot put in a moderator's private chat, so a reply to it finds its case."""

    __tablename__ = "relay_message"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("handover_case.id", ondelete="CASCADE"), index=True)


class ChatTrail(Base):
    """A message in a person's chat that quick exit may delete: its id only (no text, no chat id).

    Kept for 48 hours, as long as the Bot API lets a bot delete a message.
    """

    __tablename__ = "chat_trail"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_ref: Mapped[str] = mapped_column(String(64), index=True)
    message_id: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[dt.datetime] = mapped_column(TIMESTAMP, index=True)


class HandledUpdate(Base):
    """A Telegram update an adapter instance has taken: the bot's id, the update's id and when (nothing of
    what it carried). Update ids count per bot, so a new bot token starts a new count.

    Telegram delivers an update again when it never heard the answer to the first delivery; whichever
    instance gets it then finds it here and leaves it. Kept for 24 hours, as long as Telegram keeps one.
    """

    __tablename__ = "handled_update"

    bot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(TIMESTAMP, index=True)


class UserBlock(Base):
    """A moderator stopped a person's messages reaching the bot and moderators, until a time."""

    __tablename__ = "user_block"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_ref: Mapped[str] = mapped_column(String(64), index=True)
    case_number: Mapped[int | None] = mapped_column(Integer)
    blocked_by: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[dt.datetime] = mapped_column(TIMESTAMP)
    until: Mapped[dt.datetime] = mapped_column(TIMESTAMP, index=True)
    lifted_at: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP)
    lifted_by: Mapped[int | None] = mapped_column(BigInteger)


class ModeratorAction(Base):
    """The audit trail: every moderator action, by whom and when. It never names the young person.

    `case_number` is a plain number, not a foreign key: the row outlives the case, and once the case is
    purged or forgotten the number leads nowhere.
    """

    __tablename__ = "moderator_action"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(TIMESTAMP, index=True)
    moderator_id: Mapped[int] = mapped_column(BigInteger, index=True)
    action: Mapped[str] = mapped_column(String(16))
    case_number: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(String(128))
