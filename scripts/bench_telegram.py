"""What Telegram's flood limits let the handover carry: cases a minute through the moderators' group, and
conversations per moderator through their private chat. Loopback only; about two and a half minutes.

`python -m scripts.bench_telegram` runs the real adapter (`build_application`, long polling, the jobs,
python-telegram-bot's AIORateLimiter on, as in production) against the local fake Bot API enforcing
Telegram's limits (tests/e2e/fake_telegram.py, `enforce_limits=True`: about one message a second per
private chat with a burst of 3, 20 a minute per group, 30 a second overall, 429 with retry_after beyond).
Rasa is stubbed (a request for a person gets Rasa's handover payload at once): these figures are about
Telegram's limits, not about Rasa's speed, which `make bench` measures.

1. A burst: K people ask for a person at the same moment. When does each case's card show in the group?
   Meanwhile a moderator claims and closes a few cases from their cards: how many group writes does a
   case cost (post, claim, close; edits count against the group's limit as much as posts do)?
2. One moderator holds N cases and each person writes L lines at once: how fast do the lines reach the
   moderator's private chat, and so how many conversations can one moderator's chat carry?
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from telegram import Update

from actions.db import engine_for, sessionmaker_for, upgrade
from bot import board, outbox, privacy
from bot.app import build_application
from bot.crypto import new_key
from bot.escalation import CaseState
from bot.handlers import RELAY
from bot.models import HandoverCase
from bot.pseudonym import pseudonym
from bot.responses import response_text
from bot.settings import Settings
from tests.e2e.fake_telegram import FakeTelegram

GROUP = -1009000000777
CARD_MODERATOR = 8001  # claims and closes from the cards
CHAT_MODERATOR = 8002  # holds the conversations
KEY = b"bench-" + b"k" * 58
ASK = "i want a person"
FIRST_PERSON = 90_001
MAX_SECONDS = 170.0


async def stub_rasa(request: httpx.Request) -> httpx.Response:
    """Rasa's REST channel, stubbed: asking for a person gets the handover payload, anything else an echo."""
    body = json.loads(request.content)
    if body["message"] == ASK:
        replies: list[dict[str, Any]] = [
            {"custom": {"handover": {"priority": "normal", "reason": "request_human"}}},
            {"text": "I've asked a person from our team to join."},
        ]
    else:
        replies = [{"text": f"echo: {body['message']}"}]
    return httpx.Response(200, json=[{"recipient_id": body["sender"], **r} for r in replies])


def settings_for(fake: FakeTelegram, database_url: str, tracker_url: str) -> Settings:
    return Settings(
        rasa_url="http://rasa.bench",
        pseudonym_key=KEY,
        telegram_bot_token=fake.token,
        telegram_base_url=fake.base_url,
        moderator_chat_id=GROUP,
        moderator_user_ids=frozenset({CARD_MODERATOR, CHAT_MODERATOR}),
        database_url=database_url,
        tracker_store_url=tracker_url,
        transcript_keys=(new_key(),),
        handover_wait=dt.timedelta(hours=1),
        telegram_rate_limit=True,
    )


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up: {what} within {timeout:g} s")
        time.sleep(0.05)


def saying(text: str) -> Callable[[dict[str, Any]], bool]:
    """Return a test for a bot message that contains the text."""
    return lambda message: text in message.get("text", "")


def number_of(card: dict[str, Any]) -> int:
    return int(card["text"].split("#", 1)[1].split(" ", 1)[0])


def case_cards(fake: FakeTelegram) -> dict[int, float]:
    """Return when each case's (first) card was posted in the group, by case number (fake's clock)."""
    shown: dict[int, float] = {}
    for call in fake.calls("sendMessage"):
        text = call.params.get("text", "")
        if call.error_code is None and call.params.get("chat_id") == GROUP and text.startswith("Case #"):
            shown.setdefault(number_of({"text": text}), call.at)
    return shown


def refused_by_chat(fake: FakeTelegram) -> dict[str, int]:
    """Return how many calls the fake answered 429, by kind of chat."""
    kinds = {GROUP: "the group", CARD_MODERATOR: "moderators' chats", CHAT_MODERATOR: "moderators' chats"}
    counts: dict[str, int] = {}
    for call in fake.calls():
        if call.error_code == 429:
            kind = kinds.get(call.params.get("chat_id", 0), "young people's chats")
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def group_writes(fake: FakeTelegram) -> list[float]:
    """Return when each write into the group got through (posts and edits), in order."""
    return sorted(
        c.at
        for c in fake.calls()
        if c.method in {"sendMessage", "editMessageText"}
        and c.error_code is None
        and c.params.get("chat_id") == GROUP
    )


def burst(fake: FakeTelegram, cases: int, claimed: int) -> dict[str, Any]:
    """Phase 1: `cases` people ask at once; a moderator claims and closes `claimed` of them from the cards."""
    people = range(FIRST_PERSON, FIRST_PERSON + cases)
    started = time.time()  # the fake Bot API stamps calls with time.time()
    for person in people:
        fake.user_sends_text(person, ASK)
    wait_until(lambda: len(case_cards(fake)) >= min(cases, 5), 60, "the first cards")
    for card in [m for m in fake.messages(GROUP) if m["text"].startswith("Case #")][:claimed]:
        number = number_of(card)
        seen = len(fake.messages(CARD_MODERATOR))
        fake.user_presses(CARD_MODERATOR, card, f"case:claim:{number}")
        fake.wait_for_message(CARD_MODERATOR, saying(f"You hold case #{number}"), after=seen)
        fake.user_sends_text(CARD_MODERATOR, f"/close {number}")
        fake.wait_for_message(CARD_MODERATOR, saying(f"Case #{number} is closed."))
    return {"people": people, "started": started}


def still_queued(database_url: str, people: list[int], count: int) -> list[int]:
    """Return `count` of the people whose cases the burst left in the queue, in their order. (The burst
    claims the first cards in the group, which follow the order the cases opened, not the people's.)"""
    refs = {pseudonym(KEY, person): person for person in people}
    with sessionmaker_for(database_url).begin() as session:
        queued = set(
            session.scalars(
                select(HandoverCase.user_ref).where(
                    HandoverCase.user_ref.in_(refs), HandoverCase.state == CaseState.QUEUED
                )
            )
        )
    return [person for person in people if pseudonym(KEY, person) in queued][:count]


def fan_in(fake: FakeTelegram, database_url: str, people: list[int], lines: int) -> dict[str, Any]:
    """Phase 2: one moderator claims the people's cases (/claim), then each of them writes lines at once."""
    with sessionmaker_for(database_url).begin() as session:
        numbers = {
            person: session.scalars(
                select(HandoverCase.id).where(HandoverCase.user_ref == pseudonym(KEY, person))
            ).one()
            for person in people
        }
    claim_started = time.monotonic()
    for person in people:  # one after the other, as a moderator types them
        seen = len(fake.messages(CHAT_MODERATOR))
        fake.user_sends_text(CHAT_MODERATOR, f"/claim {numbers[person]}")
        fake.wait_for_message(CHAT_MODERATOR, saying("Carry on in your private chat"), after=seen)
    claims_took = time.monotonic() - claim_started
    before = len(fake.messages(CHAT_MODERATOR))
    sent_at: dict[str, float] = {}
    for i in range(lines):
        for person in people:
            text = f"line {i} from {person}"
            fake.user_sends_text(person, text)
            sent_at[f"#{numbers[person]} › {text}"] = time.time()
    wait_until(
        lambda: set(sent_at) <= {m["text"] for m in fake.messages(CHAT_MODERATOR)}, 120, "every relayed line"
    )
    arrived = {
        c.params["text"]: c.at
        for c in fake.calls("sendMessage")
        if c.error_code is None and c.params.get("chat_id") == CHAT_MODERATOR and c.params["text"] in sent_at
    }
    lags = [arrived[t] - sent_at[t] for t in sent_at]
    into_chat = len(fake.messages(CHAT_MODERATOR)) - before
    first, last = min(arrived.values()), max(arrived.values())
    return {
        "claims_took": claims_took,
        "relayed": len(sent_at),
        "into_chat": into_chat,
        "rate": (len(arrived) - 1) / (last - first) if last > first else float("inf"),
        "lag_p50": statistics.median(lags),
        "lag_max": max(lags),
        "took": last - min(sent_at.values()),
    }


async def run(cases: int, claimed: int, held: int, lines: int) -> dict[str, Any]:
    """Run both phases against the limiting fake Bot API; return the figures."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeTelegram(enforce_limits=True) as fake,
    ):
        database_url, tracker_url = (
            f"sqlite:///{Path(tmp) / 'cases.db'}",
            f"sqlite:///{Path(tmp) / 'trackers.db'}",
        )
        upgrade(database_url)
        privacy.EVENTS.metadata.create_all(engine_for(tracker_url))
        fake.add_group(GROUP, "Signpost moderators")
        for moderator in (CARD_MODERATOR, CHAT_MODERATOR):
            fake.start_private_chat(moderator)
        app = build_application(
            settings_for(fake, database_url, tracker_url), rasa_transport=httpx.MockTransport(stub_rasa)
        )
        await app.initialize()
        assert app.post_init is not None and app.post_shutdown is not None and app.updater is not None
        await app.post_init(app)
        await app.start()
        await app.updater.start_polling(poll_interval=0.0, timeout=1, allowed_updates=Update.ALL_TYPES)
        try:
            loop = asyncio.get_running_loop()
            first = await loop.run_in_executor(None, burst, fake, cases, claimed)
            people = still_queued(database_url, list(first["people"]), held)
            second = await loop.run_in_executor(None, fan_in, fake, database_url, people, lines)
            relay = app.bot_data[RELAY]
            await loop.run_in_executor(
                None,
                wait_until,
                lambda: len(case_cards(fake)) >= cases and relay.board.owed() == 0,
                max(MAX_SECONDS - (time.time() - first["started"]), 1),
                "every card and card edit",
            )
            shown = case_cards(fake)
            edits = [
                c
                for c in fake.calls("editMessageText")
                if c.error_code is None and c.params.get("chat_id") == GROUP
            ]
            return {
                "cases": cases,
                "claimed": claimed,
                "shown": sorted(t - first["started"] for t in shown.values()),
                "writes": [t - first["started"] for t in group_writes(fake)],
                "edits": len(edits),
                "edited_cards": len({c.params["message_id"] for c in edits}),
                "rejected_429": fake.rejected_429,
                "refused": refused_by_chat(fake),
                "fan_in": second,
                "held": held,
                "lines": lines,
            }
        finally:
            await app.updater.stop()
            await app.stop()
            await app.post_shutdown(app)
            await app.shutdown()


def report(r: dict[str, Any]) -> str:
    shown, writes, f = r["shown"], r["writes"], r["fan_in"]
    per_minute = board.GROUP_WRITES_PER_MINUTE
    in_first_minute = sum(1 for t in writes if t < 60)
    exchange = 1  # a person's line is one message into the moderator's chat; the reply goes to theirs
    lines = [
        "Moderators' group (cards):",
        f"  burst of {r['cases']} requests for a person at once: {len(shown)} cards posted "
        f"({r['claimed']} of them claimed and closed from their cards meanwhile)",
        f"  first card visible after {shown[0]:.1f} s; card {min(per_minute, len(shown))} after "
        f"{shown[min(per_minute, len(shown)) - 1]:.1f} s; card {min(per_minute + 1, len(shown))} after "
        f"{shown[min(per_minute, len(shown) - 1)]:.1f} s; the last after {shown[-1]:.1f} s",
        f"  group writes that got through: {len(writes)} ({r['edits']} edits of {r['edited_cards']} cards), "
        f"{in_first_minute} in the first minute; the board's budget is {per_minute} a minute (Telegram's 20, "
        "one kept for moderators' commands)",
        f"  cases a minute the group carries in steady state: {per_minute / 3:.1f} with a post, a claim "
        f"edit and a close edit per case; {per_minute:.0f} new cards a minute if nobody claims meanwhile",
        f"  429s from the fake Bot API: {r['rejected_429']} in all "
        f"({', '.join(f'{n} in {k}' for k, n in sorted(r['refused'].items())) or 'none'}; every one retried)",
        "Moderator's private chat (conversations):",
        f"  {r['held']} claims by /claim, one after the other: {f['claims_took']:.1f} s (a claim puts 2 "
        "messages in the moderator's chat: the case intro, paced, and the answer to /claim, which the "
        "handler sends itself, outside the pacing)",
        f"  {r['held']} people x {r['lines']} lines at once: {f['relayed']} lines relayed "
        f"in {f['took']:.1f} s, "
        f"{f['rate']:.2f} messages a second into the moderator's chat; lag median {f['lag_p50']:.1f} s, "
        f"max {f['lag_max']:.1f} s",
        f"  messages into the moderator's chat per exchange: {exchange} (the young person's line; the "
        "moderator's reply goes to the young person's chat, paced separately)",
        "  conversations one moderator's chat carries at that rate, if each young person writes "
        + ", ".join(f"{per} lines a minute: {int(f['rate'] * 60 / (per * exchange))}" for per in (2, 4, 6)),
        f"  pacing: a burst of {outbox.PRIVATE_BURST}, then {outbox.PRIVATE_PER_SECOND:g} a second, "
        "per private chat",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cases", type=int, default=40, help="requests for a person at once (default 40)")
    parser.add_argument("--claimed", type=int, default=3, help="of which claimed and closed at once (3)")
    parser.add_argument("--held", type=int, default=10, help="cases one moderator holds (10)")
    parser.add_argument("--lines", type=int, default=3, help="lines each of their people writes at once (3)")
    args = parser.parse_args(argv)
    if args.claimed + args.held > args.cases:
        parser.error("--claimed plus --held must not be more than --cases")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    started = time.monotonic()
    figures = asyncio.run(run(args.cases, args.claimed, args.held, args.lines))
    print(f"python -m scripts.bench_telegram {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    print(report(figures))
    print(f"(run took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())


QUICK_EXIT_RASA_SECONDS = 25.0
QUICK_EXIT_PERSON = 7_500_001


async def quick_exit_while_rasa_thinks(rasa_seconds: float = QUICK_EXIT_RASA_SECONDS) -> float:
    """Return how long quick exit takes (the person's /exit sent → the neutral message in their chat)
    while Rasa takes `rasa_seconds` over the message before it (issue 14: target ≤ 1 s)."""
    thinking = asyncio.Event()

    async def slow_rasa(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body["message"] != "/quick_exit":
            thinking.set()
            await asyncio.sleep(rasa_seconds)
        return httpx.Response(200, json=[{"recipient_id": body["sender"], "text": "late answer"}])

    with tempfile.TemporaryDirectory() as tmp, FakeTelegram() as fake:
        database_url, tracker_url = f"sqlite:///{Path(tmp) / 'cases.db'}", f"sqlite:///{Path(tmp) / 't.db'}"
        upgrade(database_url)
        privacy.EVENTS.metadata.create_all(engine_for(tracker_url))
        fake.add_group(GROUP, "Signpost moderators")
        fake.start_private_chat(QUICK_EXIT_PERSON)
        settings = settings_for(fake, database_url, tracker_url)  # Rasa's patience: 30 s, so it waits
        app = build_application(settings, rasa_transport=httpx.MockTransport(slow_rasa))
        await app.initialize()
        assert app.post_init is not None and app.post_shutdown is not None and app.updater is not None
        await app.post_init(app)
        await app.start()
        await app.updater.start_polling(poll_interval=0.0, timeout=1, allowed_updates=Update.ALL_TYPES)
        try:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, fake.user_sends_text, QUICK_EXIT_PERSON, "he is outside")
            await asyncio.wait_for(thinking.wait(), 30)
            before = len(fake.messages(QUICK_EXIT_PERSON))
            start = time.perf_counter()
            await loop.run_in_executor(None, fake.user_sends_text, QUICK_EXIT_PERSON, "/exit")
            neutral = saying(response_text("utter_quick_exit"))
            await loop.run_in_executor(
                None, partial(fake.wait_for_message, QUICK_EXIT_PERSON, neutral, 60.0, before)
            )
            return time.perf_counter() - start
        finally:
            await app.updater.stop()
            await app.stop()
            await app.post_shutdown(app)
            await app.shutdown()
