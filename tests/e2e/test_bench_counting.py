"""`make bench` counts a turn's replies right when the slow-Rasa path was taken (issue 14, B12), through
Telegram and through the web chat (issue 17).

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
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route
from telegram import Bot

from bot.responses import response_text
from scripts import bench
from scripts.stack import free_port
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


# ---------------------------------------------------------------- the web chat's counting (issue 17)


class ScriptedWebChat:
    """Plays the adapter's web chat for the bench's browsers: the page with its form token and cookie, each
    message posted (POST /send) and the live feed (GET /events). Each message is shown back as the
    person's own line, then answered with the turn's replies; the very first gets the crisis numbers
    first, as a cold Rasa makes the adapter send; each turn's first answer is then edited, which comes
    down the feed again with its id, as the web channel sends an edit."""

    def __init__(self) -> None:
        self.addresses: list[str] = []  # who posted
        self.cold = True
        self._feeds: dict[str, asyncio.Queue[dict[str, object]]] = {}
        self._ids = itertools.count(1)
        app = Starlette(
            routes=[
                Route("/", self.page),
                Route("/send", self.send, methods=["POST"]),
                Route("/events", self.events),
            ]
        )
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, port=self.port, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    async def page(self, request: Request) -> Response:
        session = request.cookies.get("s") or str(len(self._feeds) + 1)
        self._feeds.setdefault(session, asyncio.Queue())
        response = HTMLResponse(f'<input type="hidden" name="token" value="{session}0f">')
        response.set_cookie("s", session)
        return response

    async def send(self, request: Request) -> Response:
        form = await request.form()
        session = request.cookies["s"]
        assert form["token"] == f"{session}0f"
        assert request.client is not None
        self.addresses.append(request.client.host)
        feed, text = self._feeds[session], str(form["message"])
        feed.put_nowait({"type": "line", "id": next(self._ids), "text": text, "mine": True})
        if self.cold:  # Rasa's first prediction: the crisis numbers, then its answer
            self.cold = False
            feed.put_nowait({"type": "line", "id": next(self._ids), "text": CRISIS, "mine": False})
        answers = [next(self._ids) for _ in range(REPLIES[bench.CONVERSATION.index(text)])]
        for n, ident in enumerate(answers):
            feed.put_nowait({"type": "typing"})
            feed.put_nowait({"type": "line", "id": ident, "text": f"reply {n}", "mine": False})
        feed.put_nowait({"type": "line", "id": answers[0], "text": "reply 0, edited", "mine": False})
        return Response(status_code=202)

    async def events(self, request: Request) -> Response:
        feed = self._feeds[request.cookies["s"]]

        async def stream() -> AsyncIterator[str]:
            while True:
                yield f"data: {json.dumps(await feed.get())}\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")


@pytest.fixture
def scripted_web(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedWebChat]:
    monkeypatch.setattr(bench, "REPLY_TIMEOUT_SECONDS", 20)  # a miscount fails in 20 s, not 120
    monkeypatch.setattr(bench, "SETTLE_SECONDS", 0.5)
    chat = ScriptedWebChat()
    chat.thread.start()
    while not chat.server.started:
        time.sleep(0.02)
    try:
        yield chat
    finally:
        chat.server.should_exit = True
        chat.thread.join(10)


def test_the_web_bench_counts_rasas_answers_not_the_persons_lines_the_crisis_numbers_or_edits(
    scripted_web: ScriptedWebChat,
) -> None:
    load = bench.WebChatLoad(f"http://127.0.0.1:{scripted_web.port}")
    load.learn_replies()
    assert load.replies == REPLIES
    latencies: list[float] = []
    asyncio.run(load._talk(latencies, time.monotonic() + 60))  # a second person, turn by turn
    assert len(latencies) == len(bench.CONVERSATION)
    # Each browser posts from a loopback address of its own, as people come from their own addresses.
    first, second = scripted_web.addresses[0], scripted_web.addresses[-1]
    assert set(scripted_web.addresses) == {first, second} and first != second
    assert all(a.startswith("127.") and a != "127.0.0.1" for a in (first, second))
