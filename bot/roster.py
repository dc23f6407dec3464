"""Who may act as a moderator (MODERATOR_USER_IDS), and whose private chat can't be reached just now."""

from __future__ import annotations

import logging

from bot.escalation import HolderGone, holder_gone, is_moderator

logger = logging.getLogger(__name__)


class NotAModeratorError(Exception):
    """Someone not on MODERATOR_USER_IDS tried a moderator's action."""


class Roster:
    """The allow-list, and the moderators whose private chat refused a message."""

    def __init__(self, allowlist: frozenset[int]) -> None:
        self.allowlist = allowlist
        # Moderators whose private chat refused a message: the cases they hold go back to the queue.
        self.unreachable: set[int] = set()

    def is_moderator(self, user_id: int | None) -> bool:
        """Return True only for a user id on MODERATOR_USER_IDS."""
        return is_moderator(user_id, self.allowlist)

    def authorise(self, user_id: int, what: str) -> None:
        """Raise NotAModeratorError (logged, without anyone's words) unless the user is a moderator."""
        if not self.is_moderator(user_id):
            logger.warning("refused %s: not on MODERATOR_USER_IDS", what)
            raise NotAModeratorError(what)

    def holder_gone(self, holder: int | None) -> HolderGone | None:
        """Return why a case's holder can no longer carry it, or None if they still can."""
        return holder_gone(holder, self.allowlist, self.unreachable)

    def reachable(self) -> list[int]:
        """Return the moderators not known to be unreachable, in order."""
        return sorted(self.allowlist - self.unreachable)

    def unreachable_now(self, user_id: int) -> None:
        """Note that a moderator's private chat refused a message."""
        self.unreachable.add(user_id)

    def reachable_again(self, user_id: int) -> None:
        """Note that a moderator's private chat took a message (or they wrote to the bot)."""
        self.unreachable.discard(user_id)
