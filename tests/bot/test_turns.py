"""A person's updates take their lock in the order they arrived (bot/turns.py), whatever order the
awaits before it finish in: each update's database check runs in a thread, so a later update's check
can finish first (the one-instance burst test in tests/e2e/test_webhook_scale_out.py showed it).

Pure asyncio with events: each step is proven by which task could run, never by time.
"""

from __future__ import annotations

import asyncio

import pytest

from bot.turns import Turns

pytestmark = pytest.mark.anyio

REF = "person"


async def _spin() -> None:
    """Let every task that can run get as far as it can (no I/O here: a few loop passes do it)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def _update(turns: Turns, name: str, order: list[str], checked: asyncio.Event | None = None) -> None:
    """An update as the adapter handles it: arrive, a check that awaits, then its turn with the lock."""
    turns.arrive(REF)
    if checked is not None:
        await checked.wait()  # its database check, slower than the next update's
    await turns.in_line(REF)
    async with turns.lock(REF):
        order.append(name)


async def test_a_slow_check_is_not_overtaken_by_the_next_update() -> None:
    turns, order, checked = Turns(), [], asyncio.Event()
    first = asyncio.create_task(_update(turns, "first", order, checked))
    second = asyncio.create_task(_update(turns, "second", order))
    await _spin()
    assert order == [] and not second.done()  # the second waits its turn behind the first
    checked.set()
    await asyncio.gather(first, second)
    assert order == ["first", "second"]


async def test_an_update_dropped_before_its_turn_lets_the_next_one_go() -> None:
    turns, order = Turns(), []

    async def duplicate() -> None:
        turns.arrive(REF)  # delivered twice: its check says so and it ends without the lock

    await asyncio.create_task(duplicate())
    await asyncio.wait_for(asyncio.create_task(_update(turns, "next", order)), 5)
    assert order == ["next"]


async def test_an_update_that_fails_lets_the_next_one_go() -> None:
    turns, order, checked = Turns(), [], asyncio.Event()

    async def failing() -> None:
        turns.arrive(REF)
        await checked.wait()
        raise RuntimeError("the check failed")

    failed = asyncio.create_task(failing())
    after = asyncio.create_task(_update(turns, "after", order))
    await _spin()
    assert not after.done()
    checked.set()
    await asyncio.wait_for(after, 5)
    assert order == ["after"] and isinstance(failed.exception(), RuntimeError)


async def test_work_started_in_the_background_is_in_line_before_what_comes_next() -> None:
    turns, order, held = Turns(), [], asyncio.Event()
    in_rasa = asyncio.Event()

    async def exit_update() -> None:
        turns.arrive(REF)

        async def reset() -> None:
            async with turns.lock(REF):
                in_rasa.set()
                await held.wait()  # Rasa slow to take the reset
                order.append("reset")

        turns.background(REF, reset)

    await asyncio.create_task(exit_update())  # the exit's handler is done at once
    after = asyncio.create_task(_update(turns, "next message", order))
    await in_rasa.wait()
    await _spin()
    assert order == [] and not after.done()
    held.set()
    await asyncio.wait_for(after, 5)
    assert order == ["reset", "next message"]


async def test_updates_handled_one_after_another_in_one_task_never_wait_for_themselves() -> None:
    # The terminal chat handles each typed line in the same task: the next line's arrival ends the last.
    turns, order = Turns(), []

    async def terminal() -> None:
        for line in ("one", "two", "three"):
            turns.arrive(REF)
            await turns.in_line(REF)
            order.append(line)  # "two" never took the lock: "three" must not wait for it

    await asyncio.wait_for(terminal(), 5)
    assert order == ["one", "two", "three"]
