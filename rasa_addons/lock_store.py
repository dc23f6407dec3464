"""A Redis lock store that stays correct when several Rasa servers share it.

Rasa 3.6's own `RedisLockStore` reads a conversation's ticket lock, changes it in Python and writes it
back. Two servers that take a ticket for one conversation at the same moment can both read the same
lock, so both get the same ticket number and run the conversation's turns side by side (RasaHQ/rasa
issue #9213; the fix, `ConcurrentRedisLockStore`, was reverted from Rasa Open Source in PR #11428).
A lost or doubled message in a safeguarding conversation is not acceptable, so this store keeps
Rasa's ticket scheme and makes each change to a lock one Redis transaction (WATCH/MULTI/EXEC, retried
by redis-py when another server changed the lock in between).

Named in `endpoints.prod.yml` as `type: rasa_addons.lock_store.SerialRedisLockStore`, with the same
settings as Rasa's `redis` lock store.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)

# Rasa polls a busy lock once a second; a person's next message should not wait that long.
WAIT_SECONDS = 0.05

Result = TypeVar("Result")


class SerialRedisLockStore(RedisLockStore):
    """Rasa's Redis ticket lock, with every read-change-write of a lock done atomically."""

    def __init__(self, endpoint_config: EndpointConfig) -> None:
        """Connect with the settings of Rasa's own `redis` lock store (url is the host)."""
        super().__init__(host=endpoint_config.url or "localhost", **endpoint_config.kwargs)

    def _change(
        self, conversation_id: str, change: Callable[[TicketLock | None], tuple[TicketLock | None, Result]]
    ) -> Result:
        """Apply `change` to the stored lock in one transaction; a lock it returns empty is deleted."""
        key = self.key_prefix + conversation_id

        def attempt(pipe: Any) -> Result:
            raw = pipe.get(key)
            lock, result = change(TicketLock.from_dict(json.loads(raw)) if raw else None)
            pipe.multi()
            if lock is None or not lock.is_someone_waiting():
                pipe.delete(key)
            else:
                pipe.set(key, lock.dumps())
            return result

        return self.red.transaction(attempt, key, value_from_callable=True)  # type: ignore[no-any-return]

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        """Take the next ticket for the conversation; no two servers can get the same number."""

        def issue(lock: TicketLock | None) -> tuple[TicketLock, int]:
            lock = lock or self.create_lock(conversation_id)
            return lock, lock.issue_ticket(lock_lifetime)

        try:
            return self._change(conversation_id, issue)
        except Exception as error:  # Rasa answers a LockError without crashing the server
            raise LockError(f"Error while acquiring lock. Error:\n{error}") from error

    def update_lock(self, conversation_id: str) -> None:
        """Drop expired tickets without losing one another server has just issued."""

        def expire(lock: TicketLock | None) -> tuple[TicketLock | None, None]:
            if lock is not None:
                lock.remove_expired_tickets()
            return lock, None

        self._change(conversation_id, expire)

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        """Hand the conversation to the next ticket."""

        def finish(lock: TicketLock | None) -> tuple[TicketLock | None, None]:
            if lock is not None:
                lock.remove_ticket_for(ticket_number)
            return lock, None

        self._change(conversation_id, finish)

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        """Finish the ticket; the lock goes only if nobody is waiting, decided in the same transaction."""
        self.finish_serving(conversation_id, ticket_number)

    @asynccontextmanager
    async def lock(
        self,
        conversation_id: str,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: float = WAIT_SECONDS,
    ) -> AsyncIterator[TicketLock]:
        """Wait for the conversation's turn, polling every WAIT_SECONDS rather than every second."""
        async with super().lock(conversation_id, lock_lifetime, wait_time_in_seconds) as held:
            yield held
