"""The event loop never waits for the database (offline): a database call that blocks holds up only the
work that made it, never another person's reply; and the health check answers through the loop.

Blocking is real: another connection holds SQLite's write lock on Rasa's tracker store, so "forget me"
waits on it (for up to its lock timeout) while someone else writes to the bot. Order is proven with
events, not clocks: the other person's reply must be there while "forget me" is still waiting, and the
lock is released only afterwards. `wait_for` bounds only turn a regression into a failure, not a hang.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from actions.db import engine_for
from actions.settings import Timeouts
from bot.health import HealthServer
from bot.responses import response_text
from tests.bot.conftest import PERSON

pytestmark = pytest.mark.anyio

OTHER_PERSON = 4343
BOUND = 30.0  # seconds; only so that a regression fails instead of hanging
FORGOTTEN = response_text("utter_forget_done").split("{", 1)[0]


async def until(condition: Callable[[], bool], bound: float = BOUND) -> None:
    """Wait until the condition holds (polled; `bound` only turns a regression into a failure)."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), bound)


@contextmanager
def write_locked(url: str) -> Iterator[None]:
    """Hold the database's write lock from another connection (as another process's long write).

    SQLite: a write transaction (BEGIN IMMEDIATE). PostgreSQL: every table of the schema locked in
    EXCLUSIVE mode, which lets others read and makes every write wait, as SQLite's lock does.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        with engine_for(url).connect() as locker:
            tables = locker.scalars(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            ).all()
            assert tables
            quoted = ", ".join(locker.dialect.identifier_preparer.quote(t) for t in tables)
            locker.execute(text(f"LOCK TABLE {quoted} IN EXCLUSIVE MODE"))
            try:
                yield
            finally:
                locker.rollback()
        return
    path = parsed.database
    assert path
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()


async def test_a_blocked_database_call_does_not_hold_up_another_persons_reply(
    harness: Any, trackers_url: str
) -> None:
    # The tracker store waits as long as the test needs for the lock (its lock timeout), never the loop.
    h = await harness(database_timeouts=Timeouts(lock=BOUND * 2))
    await h.text(PERSON, "hello")
    with write_locked(trackers_url):
        forgetting = asyncio.create_task(h.press(PERSON, "forget:yes"))
        # "forget me" has cleared the chat (before it turns to the tracker store) ...
        await until(lambda: bool(h.request.deleted(PERSON)))
        # ... and another person is answered while it still waits for the lock.
        await asyncio.wait_for(h.text(OTHER_PERSON, "hi"), BOUND)
        assert h.request.texts(OTHER_PERSON) == "echo: hi"
        assert not forgetting.done()
    await asyncio.wait_for(forgetting, BOUND)  # the lock released: "forget me" finishes, and says so
    assert h.request.sent(PERSON)[-1]["text"].startswith(FORGOTTEN)


async def _get(port: int, path: str = "/healthz") -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    answer = (await asyncio.wait_for(reader.read(), BOUND)).decode()
    writer.close()
    status = int(answer.split(" ", 2)[1])
    return status, answer.split("\r\n\r\n", 1)[1]


async def test_the_health_check_answers_through_the_loop_when_the_database_answers(harness: Any) -> None:
    h = await harness()
    health = HealthServer(h.relay.store.ping, "127.0.0.1", 0, timeout=BOUND)
    await health.start()
    try:
        assert await _get(health.port) == (200, "ok\n")
        assert (await _get(health.port, "/other"))[0] == 404
    finally:
        await health.stop()


async def test_the_health_check_fails_when_the_database_does_not_answer() -> None:
    async def down() -> None:
        await asyncio.Event().wait()  # a database that never answers

    health = HealthServer(down, "127.0.0.1", 0, timeout=0.05)
    await health.start()
    try:
        status, body = await _get(health.port)
    finally:
        await health.stop()
    assert status == 503 and "database" in body
