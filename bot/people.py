"""Who the core talks with: a person (by chat and pseudonym), a moderator, the message a moderator quoted."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Person:
    """Someone talking to the bot: where to answer, and their pseudonym (all Rasa and the database see)."""

    chat_id: int
    ref: str


@dataclass(frozen=True)
class Moderator:
    """A user acting as a moderator (the desk checks the allow-list)."""

    user_id: int
    name: str


@dataclass(frozen=True)
class Quoted:
    """The message a moderator replied to: its id, and the case a relayed line of ours names (#n ›)."""

    message_id: int
    case_number: int | None = None
