"""One store for the core: the case database, Rasa's tracker store, the transcript cipher and the clock.

Every unit of work goes through `unit` (or `tracker_unit`): one transaction, run off the event loop on
the store's own threads (synchronous SQLAlchemy never blocks the loop: a slow or locked database holds up
only the work that asked), bounded by the engine's connect, statement and lock timeouts; a database
failure is logged by its kind only (never its data) and raised as `DatabaseDownError`. `db` is the same
for work that may be skipped while the database is down.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.crypto import Cipher

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# Threads for database work: SQLAlchemy's default pool holds 5 connections (+10 overflow) per engine, so
# more threads would only queue for connections; fewer would queue work that could run.
DATABASE_THREADS = 8


class DatabaseDownError(Exception):
    """The database did not do the work (it is down, or refused); nothing of it was kept."""


def utcnow() -> dt.datetime:
    """Return the time now, in UTC."""
    return dt.datetime.now(dt.UTC)


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
        self._threads = ThreadPoolExecutor(DATABASE_THREADS, thread_name_prefix="database")

    def now(self) -> dt.datetime:
        """Return the time now, by the injected clock."""
        return self.clock()

    def seconds(self) -> float:
        """Return the injected clock in seconds (flood control, retries and reminders all run on it)."""
        return self.clock().timestamp()

    async def unit(
        self,
        work: Callable[[Session], _T],
        what: str = "database work",
        keep: tuple[type[SQLAlchemyError], ...] = (),
    ) -> _T:
        """Run one unit of work in the case database, off the event loop, and return its result.

        A database failure is logged (its kind) and raised as DatabaseDownError; the kinds in `keep`
        (an IntegrityError a caller acts on) are raised as they are.
        """
        return await self.off_loop(self._run, self.sessions, work, what, keep)

    async def tracker_unit(self, work: Callable[[Session], _T], what: str = "tracker store work") -> _T:
        """Run one unit of work in Rasa's tracker store (as `unit`)."""
        return await self.off_loop(self._run, self.trackers, work, what, ())

    async def db(self, work: Callable[[Session], _T], what: str = "database work") -> _T | None:
        """Run one unit of work that may be skipped: None (logged) if the database is down."""
        try:
            return await self.unit(work, what)
        except DatabaseDownError:
            return None

    async def off_loop(self, call: Callable[..., _T], *args: object) -> _T:
        """Run blocking work on the store's threads; the loop serves everyone else meanwhile.

        If the caller is cancelled, the work still finishes (its transaction commits or rolls back whole).
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, functools.partial(call, *args))

    async def ping(self) -> None:
        """Ask the case database a trivial question (the health check); DatabaseDownError if it fails."""
        await self.unit(lambda s: s.execute(text("SELECT 1")), "health check")

    def close(self) -> None:
        """Stop the store's threads once the work given them is done (at shutdown)."""
        self._threads.shutdown(wait=False)

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
