"""`make bench` counts a turn's replies right when the slow-Rasa path was taken (issue 14, B12).

What failed on a fresh 2-core machine: the bench learns how many messages each turn gets back from one
quiet run. When Rasa's first prediction was slower than RASA_TIMEOUT_SECONDS there, the adapter answered
that turn with the crisis numbers *and then* Rasa's answer, as it should, and the bench learned one
message too many; in the next run Rasa was warm, the turn got its real answer only, and the bench waited
120 s for a message that was never owed. The adapter lost nothing: the bench miscounted.

Here a scripted bot on the fake Bot API plays the adapter (the crisis numbers first on the very first
turn, as a cold Rasa makes it do), and the bench's own Pipeline learns and then talks.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from telegram import Bot

from bot.responses import response_text
from scripts import bench
from tests.e2e.fake_telegram import FakeTelegram

REPLIES = [2, 1, 3, 2, 1, 1]  # what each turn of bench.CONVERSATION gets from a warm Rasa
CRISIS = response_text("utter_assistant_unavailable")


class ScriptedBot:
    """Answers each person's message with the turn's replies; the first message of all is "slow"."""

    def __init__(self, fake: FakeTelegram) -> None:
        self.fake = fake
        self.stop = threading.Event()
        self.cold = True
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        async with Bot(self.fake.token, base_url=self.fake.base_url) as bot:
            offset = 0
            while not self.stop.is_set():
                for update in await bot.get_updates(offset=offset, timeout=1):
                    offset = update.update_id + 1
                    message = update.message
                    if message is None or message.text not in bench.CONVERSATION:
                        continue
                    if self.cold:  # Rasa's first prediction: the crisis numbers, then its answer
                        self.cold = False
                        await bot.send_message(message.chat.id, CRISIS)
                    for n in range(REPLIES[bench.CONVERSATION.index(message.text)]):
                        await bot.send_message(message.chat.id, f"reply {n}")


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTelegram]:
    monkeypatch.setattr(bench, "REPLY_TIMEOUT_SECONDS", 20)  # a miscount fails in 20 s, not 120
    monkeypatch.setattr(bench, "SETTLE_SECONDS", 0.5)
    with FakeTelegram() as fake:
        bot = ScriptedBot(fake)
        bot.thread.start()
        try:
            yield fake
        finally:
            bot.stop.set()
            bot.thread.join(10)


def test_the_bench_counts_rasas_answers_not_the_crisis_numbers_a_slow_first_turn_adds(
    scripted: FakeTelegram,
) -> None:
    pipeline = bench.Pipeline(scripted)
    pipeline.learn_replies()
    assert pipeline.replies == REPLIES
    latencies: list[float] = []
    pipeline._talk(latencies, time.monotonic() + 60)  # the warm-up turn by turn: no turn waits in vain
    assert len(latencies) == len(bench.CONVERSATION)
