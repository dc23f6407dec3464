"""Whose turn it is: each person's messages one at a time, and the generation that leaving moves on.

Each person has a generation that quick exit and "forget me" move on. Work is bound to the generation it
began in (a context variable follows it through awaits); once the person has left, it stops and sends
nothing. A channel that awaits before its work is bound (Telegram checks each update against the database
first) marks the update's arrival (`arrive`), so a message sent before a quick exit belongs to the
generation before it however the two are interleaved afterwards. Only a number per pseudonym is kept
(and a lock while they are busy): that number is what makes
work from before they left stop, so forgetting them keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator

REMEMBERED_PEOPLE = 10_000

# The person and their generation that the running work belongs to.
_TURN: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar("turn", default=None)
_generations = itertools.count(1)


class Turns:
    """Per person: a lock (one message at a time, in order) and a generation (moved on by leaving)."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._generations: OrderedDict[str, int] = OrderedDict()

    def generation(self, ref: str) -> int:
        """Return the person's generation (0 if they never left, or long ago)."""
        return self._generations.get(ref, 0)

    def lock(self, ref: str) -> asyncio.Lock:
        """Return the person's lock (idle locks are dropped when too many people are remembered)."""
        lock = self._locks.get(ref)
        if lock is None:
            if len(self._locks) > REMEMBERED_PEOPLE:
                for key in [k for k, v in self._locks.items() if not v.locked()]:
                    del self._locks[key]
            lock = self._locks[ref] = asyncio.Lock()
        return lock

    def arrive(self, ref: str) -> None:
        """Mark the running update as the person's, in the generation it arrived in (before any await)."""
        _TURN.set((ref, self.generation(ref)))

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
