"""Case cards under Telegram's group limit (offline): a burst of cases never loses or doubles a card.

The Bot API here is the recording fake with the moderators' group limited like Telegram's: 20 writes
(new messages and edits alike) a minute by the test's clock, then 429 with retry_after. The group can
also be switched off (502 until switched on again), and a group write can be held in flight.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from telegram import Bot
from telegram.error import RetryAfter
from telegram.request import RequestData

from actions.db import sessionmaker_for
from bot import board
from bot.app import build_application
from bot.board import GroupWindow
from bot.cards import Say
from bot.handlers import RELAY
from bot.models import HandoverCase
from bot.outbox import ChatPacer, TelegramOutbox
from tests.bot.conftest import (
    GROUP,
    MODERATOR,
    TOKEN,
    Call,
    Clock,
    FakeRasa,
    Harness,
    RecordingRequest,
    handover,
    settings_for,
)

pytestmark = pytest.mark.anyio

ASK = "i want a person"
FIRST_PERSON = 30_000


def scripted() -> FakeRasa:
    return FakeRasa(
        replies={
            ASK: handover("normal", "request_human"),
            "i want to die": handover("urgent", "risk_immediate"),
        }
    )


class LimitedGroup(RecordingRequest):
    """The recording Bot API, with the moderators' group limited (and breakable) as described above."""

    def __init__(self, clock: Clock, per_minute: int = 20) -> None:
        super().__init__()
        self.clock = clock
        self.per_minute = per_minute
        self.group_writes: list[float] = []
        self.rejected_429 = 0
        self.down = False
        self.gate: asyncio.Event | None = None  # set: group writes wait for it
        self.gone: set[int] = set()  # card messages deleted from the group by hand

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
        if name in {"sendMessage", "editMessageText"} and params.get("chat_id") == GROUP:
            if self.gate is not None:
                await self.gate.wait()
            refused = self._refused(name, params)
            if refused is not None:
                self.calls.append(Call(name, params, ok=False))
                return refused
        return await super().do_request(
            url, method, request_data, read_timeout, write_timeout, connect_timeout, pool_timeout
        )

    def _refused(self, name: str, params: dict[str, Any]) -> tuple[int, bytes] | None:
        if self.down:
            return 502, json.dumps({"ok": False, "error_code": 502, "description": "Bad Gateway"}).encode()
        if name == "editMessageText" and int(params["message_id"]) in self.gone:
            body = {"ok": False, "error_code": 400, "description": "Bad Request: message to edit not found"}
            return 400, json.dumps(body).encode()
        now = self.clock().timestamp()
        recent = [t for t in self.group_writes if t > now - 60]
        if len(recent) >= self.per_minute:
            self.rejected_429 += 1
            wait = max(1, math.ceil(recent[0] + 60 - now))
            body = {
                "ok": False,
                "error_code": 429,
                "description": f"Too Many Requests: retry after {wait}",
                "parameters": {"retry_after": wait},
            }
            return 429, json.dumps(body).encode()
        self.group_writes.append(now)
        return None

    # What the tests read back.
    def card_posts(self) -> dict[int, list[int]]:
        """Return, per case number, the ids of the cards posted for it (delivered ones only)."""
        posts: dict[int, list[int]] = {}
        for call in self.calls:
            text = call.params.get("text", "")
            to_group = call.method == "sendMessage" and call.ok and call.params["chat_id"] == GROUP
            if to_group and text.startswith("Case #") and " · " in text.splitlines()[0]:
                number = int(text.split("#", 1)[1].split(" ", 1)[0])
                posts.setdefault(number, []).append(int(call.result["message_id"]))
        return posts

    def card_edits(self) -> list[dict[str, Any]]:
        """Return the parameters of every edit the bot tried in the group."""
        return [
            c.params for c in self.calls if c.method == "editMessageText" and c.params["chat_id"] == GROUP
        ]


Build = Callable[..., Any]


@pytest.fixture
async def limited(cases_url: str, trackers_url: str) -> AsyncIterator[Build]:
    """Build and start an application whose moderators' group is limited; all are shut down after."""
    started: list[Any] = []

    async def build(per_minute: int = 20, **changes: Any) -> tuple[Harness, LimitedGroup]:
        clock, rasa = Clock(), scripted()
        request = LimitedGroup(clock, per_minute)
        app = build_application(
            settings_for(cases_url, trackers_url, **changes),
            request=request,
            rasa_transport=httpx.MockTransport(rasa.handle),
            clock=clock,
        )
        await app.initialize()
        assert app.post_init is not None
        await app.post_init(app)
        started.append(app)
        app.bot_data[RELAY].channel.first_delay = 0.001
        return Harness(app, request, rasa, clock), request

    yield build
    for app in started:
        assert app.post_shutdown is not None
        await app.post_shutdown(app)
        await app.shutdown()


def open_cases(url: str) -> dict[int, HandoverCase]:
    with sessionmaker_for(url).begin() as session:
        rows = session.scalars(select(HandoverCase).where(HandoverCase.state != "closed"))
        return {row.id: row for row in rows}


def case_of(url: str, person_ref: str) -> int:
    with sessionmaker_for(url).begin() as session:
        return int(session.scalars(select(HandoverCase.id).where(HandoverCase.user_ref == person_ref)).one())


async def ask_at_once(h: Harness, people: range, text: str = ASK) -> None:
    await asyncio.gather(*(h.text(person, text) for person in people))


async def minutes_pass(h: Harness) -> None:
    """Let a minute go by and the card job run, until nothing is owed (at most ten minutes)."""
    for _ in range(10):
        if h.relay.board.owed() == 0:
            return
        h.clock.advance(seconds=61)
        await h.relay.flush_cards()
    assert h.relay.board.owed() == 0, "cards still owed after ten minutes"


async def test_a_burst_of_60_cases_ends_with_exactly_one_card_each_in_a_limited_group(limited) -> None:
    h, api = await limited()
    people = range(FIRST_PERSON, FIRST_PERSON + 60)
    await ask_at_once(h, people)
    assert len(api.card_posts()) == 20 and api.rejected_429 >= 1  # the group's minute is used up
    for person in people:  # every person got their answer at once all the same
        assert "I've asked a person" in api.texts(person)
    api.down = True  # and then the group fails outright for a while
    h.clock.advance(seconds=61)
    await h.relay.flush_cards()
    api.down = False
    await h.relay.check_waiting()  # the sweep must not add a second card for anything already owed
    await minutes_pass(h)
    posts = api.card_posts()
    opened = open_cases(h.relay.settings.database_url)
    assert len(opened) == 60
    assert sorted(posts) == sorted(opened)  # none lost
    assert all(len(ids) == 1 for ids in posts.values()), "a case got two cards"
    for number, case in opened.items():  # and the database knows where each card is
        assert (case.card_chat_id, case.card_message_id) == (GROUP, posts[number][0])
    assert api.card_edits() == []  # nothing changed, so nothing was edited


async def test_changes_to_a_waiting_card_cost_one_edit_and_the_latest_state_wins(limited) -> None:
    h, api = await limited(per_minute=2)
    people = range(FIRST_PERSON, FIRST_PERSON + 3)
    await ask_at_once(h, people)
    posted = sorted(api.card_posts())
    first, second = posted
    third = next(iter(set(open_cases(h.relay.settings.database_url)) - set(posted)))
    # The group is over its limit: the first card is claimed and closed, the third claimed, meanwhile.
    await h.text(MODERATOR, f"/claim {first}")
    await h.text(MODERATOR, f"/close {first}")
    await h.text(MODERATOR, f"/claim {third}")
    assert f"Case #{first} is closed." in api.texts(MODERATOR)  # moderators never wait for the board
    await minutes_pass(h)
    edits = [e for e in api.card_edits() if e["message_id"] == api.card_posts()[first][0]]
    assert len(edits) == 1 and "Closed at" in edits[0]["text"]  # one edit, the last state
    assert "Claimed by" in api.sent(GROUP)[-1]["text"]  # the third's card went out already claimed
    assert all(len(ids) == 1 for ids in api.card_posts().values())
    assert second in api.card_posts()


async def test_a_card_that_could_not_be_posted_is_owed_until_it_is(limited) -> None:
    h, api = await limited()
    api.down = True
    await h.text(FIRST_PERSON, ASK)
    assert api.card_posts() == {} and "I've asked a person" in api.texts(FIRST_PERSON)
    assert h.relay.board.owed() == 1
    api.down = False
    await h.relay.flush_cards()  # still backing off: nothing yet
    assert api.card_posts() == {}
    h.clock.advance(seconds=10)
    await h.relay.flush_cards()
    assert list(api.card_posts().values()) == [[api.sent_ids(GROUP)[0]]]
    assert h.relay.board.owed() == 0


async def test_the_waiting_check_owes_a_card_to_a_case_that_has_none(limited) -> None:
    h, api = await limited()
    await h.text(FIRST_PERSON, ASK)
    number = next(iter(api.card_posts()))
    with sessionmaker_for(h.relay.settings.database_url).begin() as session:  # e.g. lost by a restart
        row = session.get(HandoverCase, number)
        assert row is not None
        row.card_chat_id, row.card_message_id = None, None
    await h.relay.check_waiting()
    assert len(api.card_posts()[number]) == 2
    await h.relay.check_waiting()
    assert len(api.card_posts()[number]) == 2


async def test_the_waiting_check_does_not_post_a_card_that_is_on_its_way(limited, monkeypatch) -> None:
    monkeypatch.setattr(board, "WAIT_FOR_WRITES_SECONDS", 0.1)
    h, api = await limited()
    api.gate = asyncio.Event()  # the card's post is held in flight
    asking = asyncio.create_task(h.text(FIRST_PERSON, ASK))
    await asyncio.sleep(0.3)
    assert asking.done()  # the person was answered without waiting for the group
    checking = asyncio.create_task(h.relay.check_waiting())
    await asyncio.sleep(0.1)
    api.gate.set()
    await checking
    await h.relay.flush_cards()
    assert [len(ids) for ids in api.card_posts().values()] == [1]
    assert api.card_edits() == []  # not even a wasted edit of the card that was on its way


async def test_a_case_closed_before_its_card_went_out_never_shows_in_the_group(limited) -> None:
    h, api = await limited(per_minute=1)
    await ask_at_once(h, range(FIRST_PERSON, FIRST_PERSON + 2))
    waiting = next(iter(set(open_cases(h.relay.settings.database_url)) - set(api.card_posts())))
    await h.text(MODERATOR, f"/close {waiting}")
    await minutes_pass(h)
    assert waiting not in api.card_posts()
    assert h.relay.board.owed() == 0


async def test_the_most_urgent_cards_go_out_first_when_the_group_is_busy(limited) -> None:
    h, api = await limited(per_minute=1)
    await ask_at_once(h, range(FIRST_PERSON, FIRST_PERSON + 3))  # one card now, two wait
    await h.text(FIRST_PERSON + 10, "i want to die")
    h.clock.advance(seconds=61)
    await h.relay.flush_cards()
    assert "URGENT" in api.sent(GROUP)[1]["text"].splitlines()[0]


async def test_the_board_keeps_the_group_under_its_limit(limited) -> None:
    h, api = await limited()
    h.relay.board.window = GroupWindow()  # pacing on, as with TELEGRAM_RATE_LIMIT (the default)
    await ask_at_once(h, range(FIRST_PERSON, FIRST_PERSON + 30))
    assert len(api.card_posts()) == 19  # one a minute is left for moderators' commands in the group
    await minutes_pass(h)
    assert len(api.card_posts()) == 30 and api.rejected_429 == 0


async def test_a_card_deleted_from_the_group_is_posted_again(limited) -> None:
    h, api = await limited()
    await h.text(FIRST_PERSON, ASK)
    number, (card,) = next(iter(api.card_posts().items()))
    api.gone.add(card)
    await h.text(MODERATOR, f"/claim {number}")
    (old,), new = api.card_posts()[number][:1], api.card_posts()[number][1:]
    assert old == card and len(new) == 1 and "Claimed by" in api.sent(GROUP)[-1]["text"]
    assert open_cases(h.relay.settings.database_url)[number].card_message_id == new[0]


async def test_a_card_posted_while_its_person_asked_to_be_forgotten_is_cleared(limited, monkeypatch) -> None:
    monkeypatch.setattr(board, "WAIT_FOR_WRITES_SECONDS", 0.1)
    h, api = await limited()
    api.gate = asyncio.Event()
    await h.text(FIRST_PERSON, ASK)
    await h.press(FIRST_PERSON, "forget:yes")  # the case is deleted while its card is on its way
    api.gate.set()
    await h.relay.flush_cards()
    await h.relay.flush_cards()
    ((number, (card,)),) = api.card_posts().items()
    edits = [e for e in api.card_edits() if e["message_id"] == card]
    assert edits and f"Case #{number} is gone" in edits[-1]["text"]


# ---------------------------------------------------------------- the outbox


async def test_a_groups_429_goes_back_to_the_board_at_once() -> None:
    request = RecordingRequest()
    request.fail("sendMessage", 429, "Too Many Requests: retry after 40", retry_after=40)
    bot = Bot(TOKEN, request=request)
    outbox = TelegramOutbox(bot)
    started = time.monotonic()
    with pytest.raises(RetryAfter):
        await outbox.send(GROUP, Say("card"))
    assert time.monotonic() - started < 5  # not 40 s: nothing else may wait behind a group's limit


async def test_a_private_chat_gets_a_short_burst_then_one_message_a_second_in_order() -> None:
    pacer = ChatPacer(per_second=20.0, burst=2)  # Telegram's pace, twenty times faster
    left: list[tuple[int, float]] = []

    async def send(n: int) -> None:
        async with pacer.turn(MODERATOR):
            await pacer.next(MODERATOR)
            left.append((n, time.monotonic()))
            await asyncio.sleep(0)  # the message is on its way: nobody else's turn yet

    async def to_the_group() -> None:
        async with pacer.turn(GROUP):
            await pacer.next(GROUP)

    await asyncio.gather(*(send(n) for n in range(6)), to_the_group())
    assert [n for n, _ in left] == list(range(6))
    times = [t for _, t in left]
    assert times[1] - times[0] < 0.04  # the burst
    assert all(b - a >= 0.045 for a, b in itertools.pairwise(times[1:]))  # then one per 1/20 s


def test_the_group_window_allows_its_limit_in_any_period() -> None:
    window = GroupWindow(limit=3, period=60)
    for at in (0.0, 1.0, 2.0):
        assert window.wait(at) == 0
        window.take(at)
    assert window.wait(30.0) == 30.0
    assert window.wait(60.0) == 0
    window.shut(60.0, 45)
    assert window.wait(61.0) == 44.0


async def test_after_a_message_telegram_held_back_the_chat_waits_its_full_second() -> None:
    pacer = ChatPacer(per_second=20.0, burst=2)  # Telegram's pace, twenty times faster
    async with pacer.turn(MODERATOR):
        await pacer.next(MODERATOR)
        await asyncio.sleep(0.1)  # the send took two "seconds": Telegram made it wait (a 429)
    held_back = time.monotonic()
    async with pacer.turn(MODERATOR):
        await pacer.next(MODERATOR)  # the burst would allow it at once; Telegram's count would not
    assert time.monotonic() - held_back >= 0.045
