"""Telegram's flood limits end to end: the real adapter (`python -m bot`, TELEGRAM_RATE_LIMIT on, the
default), the real Rasa and action servers, and the fake Bot API answering 429 with retry_after the way
Telegram does when a bot writes faster than about one message a second into a private chat, 20 a minute
into a group or 30 a second overall (tests/e2e/fake_telegram.py, `enforce_limits=True`).

People write in bursts and ask for a person all at once; nothing they are owed may be lost, no case may
go without its card (or get two), and every 429 must have been retried."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.pseudonym import case_tag, pseudonym
from scripts.stack import running_adapter
from tests.e2e.conftest import Assistant, new_person, new_sender
from tests.e2e.fake_telegram import Call, FakeTelegram
from tests.e2e.test_telegram import GROUP, KEY, MODERATOR, adapter_env, number_of

pytestmark = pytest.mark.e2e

BURST = ["hi", "what numbers can i call", "someone at school keeps posting mean stuff about me", "thanks"]
ASK = "can i talk to a real person please"
HANDOVER_SAID = "stays private"  # in the answer to a request for a person


def env_for(fake: FakeTelegram, assistant: Assistant) -> dict[str, str]:
    return {
        **adapter_env(fake, assistant),
        # Two cores answer every burst at once here: a slow Rasa would add its own "still thinking"
        # message, which is not what this test counts. Telegram's limits are.
        "RASA_TIMEOUT_SECONDS": "30",
    }


@dataclass
class Limited:
    """The limiting fake Bot API with the adapter polling it, and the adapter's log."""

    fake: FakeTelegram
    log: Path


@pytest.fixture(scope="module")
def limited(assistant: Assistant, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Limited]:
    with FakeTelegram(enforce_limits=True) as fake, ExitStack() as stack:
        # One token fewer than the adapter's own pacing allows: its second message in a row into a chat
        # meets a 429, as it would if Telegram were stricter than its FAQ says, so the retries are
        # exercised too (with the fake's burst of 3 the adapter's pacing alone avoids every 429).
        fake.private_burst = 1
        fake.add_group(GROUP, "Signpost moderators")
        fake.start_private_chat(MODERATOR)
        workdir = tmp_path_factory.mktemp("limits")
        stack.enter_context(running_adapter(workdir, env_for(fake, assistant)))
        fake.wait_for_call("getUpdates", timeout=60)
        yield Limited(fake, workdir / "adapter.log")


def replies_without_limits(assistant: Assistant, messages: list[str]) -> int:
    """Return how many text messages Rasa answers these messages with, one after the other."""
    sender = new_sender()
    return sum(1 for m in messages for r in assistant.say(sender, m) if r.get("text"))


def wait_until(missing: Callable[[], list[str]], timeout: float) -> None:
    """Wait until nothing is missing; fail saying what still is."""
    deadline = time.monotonic() + timeout
    while gaps := missing():
        if time.monotonic() > deadline:
            raise AssertionError(f"still missing after {timeout:g} s: " + "; ".join(gaps))
        time.sleep(0.2)


def cards_of(fake: FakeTelegram, person: int) -> list[dict[str, Any]]:
    """Return the case cards in the group that belong to a person (a card shows the person's tag for
    that case: bot.pseudonym.case_tag of the case number)."""
    ref = pseudonym(KEY.encode(), person)
    cards = [m for m in fake.messages(GROUP) if m["text"].startswith("Case #")]
    return [m for m in cards if f"Person: {case_tag(ref, number_of(m))}" in m["text"]]


def retried(fake: FakeTelegram, refused: Call) -> bool:
    """Return whether a call the fake refused with 429 was made again later and got through."""
    same = ("chat_id", "text", "message_id")
    return any(
        c.at > refused.at
        and c.error_code is None
        and all(c.params.get(k) == refused.params.get(k) for k in same)
        for c in fake.calls(refused.method)
    )


def test_bursts_and_requests_for_a_person_at_once_lose_nothing_under_telegrams_limits(
    limited: Limited, assistant: Assistant
) -> None:
    fake = limited.fake
    writers = [new_person() for _ in range(5)]
    askers = [new_person() for _ in range(5)]
    expected = replies_without_limits(assistant, BURST)
    started = time.monotonic()

    for text in BURST:  # every message of every burst is waiting at once
        for person in writers:
            fake.user_sends_text(person, text)
    for person in askers:
        fake.user_sends_text(person, ASK)

    def missing() -> list[str]:
        gaps = [
            f"person {p} has {len(fake.messages(p))} of {expected} replies"
            for p in writers
            if len(fake.messages(p)) < expected
        ]
        gaps += [
            f"person {p} was not answered"
            for p in askers
            if not any(HANDOVER_SAID in m["text"] for m in fake.messages(p))
        ]
        return gaps + [f"the case of person {p} has no card" for p in askers if not cards_of(fake, p)]

    wait_until(missing, timeout=90)
    time.sleep(2)  # anything extra (a second card, a doubled reply) would arrive now
    for person in writers:
        assert len(fake.messages(person)) == expected, f"person {person} got a different number of replies"
    for person in askers:
        assert len(cards_of(fake, person)) == 1, f"the case of person {person} has not exactly one card"

    # A moderator takes three cases; their people write at once; every line reaches the moderator once.
    held = []
    for person in askers[:3]:
        (card,) = cards_of(fake, person)
        number = number_of(card)
        seen = len(fake.messages(MODERATOR))
        fake.user_presses(MODERATOR, card, f"case:claim:{number}")
        fake.wait_for_message(MODERATOR, lambda m, n=number: f"You hold case #{n}" in m["text"], after=seen)
        held.append((person, number))
    lines = [f"message {i} from me" for i in range(3)]
    for line in lines:
        for person, _ in held:
            fake.user_sends_text(person, line)
    relayed = {f"#{number} › {line}" for _, number in held for line in lines}
    wait_until(lambda: sorted(relayed - {m["text"] for m in fake.messages(MODERATOR)}), timeout=60)
    time.sleep(1)
    texts = [m["text"] for m in fake.messages(MODERATOR)]
    assert all(texts.count(line) == 1 for line in relayed)

    refused = [c for c in fake.calls() if c.error_code == 429]
    print(
        f"\n{len(writers)}x{len(BURST)} messages at once and {len(askers)} requests for a person: "
        f"everything delivered in {time.monotonic() - started:.0f} s; the fake answered 429 "
        f"{fake.rejected_429} times, {len(refused)} calls in all"
    )
    assert all(retried(fake, c) for c in refused), "a call refused with 429 was never made again"
    log = limited.log.read_text()
    notable = "\n".join(line for line in log.splitlines() if " WARNING " in line or " ERROR " in line)
    for sign in ("Traceback", "RetryAfter", "Rate limit hit after maximum", "error while handling"):
        assert sign not in log, f"the adapter's log has {sign!r}; its warnings and errors:\n{notable}"
