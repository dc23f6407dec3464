"""One store for the core: the case database, Rasa's tracker store, the transcript cipher and the clock.

Every unit of work goes through `unit` (or `tracker_unit`): one transaction, and a database failure
logged by its kind only (never its data) and raised as `DatabaseDownError`. `db` is the same for work
that may be skipped while the database is down.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.crypto import Cipher

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class DatabaseDownError(Exception):
    """The database did not do the work (it is down, or refused); nothing of it was kept."""


def utcnow() -> dt.datetime:
    """Return the time now, in UTC."""
    return dt.datetime.now(dt.timezone.utc)


class Store:
    """The case database and Rasa's tracker store, the cipher for what they keep, and the one clock."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        trackers: sessionmaker[Session],
        cipher: Cipher,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.trackers = trackers
        self.cipher = cipher
        self.clock = clock

    def now(self) -> dt.datetime:
        """Return the time now, by the injected clock."""
        return self.clock()

    def seconds(self) -> float:
        """Return the injected clock in seconds (flood control, retries and reminders all run on it)."""
        return self.clock().timestamp()

    def unit(
        self,
        work: Callable[[Session], _T],
        what: str = "database work",
        keep: tuple[type[SQLAlchemyError], ...] = (),
    ) -> _T:
        """Run one unit of work in the case database and return its result.

        A database failure is logged (its kind) and raised as DatabaseDownError; the kinds in `keep`
        (an IntegrityError a caller acts on) are raised as they are.
        """
        return self._run(self.sessions, work, what, keep)

    def tracker_unit(self, work: Callable[[Session], _T], what: str = "tracker store work") -> _T:
        """Run one unit of work in Rasa's tracker store (as `unit`)."""
        return self._run(self.trackers, work, what, ())

    def db(self, work: Callable[[Session], _T], what: str = "database work") -> _T | None:
        """Run one unit of work that may be skipped: None (logged) if the database is down."""
        try:
            return self.unit(work, what)
        except DatabaseDownError:
            return None

    @staticmethod
    def _run(
        sessions: sessionmaker[Session],
        work: Callable[[Session], _T],
        what: str,
        keep: tuple[type[SQLAlchemyError], ...],
    ) -> _T:
        try:
            with sessions.begin() as session:
                return work(session)
        except keep:
            raise
        except SQLAlchemyError as exc:
            logger.error("%s failed, database unavailable: %s", what, type(exc).__name__)
            raise DatabaseDownError(type(exc).__name__) from None
