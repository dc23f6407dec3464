"""Telegram's 429s, per chat (offline, with the production rate limiter the app builds).

A chat in a 429 storm answers every write with "retry after 15 s". Nothing here reads a clock: the tests
look at the calls the fake Bot API recorded (how often the storming chat was asked, whether a write was
still waiting) while other chats are served. `wait_for` bounds only turn a regression (every chat waiting
out another chat's 15 s) into a failure instead of a hang.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from telegram.request import RequestData

from bot import cards
from bot.board import GroupWindow
from bot.flood import Limits
from bot.models import HandoverCase
from bot.ratelimit import ChatRateLimiter
from bot.responses import response_text
from tests.bot.conftest import (
    GROUP,
    MODERATOR,
    OTHER_MODERATOR,
    PERSON,
    STRANGER,
    Call,
    FakeRasa,
    RecordingRequest,
    handover,
    message,
)
from tests.bot.test_handover import case_number, rows

pytestmark = pytest.mark.anyio

BOUND = 5.0  # seconds, a third of the storm's retry_after; only so that a regression fails, not hangs
STORM_SECONDS = 15
ASK, DANGER = "i want a person", "i want to die"
OTHER, THIRD = 4343, 4444
NEUTRAL = response_text("utter_quick_exit")


class Storm(RecordingRequest):
    """The recording Bot API, where chats in `storms` answer every write with 429 (retry after 15 s)."""

    def __init__(self) -> None:
        super().__init__()
        self.storms: set[int] = set()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        name = url.rsplit("/", 1)[-1]
        params = dict(request_data.parameters) if request_data else {}
        if name in {"sendMessage", "editMessageText"} and params.get("chat_id") in self.storms:
            self.calls.append(Call(name, params, ok=False))
            body = {
                "ok": False,
                "error_code": 429,
                "description": f"Too Many Requests: retry after {STORM_SECONDS}",
                "parameters": {"retry_after": STORM_SECONDS},
            }
            return 429, json.dumps(body).encode()
        return await super().do_request(
            url, method, request_data, read_timeout, write_timeout, connect_timeout, pool_timeout
        )

    def tries(self, chat_id: int) -> int:
        """Return how many writes into a chat were tried (answered or refused)."""
        return sum(1 for c in self.calls if c.method == "sendMessage" and c.params["chat_id"] == chat_id)


def scripted() -> FakeRasa:
    return FakeRasa(
        replies={ASK: handover("normal", "request_human"), DANGER: handover("urgent", "risk_immediate")}
    )


async def limited(harness: Any, **changes: Any) -> tuple[Any, Storm]:
    """Return a harness with the production rate limiter on (TELEGRAM_RATE_LIMIT's default)."""
    storm = Storm()
    h = await harness(scripted(), request=storm, telegram_rate_limit=True, **changes)
    assert isinstance(h.app.bot.rate_limiter, ChatRateLimiter)
    return h, storm


async def test_a_429_storm_in_the_group_delays_no_other_chat_nor_a_quick_exit(harness) -> None:
    h, api = await limited(harness)
    api.storms.add(GROUP)
    await asyncio.wait_for(h.text(PERSON, ASK), BOUND)  # its card meets the storm ...
    assert api.tries(GROUP) == 1 and h.relay.board.owed() == 1  # ... and stays owed, not waited out
    assert "I've asked a person" in api.texts(PERSON)

    await asyncio.wait_for(h.text(OTHER, "hi"), BOUND)
    assert api.sent(OTHER)[-1]["text"] == "echo: hi"
    await asyncio.wait_for(h.text(THIRD, "hello"), BOUND)
    await asyncio.wait_for(h.text(THIRD, "/exit"), BOUND)
    assert api.sent(THIRD)[-1]["text"] == NEUTRAL
    await asyncio.wait_for(h.relay.flush_cards(), BOUND)  # the job, during the group's 15 s
    assert api.tries(GROUP) == 1  # refused at once by the limiter: Telegram was not asked again


async def test_a_429_storm_in_one_private_chat_holds_only_that_chat(harness) -> None:
    h, api = await limited(harness)
    await h.text(PERSON, ASK)
    await h.text(MODERATOR, f"/claim {case_number(h)}")
    api.storms.add(MODERATOR)
    relaying = asyncio.create_task(h.text(PERSON, "are you there"))  # waits out the moderator's 15 s
    while api.tries(MODERATOR) == len(api.sent(MODERATOR)):
        await asyncio.sleep(0.01)
    await asyncio.wait_for(h.text(OTHER, "hi"), BOUND)
    assert api.sent(OTHER)[-1]["text"] == "echo: hi"
    assert not relaying.done()  # the line for the moderator is still waiting its turn
    relaying.cancel()
    await asyncio.gather(relaying, return_exceptions=True)


async def test_an_urgent_case_reaches_each_moderator_privately_while_the_group_is_limited(harness) -> None:
    h, api = await limited(harness)
    api.storms.add(GROUP)
    api.blocked.add(OTHER_MODERATOR)  # never started a private chat with the bot
    await asyncio.wait_for(h.text(PERSON, DANGER), BOUND)
    (case,) = rows(h.relay.settings.database_url, HandoverCase)
    number = case.id
    alert = api.sent(MODERATOR)[-1]["text"]
    assert f"#{number}" in alert and "URGENT" in alert and f"/claim {number}" in alert
    assert DANGER not in alert  # the person's words stay out of it: /claim brings the transcript
    assert api.sent(OTHER_MODERATOR) == [] and api.sent(STRANGER) == []
    assert STRANGER not in {c.params.get("chat_id") for c in api.calls}
    await asyncio.wait_for(h.text(MODERATOR, f"/claim {number}"), BOUND)  # and it can be taken there
    assert DANGER in api.texts(MODERATOR)


async def test_an_urgent_case_whose_card_went_out_needs_no_private_alert(harness) -> None:
    h, api = await limited(harness)
    await h.text(PERSON, DANGER)
    assert "URGENT" in api.sent(GROUP)[-1]["text"]
    assert api.sent(MODERATOR) == []


async def test_queue_refusals_are_answered_privately_and_answers_in_the_group_use_the_boards_budget(
    harness,
) -> None:
    h, api = await limited(harness)
    await h.text(STRANGER, "/queue", chat_id=GROUP)
    assert api.sent(GROUP) == []
    assert api.sent(STRANGER)[-1]["text"] == cards.NOT_A_MODERATOR

    h.relay.board.window = GroupWindow(limit=1)
    await h.text(PERSON, ASK)  # the card takes the group's one write
    await h.text(MODERATOR, "/queue", chat_id=GROUP)
    assert len(api.sent(GROUP)) == 1  # the answer waits for the group's budget
    h.clock.advance(seconds=61)
    await h.relay.flush_cards()
    assert "#" in api.sent(GROUP)[-1]["text"] and len(api.sent(GROUP)) == 2


async def test_media_counts_against_the_flood_bucket(harness) -> None:
    h = await harness()
    photo = [{"file_id": "f", "file_unique_id": "u", "width": 9, "height": 9}]
    burst, extra = Limits().burst, 30
    ids = []
    for _ in range(burst + extra):
        sent = message(PERSON, photo=photo)
        ids.append(int(sent["message_id"]))
        await h.feed({"message": sent})
    one_by_one = [p for p in api_calls(h, "deleteMessage")]
    assert len(one_by_one) <= burst + 1  # the rest wait for the person's bucket, not one call each
    assert len(h.request.sent(PERSON)) <= burst + 1  # explanations paced as any message
    h.clock.advance(seconds=5)
    await h.relay.release_held()
    assert set(ids) <= h.request.deleted(PERSON)  # none stays in the chat past the next tick
    assert len(api_calls(h, "deleteMessages")) == 1  # in one call


def api_calls(h: Any, method: str) -> list[dict[str, Any]]:
    return [c.params for c in h.request.calls if c.method == method]


async def test_media_waiting_for_deletion_goes_with_a_quick_exit(harness) -> None:
    h = await harness()
    photo = [{"file_id": "f", "file_unique_id": "u", "width": 9, "height": 9}]
    ids = []
    for _ in range(Limits().burst + 5):
        sent = message(PERSON, photo=photo)
        ids.append(int(sent["message_id"]))
        await h.feed({"message": sent})
    await h.text(PERSON, "/exit")
    assert set(ids) <= h.request.deleted(PERSON)
