"""Whose turn it is: each person's messages one at a time, and the generation that leaving moves on.

Each person has a generation that quick exit and "forget me" move on. Work is bound to the generation it
began in (a context variable follows it through awaits); once the person has left, it stops and sends
nothing. A channel that awaits before its work is bound (Telegram checks each update against the database
first) marks the update's arrival (`arrive`), so a message sent before a quick exit belongs to the
generation before it however the two are interleaved afterwards. Only a number per pseudonym is kept
(and a lock while they are busy): that number is what makes
work from before they left stop, so forgetting them keeps it.

Arriving also takes the update's place in the person's line. Checking an update awaits the database
(in a thread, so a later update's check can finish first); the person's lock is then taken in the
order they arrived, not the order their checks finished: each update waits until the one before it
has its place (the lock, or flood control's queue) or is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

REMEMBERED_PEOPLE = 10_000

# The person and their generation that the running work belongs to.
_TURN: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar("turn", default=None)
_generations = itertools.count(1)


@dataclass
class _Place:
    """An update's place in its person's line: `before` is the place ahead of it (until waited for)."""

    ref: str
    before: asyncio.Future[None] | None
    taken: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def take(self) -> None:
        """The update has its place (or is done): the next one may go."""
        if not self.taken.done():
            self.taken.set_result(None)


# The place in its person's line of the update the running work belongs to.
_PLACE: contextvars.ContextVar[_Place | None] = contextvars.ContextVar("place", default=None)


class Turns:
    """Per person: a lock (one message at a time, in order) and a generation (moved on by leaving)."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._generations: OrderedDict[str, int] = OrderedDict()
        self._tails: dict[str, asyncio.Future[None]] = {}  # the last place in each person's line

    def generation(self, ref: str) -> int:
        """Return the person's generation (0 if they never left, or long ago)."""
        return self._generations.get(ref, 0)

    def _lock(self, ref: str) -> asyncio.Lock:
        """Return the person's lock (idle locks are dropped when too many people are remembered)."""
        lock = self._locks.get(ref)
        if lock is None:
            if len(self._locks) > REMEMBERED_PEOPLE:
                for key in [k for k, v in self._locks.items() if not v.locked()]:
                    del self._locks[key]
            lock = self._locks[ref] = asyncio.Lock()
        return lock

    def busy(self, ref: str) -> bool:
        """Return whether someone holds the person's lock now."""
        lock = self._locks.get(ref)
        return lock is not None and lock.locked()

    @contextlib.asynccontextmanager
    async def lock(self, ref: str) -> AsyncIterator[None]:
        """Hold the person's lock: their updates one at a time, in the order they arrived."""
        await self.in_line(ref)
        async with self._lock(ref):
            self.placed()
            yield

    def arrive(self, ref: str) -> None:
        """Mark the running update as the person's, in the generation it arrived in, and give it the next
        place in their line (before any await). The place is given up when the update's task ends, if
        not before."""
        _TURN.set((ref, self.generation(ref)))
        self.placed()  # an earlier update handled in this context (the terminal's) has had its turn
        place = self._join(ref)
        _PLACE.set(place)
        task = asyncio.current_task()
        if task is not None:
            self._taken_when_done(place, task)

    def _join(self, ref: str) -> _Place:
        """Return a new place at the end of the person's line."""
        before = self._tails.get(ref)
        place = _Place(ref, before)
        self._tails[ref] = place.taken
        place.taken.add_done_callback(lambda f: self._tails.get(ref) is f and self._tails.pop(ref))
        return place

    async def in_line(self, ref: str) -> None:
        """Wait until the person's update before this one has its place (once; at once if none)."""
        place = _PLACE.get()
        if place is None or place.ref != ref or place.before is None:
            return
        before, place.before = place.before, None
        if not before.done():
            await asyncio.wait({before})  # not cancelled with us: it is the other update's

    def placed(self) -> None:
        """The running update has its place in its person's line (flood control holds it, in order)."""
        place = _PLACE.get()
        if place is not None:
            place.take()

    def background(self, ref: str, work: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Start the work in the person's current generation, in their line now: what they send next
        waits for its turn after it."""
        bound = self.bind(ref, work)
        place = self._join(ref)

        async def run() -> None:
            _PLACE.set(place)
            await bound()

        task = asyncio.ensure_future(run())
        self._taken_when_done(place, task)
        return task

    @staticmethod
    def _taken_when_done(place: _Place, task: asyncio.Task[Any]) -> None:
        """Give the place up when its task ends, if it wasn't before (the callback then goes: a task that
        handles many updates, as the terminal's does, doesn't keep one for each)."""

        def done(_task: object) -> None:
            place.take()

        task.add_done_callback(done)
        place.taken.add_done_callback(lambda _f: task.remove_done_callback(done))

    def bind(self, ref: str, work: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """Return the work bound to the person's generation when it arrived (or now): skipped if they have
        left meanwhile."""
        arrived = _TURN.get()
        turn = arrived if arrived is not None and arrived[0] == ref else (ref, self.generation(ref))

        async def run() -> None:
            token = _TURN.set(turn)
            try:
                if not self.left():
                    await work()
            finally:
                _TURN.reset(token)

        return run

    @contextlib.contextmanager
    def during(self, ref: str, generation: int) -> Iterator[None]:
        """Run the block as work of the person's given generation (a retry of what they sent then)."""
        token = _TURN.set((ref, generation))
        try:
            yield
        finally:
            _TURN.reset(token)

    def left(self, ref: str | None = None) -> bool:
        """Return True if the running work belongs to a person (this one, if given) who has left since."""
        turn = _TURN.get()
        return turn is not None and (ref is None or turn[0] == ref) and turn[1] != self.generation(turn[0])

    def leave(self, ref: str) -> None:
        """Start the person's next generation: their earlier work stops. Never waits.

        The leaving work itself (quick exit, forget me) carries on in the new generation.
        """
        self._generations.pop(ref, None)
        self._generations[ref] = next(_generations)
        turn = _TURN.get()
        if turn is not None and turn[0] == ref:
            _TURN.set((ref, self._generations[ref]))
        while len(self._generations) > REMEMBERED_PEOPLE:
            self._generations.popitem(last=False)
