"""`make bench`: speed of the assistant on this machine, loopback only, bounded in count and time.

Starts the real action server and Rasa server, then for each number of simulated users N:
  * Rasa alone: N people each send a short conversation to Rasa's REST channel at the same time;
  * the pipeline: N people send the same messages through the local fake Telegram Bot API
    (tests/e2e/fake_telegram.py) to the real adapter (`python -m bot`, TELEGRAM_RATE_LIMIT=off),
    which passes them to the same Rasa server; latency is from the update being queued at the fake
    Bot API to the turn's last reply arriving there;
  * the web chat (at 20 and 50 people, `--web-users`): N people send the same messages to the same
    adapter's web chat as browsers do, each from a loopback address of its own: the page (GET /), its
    live feed (GET /events, server-sent events) and each message posted (POST /send); latency is from
    the post to the turn's last reply arriving down the feed.
It prints messages per second, p50/p95/p99 latency, the adapter's overhead as a ratio to Rasa alone, the
web chat's throughput over Rasa alone's, the peak memory of each process, the adapter's memory for 500
idle open chats, the directory `find` p95 with 10,000 services and the last training time, and writes
them with the machine's description to docs/benchmarks.md (between the markers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import os
import platform
import random
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from actions.db import analyze, engine_for, sessionmaker_for, upgrade
from actions.hsds_format import SEED_FILE
from actions.hsds_read import read_records
from actions.hsds_write import import_records
from actions.locate import gazetteer
from actions.models import NEEDS, STATISTICAL_GEOGRAPHY
from actions.services import find_services
from actions.settings import DEFAULT_GEO_TABLES, load_settings
from bot.crypto import new_key
from bot.responses import response_text
from bot.web.app import HEARTBEAT_SECONDS
from scripts import bench_telegram
from scripts.stack import MODEL, ROOT, Stack, free_port, running_adapter, running_stack
from tests.e2e.fake_telegram import FakeTelegram

# Typed text and the button payloads a person would press (the adapter passes those to Rasa as sent).
CONVERSATION = (
    "hi",
    "/affirm",
    "someone on snap says he'll post my pics unless i send him money",
    '/inform_age{"age_group": "13_17"}',
    "what can i do",
    "thanks",
)
MAX_SECONDS = 300  # each load run stops sending after this
REPLY_TIMEOUT_SECONDS = 120
SETTLE_SECONDS = 3.0  # a turn is over when nothing more arrives for this long (learning the counts)
GROUP = -1009000000001
# The adapter's answer when Rasa is late: an extra message on a slow turn, not one of Rasa's answers.
LATE_ANSWER = response_text("utter_assistant_unavailable")
WEB_TARGET = 0.9  # issue 17: web chat throughput ÷ Rasa alone at 20 and 50 people
IDLE_CHATS = 500  # open pages with their live feeds, nothing said (issue 17's memory figure)
IDLE_SETTLE_SECONDS = 3.0  # after the last idle chat opens, before the adapter's memory is read
REPORT = ROOT / "docs" / "benchmarks.md"
START_MARK, END_MARK = "<!-- make bench: start -->", "<!-- make bench: end -->"


def percentile(values: list[float], share: float) -> float:
    """Return the given percentile (0..1) of the values, nearest-rank."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
    return ordered[index]


def peak_memory_mb(pid: int) -> float:
    """Return a process's peak resident memory in MB (Linux VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def resident_memory_mb(pid: int) -> float:
    """Return a process's resident memory now in MB (Linux VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stat_fields(pid: int) -> list[str] | None:
    """Return the fields of /proc/<pid>/stat after the command name (None once the process is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_tree(pid: int) -> list[int]:
    """Return a process and its descendants (Rasa's Sanic workers are children of `rasa run`)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        fields = stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """Return the CPU time (user + system, Linux) the processes have used so far."""
    total = 0
    for pid in pids:
        fields = stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def machine() -> str:
    """Describe this machine: CPU model and cores, memory, OS, Python."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        cpu = found.group(1).strip() if found else cpu
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        found = re.search(r"^MemTotal:\s*(\d+) kB", meminfo.read_text(), re.MULTILINE)
        memory = f", {int(found.group(1)) / 1024**2:.0f} GiB" if found else ""
    return (
        f"{os.cpu_count()} cores ({cpu}){memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


@dataclass(frozen=True)
class Run:
    """One load run: what was measured."""

    label: str
    users: int
    latencies: list[float]
    wall: float

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0

    def line(self) -> str:
        """One table row: users, messages, msg/s, p50/p95/p99."""
        return (
            f"| {self.label} | {self.users} | {len(self.latencies)} | {self.rate:.1f} | "
            f"{1000 * statistics.median(self.latencies):.0f} | "
            f"{1000 * percentile(self.latencies, 0.95):.0f} | {1000 * percentile(self.latencies, 0.99):.0f} |"
        )


async def _rest_user(
    client: httpx.AsyncClient, latencies: list[float], deadline: float, pause: float = 0.0
) -> None:
    """One simulated person sending the conversation to Rasa, one message after each reply (and a pause)."""
    sender = uuid.uuid4().hex
    for message in CONVERSATION:
        if time.monotonic() > deadline:
            return
        start = time.perf_counter()
        response = await client.post("/webhooks/rest/webhook", json={"sender": sender, "message": message})
        response.raise_for_status()
        latencies.append(time.perf_counter() - start)
        await asyncio.sleep(pause)


async def _rest_load(rasa_url: str, users: int, pause: float) -> tuple[list[float], float]:
    latencies: list[float] = []
    deadline = time.monotonic() + MAX_SECONDS
    async with httpx.AsyncClient(base_url=rasa_url, timeout=REPLY_TIMEOUT_SECONDS) as client:
        await _rest_user(client, [], deadline)  # warm-up, not counted
        start = time.perf_counter()
        await asyncio.gather(*(_rest_user(client, latencies, deadline, pause) for _ in range(users)))
        return latencies, time.perf_counter() - start


def rasa_alone(rasa_url: str, users: int, pause: float = 0.0) -> Run:
    """N people talking straight to Rasa's REST channel at once."""
    latencies, wall = asyncio.run(_rest_load(rasa_url, users, pause))
    return Run("Rasa alone (REST)" + paused(pause), users, latencies, wall)


def paused(pause: float) -> str:
    """The label of runs where each person pauses between a reply and their next message."""
    return f", {pause:g} s pauses" if pause else ""


class Pipeline:
    """The adapter running against the fake Bot API; people talk to it as they would on Telegram."""

    def __init__(self, fake: FakeTelegram) -> None:
        self.fake = fake
        self.replies: list[int] | None = None  # how many messages each turn gets back
        self._ids = iter(range(7_000_001, 8_000_000))
        self._ids_lock = threading.Lock()

    def _person(self) -> int:
        with self._ids_lock:
            person = next(self._ids)
        self.fake.start_private_chat(person)
        return person

    def answers(self, person: int) -> int:
        """Return how many of Rasa's answers the person has: every message but the crisis numbers the
        adapter sends when an answer is late (a slow turn gets those *and* its answer, a fast one not)."""
        return sum(1 for m in self.fake.messages(person) if m.get("text") != LATE_ANSWER)

    def wait_for_answers(self, person: int, count: int) -> None:
        """Wait until the person has `count` of Rasa's answers (AssertionError after the reply timeout)."""
        deadline = time.monotonic() + REPLY_TIMEOUT_SECONDS
        while True:
            seen = self.fake.messages(person)
            if sum(1 for m in seen if m.get("text") != LATE_ANSWER) >= count:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"person {person}: {count} answers expected, {len(seen)} messages came")
            self.fake.wait_for_message(person, after=len(seen), timeout=remaining)

    def learn_replies(self) -> None:
        """Count each turn's answers once, one message at a time (the conversation is deterministic)."""
        person, counts = self._person(), []
        for message in CONVERSATION:
            before = self.answers(person)
            self.fake.user_sends_text(person, message)
            self.wait_for_answers(person, before + 1)
            settled = self.answers(person)
            while True:  # the turn is over when nothing more arrives for a while
                time.sleep(SETTLE_SECONDS)
                now = self.answers(person)
                if now == settled:
                    break
                settled = now
            counts.append(settled - before)
        self.replies = counts

    def _talk(self, latencies: list[float], deadline: float, pause: float = 0.0) -> None:
        assert self.replies is not None
        person = self._person()
        for message, expected in zip(CONVERSATION, self.replies, strict=True):
            if time.monotonic() > deadline:
                return
            before = self.answers(person)
            start = time.perf_counter()
            self.fake.user_sends_text(person, message)
            self.wait_for_answers(person, before + expected)
            latencies.append(time.perf_counter() - start)
            time.sleep(pause)

    def load(self, users: int, pause: float = 0.0) -> Run:
        """N people talking through Telegram at once."""
        latencies: list[float] = []
        deadline = time.monotonic() + MAX_SECONDS
        self._talk([], deadline)  # warm-up, not counted
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=users) as pool:
            for done in [pool.submit(self._talk, latencies, deadline, pause) for _ in range(users)]:
                done.result()
        return Run("Adapter + Rasa (Telegram)" + paused(pause), users, latencies, time.perf_counter() - start)


def web_answers(events: list[dict[str, object]]) -> int:
    """Return how many of Rasa's answers a web page has from its live feed's events: the lines that are
    ours (not the person's own), each once (an edit comes again with its id), less the crisis numbers the
    adapter sends when an answer is late (a slow turn gets those *and* its answer, a fast one not)."""
    return len(
        {
            e["id"]
            for e in events
            if e.get("type") == "line" and not e.get("mine") and e.get("text") != LATE_ANSWER
        }
    )


def loopback_addresses() -> Iterator[str]:
    """Addresses on this machine's loopback network (all of 127/8), one for each simulated browser: as
    people do, each has an address of its own, so the web chat's per-address limit sees each apart."""
    for a, b in itertools.product(range(1, 255), range(2, 255)):
        yield f"127.0.{a}.{b}"


class WebPerson:
    """One browser on the web chat: its address, its cookie, and the events of its live feed."""

    def __init__(self, base_url: str, transport: httpx.AsyncHTTPTransport) -> None:
        self.client = httpx.AsyncClient(base_url=base_url, transport=transport, timeout=REPLY_TIMEOUT_SECONDS)
        self.events: list[dict[str, object]] = []
        self.token = ""
        self._changed = asyncio.Event()
        self._feed: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Open the page (the session cookie and the form token), then its live feed."""
        page = await self.client.get("/")
        page.raise_for_status()
        found = re.search(r'name="token" value="([0-9a-f]+)"', page.text)
        if found is None:
            raise AssertionError("the web chat's page has no form token")
        self.token = found.group(1)
        connected = asyncio.Event()
        self._feed = asyncio.create_task(self._listen(connected))
        await asyncio.wait_for(connected.wait(), REPLY_TIMEOUT_SECONDS)

    async def _listen(self, connected: asyncio.Event) -> None:
        async with self.client.stream("GET", "/events", params={"after": 0}) as stream:
            stream.raise_for_status()
            connected.set()
            async for line in stream.aiter_lines():
                if line.startswith("data: "):
                    self.events.append(json.loads(line.removeprefix("data: ")))
                    self._changed.set()

    @property
    def listening(self) -> bool:
        """Whether the live feed is open."""
        return self._feed is not None and not self._feed.done()

    def answers(self) -> int:
        return web_answers(self.events)

    async def send(self, text: str) -> None:
        """Post a message as the page's script does (the answer comes down the feed)."""
        answer = await self.client.post(
            "/send", data={"token": self.token, "message": text}, headers={"x-requested-with": "signpost"}
        )
        if answer.status_code != 202:
            raise AssertionError(f"the web chat answered a message with {answer.status_code}")

    async def wait_for_answers(self, count: int) -> None:
        """Wait until the page has `count` of Rasa's answers (AssertionError after the reply timeout)."""
        deadline = time.monotonic() + REPLY_TIMEOUT_SECONDS
        while self.answers() < count:
            self._changed.clear()
            if self._feed is not None and self._feed.done():
                raise AssertionError(f"the live feed closed with {self.answers()} of {count} answers")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{count} answers expected on the page, {self.answers()} came")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def leave(self) -> None:
        """Close the live feed (the page stays open on the server until it is idle)."""
        if self._feed is not None:
            self._feed.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await self._feed

    async def close(self) -> None:
        await self.leave()
        await self.client.aclose()  # and its transport


class WebChatLoad:
    """People talking to the adapter's web chat at once, as browsers (bot/web/app.py): the same
    conversation as through Telegram, each message posted and its answers read from the live feed."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.replies: list[int] | None = None  # how many answers each turn gets
        self._addresses = loopback_addresses()

    async def _person(self) -> WebPerson:
        person = WebPerson(self.base_url, httpx.AsyncHTTPTransport(local_address=next(self._addresses)))
        await person.open()
        return person

    def learn_replies(self) -> None:
        """Count each turn's answers once, one message at a time (the conversation is deterministic)."""
        self.replies = asyncio.run(self._learn())

    async def _learn(self) -> list[int]:
        person, counts = await self._person(), []
        try:
            for message in CONVERSATION:
                before = person.answers()
                await person.send(message)
                await person.wait_for_answers(before + 1)
                settled = person.answers()
                while True:  # the turn is over when nothing more arrives for a while
                    await asyncio.sleep(SETTLE_SECONDS)
                    if person.answers() == settled:
                        break
                    settled = person.answers()
                counts.append(settled - before)
        finally:
            await person.close()
        return counts

    async def _talk(self, latencies: list[float], deadline: float, pause: float = 0.0) -> None:
        assert self.replies is not None
        person = await self._person()
        try:
            for message, expected in zip(CONVERSATION, self.replies, strict=True):
                if time.monotonic() > deadline:
                    return
                before = person.answers()
                start = time.perf_counter()
                await person.send(message)
                await person.wait_for_answers(before + expected)
                latencies.append(time.perf_counter() - start)
                await asyncio.sleep(pause)
        finally:
            await person.close()

    def load(self, users: int, pause: float = 0.0) -> Run:
        """N people talking through the web chat at once."""
        return asyncio.run(self._load(users, pause))

    async def _load(self, users: int, pause: float) -> Run:
        latencies: list[float] = []
        deadline = time.monotonic() + MAX_SECONDS
        await self._talk([], deadline)  # warm-up, not counted
        start = time.perf_counter()
        await asyncio.gather(*(self._talk(latencies, deadline, pause) for _ in range(users)))
        return Run("Adapter + Rasa (web chat)" + paused(pause), users, latencies, time.perf_counter() - start)


def idle_chats_memory(base_url: str, pid: int, count: int = IDLE_CHATS) -> str:
    """Open `count` chats as browsers do (the page, then its live feed) and say nothing; return the
    adapter's resident memory before and with them open."""
    return asyncio.run(_idle_chats_memory(base_url, pid, count))


async def _idle_chats_memory(base_url: str, pid: int, count: int) -> str:
    before = resident_memory_mb(pid)
    # One connection pool for all (each chat's client keeps its own cookie); every feed holds a connection.
    transport = httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=None)
    )
    people: list[WebPerson] = []
    try:
        async with asyncio.timeout(MAX_SECONDS):
            for batch in itertools.batched(range(count), 50):
                opened = [WebPerson(base_url, transport) for _ in batch]
                people += opened
                await asyncio.gather(*(person.open() for person in opened))
            await asyncio.sleep(IDLE_SETTLE_SECONDS)
            after = resident_memory_mb(pid)
            if not all(person.listening for person in people):
                raise AssertionError("a live feed closed while the chats were idle")
    finally:
        await asyncio.gather(*(person.leave() for person in people))
        await transport.aclose()
    grown = after - before
    return (
        f"{count} idle open chats (each a page and its live feed, nothing said; a heartbeat down every "
        f"feed each {HEARTBEAT_SECONDS:g} s): adapter resident memory {before:.0f} MB → {after:.0f} MB, "
        f"**+{grown:.1f} MB** ({1024 * grown / count:.0f} KB a chat)"
    )


def web_lines(ratios: dict[int, float]) -> list[str]:
    """Return the web chat's throughput over Rasa alone's, against issue 17's target (printed as well)."""
    if not ratios:
        return []
    parts = "; ".join(f"{users} users **{ratio:.2f}**" for users, ratio in ratios.items())
    met = "met" if min(ratios.values()) >= WEB_TARGET else "not met"
    found = [
        f"Issue 17's target, this run: web chat throughput ÷ Rasa alone: {parts} "
        f"(target ≥ {WEB_TARGET}; {met})."
    ]
    print(*found, sep="\n", flush=True)
    return found


def adapter_env(
    fake: FakeTelegram, stack: Stack, rasa_timeout: float | None = None, redis_url: str | None = None
) -> dict[str, str]:
    """The adapter's settings for the bench: the fake Bot API, rate limiting off (it is Telegram's), the
    web chat on a free port, and the production profile's Redis for its per-address limit."""
    chosen = {"RASA_TIMEOUT_SECONDS": str(rasa_timeout)} if rasa_timeout is not None else {}
    if redis_url:
        chosen["REDIS_URL"] = redis_url
    return {
        **chosen,
        "WEB_PORT": str(free_port()),
        "TELEGRAM_BOT_TOKEN": fake.token,
        "TELEGRAM_BASE_URL": fake.base_url,
        "TELEGRAM_RATE_LIMIT": "off",
        "MODERATOR_CHAT_ID": str(GROUP),
        "MODERATOR_USER_IDS": "6001",
        "RASA_URL": stack.rasa_url,
        "DATABASE_URL": stack.database_url,
        "TRACKER_STORE_URL": stack.tracker_store_url,
        "PSEUDONYM_KEY": "bench-" + uuid.uuid4().hex * 2,
        "TRANSCRIPT_KEYS": new_key(),
        "HANDOVER_WAIT_SECONDS": "3600",
    }


def overhead(rasa: Run, pipeline: Run) -> str:
    """The adapter's share: its median time per message over Rasa's, minus one."""
    ratio = statistics.median(pipeline.latencies) / statistics.median(rasa.latencies) - 1
    return f"{100 * ratio:+.1f}%"


def synthetic_services(count: int, codes: list[str], rng: random.Random) -> list[dict[str, object]]:
    """Return `count` made-up local services spread over the councils (benchmark data only)."""
    records: list[dict[str, object]] = []
    for i in range(count):
        low = rng.choice([None, 5, 11, 13, 16])
        needs = rng.sample(NEEDS, rng.randint(1, 3))
        records.append(
            {
                "id": f"bench-{i}",
                "name": f"Benchmark service {i}",
                "status": rng.choice(["active"] * 9 + ["inactive"]),
                "minimum_age": low,
                "maximum_age": None if low is None else low + rng.choice([7, 14, 60]),
                "assured_date": "2026-01-01",
                "phones": [{"id": f"bench-{i}-p", "number": "0113 000 0000", "type": "voice"}],
                "schedules": [
                    {
                        "id": f"bench-{i}-s",
                        "opens_at": "09:00",
                        "closes_at": "17:00",
                        "byday": "MO,TU,WE,TH,FR",
                    }
                ],
                "service_areas": [{"id": f"bench-{i}-a", "uri": STATISTICAL_GEOGRAPHY + rng.choice(codes)}],
                "attributes": [
                    {
                        "id": f"bench-{i}-n{j}",
                        "value": str(j + 1),
                        "taxonomy_term": {
                            "id": f"signpost-need-{need}",
                            "code": need,
                            "name": need,
                            "vocabulary": "signpost-need",
                        },
                    }
                    for j, need in enumerate(needs)
                ],
            }
        )
    return records


def directory_bench(url: str, services: int, queries: int) -> str:
    """Load the seed plus `services` made-up services, time `find` for random queries; return the figures."""
    rng = random.Random(7)  # noqa: S311 (made-up benchmark data, not security)
    authorities = list(gazetteer(DEFAULT_GEO_TABLES).authorities.values())
    codes = [a.code for a in authorities if a.nation != "Northern Ireland"]
    upgrade(url)
    start = time.perf_counter()
    with sessionmaker_for(url).begin() as session:
        import_records(session, read_records(SEED_FILE))
        import_records(session, synthetic_services(services, codes, rng))
    analyze(url)  # as `python -m actions.directory import` does after every file
    load_seconds = time.perf_counter() - start
    timings = []
    now = dt.datetime.now(dt.UTC)
    by_code = {a.code: a for a in authorities}
    with sessionmaker_for(url)() as session:
        for _ in range(queries):
            authority = by_code[rng.choice(codes)]
            need = rng.choice([None, *NEEDS])
            age = rng.choice([None, 12, 15, 17, 25])
            begin = time.perf_counter()
            find_services(session, authority=authority, need=need, age=age, now=now)
            timings.append(time.perf_counter() - begin)
    return (
        f"Directory find, {services} services loaded in {load_seconds:.0f} s, {queries} queries: "
        f"p50 {1000 * statistics.median(timings):.1f} ms, p95 {1000 * percentile(timings, 0.95):.1f} ms, "
        f"p99 {1000 * percentile(timings, 0.99):.1f} ms ({url.split(':', 1)[0]})"
    )


@dataclass(frozen=True)
class Profile:
    """How the assistant runs for a bench: the embedded default, or the production profile."""

    name: str
    postgres_url: str | None = None  # an empty database is made on this server for the run
    redis_url: str | None = None
    rasa_workers: int = 1

    def describe(self) -> str:
        if self.postgres_url is None:
            return f"{self.name}: SQLite database and tracker store, one Rasa process, one adapter"
        return (
            f"{self.name}: PostgreSQL database and tracker store, Redis lock store, Rasa with "
            f"{self.rasa_workers} worker processes (SANIC_WORKERS), one adapter"
        )


@contextmanager
def bench_database(server_url: str) -> Iterator[str]:
    """Create an empty PostgreSQL database for one bench run on the server; drop it after."""
    name = f"signpost_bench_{uuid.uuid4().hex[:10]}"
    server_url = load_settings({"DATABASE_URL": server_url}).database_url  # psycopg 3's dialect
    server = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))  # a fixed, generated identifier
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        try:
            yield url
        finally:
            engine_for(url).dispose()
            with server.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        server.dispose()


@contextmanager
def profile_stack(profile: Profile, model: Path, workdir: Path) -> Iterator[Stack]:
    """Start Rasa and the actions the way the profile says."""
    if profile.postgres_url is None:
        with running_stack(workdir, model) as stack:
            yield stack
        return
    with (
        bench_database(profile.postgres_url) as url,
        running_stack(
            workdir,
            model,
            database_url=url,
            tracker_store_url=url,
            lock_store_url=profile.redis_url,
            rasa_workers=profile.rasa_workers,
        ) as stack,
    ):
        yield stack


def cpu_line(label: str, messages: int, used: dict[str, float]) -> str:
    """CPU time a message for each process, from the CPU seconds they used over a run."""
    parts = ", ".join(f"{name} {1000 * seconds / messages:.1f}" for name, seconds in used.items())
    return f"CPU ms a message ({label}): {parts}"


class Meter:
    """CPU seconds used by each process of the stack, and by this one (the fake Bot API and the people)."""

    def __init__(self, processes: dict[str, list[int]]) -> None:
        self.processes = processes
        self.last: dict[str, float] = {}  # the last run's CPU ms a message, per process

    def read(self) -> dict[str, float]:
        here = os.times()
        return {
            **{name: cpu_seconds(pids) for name, pids in self.processes.items()},
            "bench (fake Bot API, people)": here.user + here.system,
        }

    def measure(self, run: Callable[[], Run], names: tuple[str, ...]) -> tuple[Run, str]:
        """Do the run; return it with its CPU line (the run's warm-up conversation counted in)."""
        before = self.read()
        done = run()
        after = self.read()
        messages = len(done.latencies) + len(CONVERSATION)
        used = {name: after[name] - before[name] for name in names}
        self.last = {name: 1000 * seconds / messages for name, seconds in used.items()}
        return done, cpu_line(f"{done.label}, {done.users} users", messages, used)


def target_lines(adapter_ms: float, ratio: float, users: int) -> list[str]:
    """Return this run's figures against issue 14's targets (D), printed as well."""
    found = [
        f"Issue 14's targets, this run: adapter CPU a message at {users} users: **{adapter_ms:.1f} ms** "
        f"(target ≤ 5 ms); pipeline throughput ÷ Rasa alone at {users} users: **{ratio:.2f}** "
        "(target ≥ 0.85).",
    ]
    print(*found, sep="\n", flush=True)
    return found


def keep_logs(workdir: Path, profile: Profile) -> Path:
    """Copy the processes' logs of a failed run to results/bench/ (the run's folder is deleted) and
    return where they are."""
    kept = (
        ROOT
        / "results"
        / "bench"
        / f"failed-{time.strftime('%Y%m%d-%H%M%S')}-{profile.name.split()[0].lower()}"
    )
    kept.mkdir(parents=True, exist_ok=True)
    for log in workdir.glob("*.log"):
        shutil.copy2(log, kept / log.name)
    return kept


def conversations(
    profile: Profile,
    model: Path,
    user_counts: list[int],
    paced: tuple[int, float],
    workdir: Path,
    rasa_timeout: float | None = None,
    web_users: tuple[int, ...] = (20, 50),
) -> list[str]:
    """Rasa alone and the whole pipeline at each number of users (through the web chat too at
    `web_users`), then `paced` users (count, pause) who pause between messages as people do, then the
    memory of idle web chats; return the report's lines. If the run fails, the processes' logs are kept
    under results/bench/ and where is printed."""
    try:
        return _conversations(profile, model, user_counts, paced, workdir, rasa_timeout, web_users)
    except BaseException:
        print(f"bench failed: the processes' logs are kept in {keep_logs(workdir, profile)}", flush=True)
        raise


def _conversations(
    profile: Profile,
    model: Path,
    user_counts: list[int],
    paced: tuple[int, float],
    workdir: Path,
    rasa_timeout: float | None,
    web_users: tuple[int, ...],
) -> list[str]:
    lines = [
        f"### {profile.describe()}",
        "",
        "| Path | Users | Messages | msg/s | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    overheads, cpu = [], []
    targets: list[str] = []
    web_ratios: dict[int, float] = {}
    with profile_stack(profile, model, workdir) as stack, FakeTelegram() as fake:
        fake.add_group(GROUP, "Signpost moderators (bench)")
        env = adapter_env(fake, stack, rasa_timeout, profile.redis_url)
        with running_adapter(workdir, env, name="bench-adapter") as adapter:
            fake.wait_for_call("getUpdates", timeout=120)
            pipeline = Pipeline(fake)
            pipeline.learn_replies()
            web = WebChatLoad(f"http://127.0.0.1:{env['WEB_PORT']}")
            web.learn_replies()
            rasa = process_tree(stack.rasa.pid)  # with workers: `rasa run` and its worker processes
            # rasa-sdk 3.21 serves from a Sanic worker process, a child of `python -m rasa_sdk`.
            actions = process_tree(stack.actions.pid)
            meter = Meter({"Rasa": rasa, "actions": actions, "adapter": [adapter.pid]})
            rest_only = ("Rasa", "actions")
            everything = (*rest_only, "adapter", "bench (fake Bot API, people)")
            plan = [(users, 0.0) for users in user_counts] + [paced]
            for users, pause in plan:
                alone, alone_cpu = meter.measure(partial(rasa_alone, stack.rasa_url, users, pause), rest_only)
                through, through_cpu = meter.measure(partial(pipeline.load, users, pause), everything)
                for run in (alone, through):
                    print(run.line(), flush=True)
                    lines.append(run.line())
                overheads.append(f"{users} users{paused(pause)}: {overhead(alone, through)}")
                if users == max(user_counts) and not pause:
                    targets = target_lines(meter.last["adapter"], through.rate / alone.rate, users)
                cpu += [alone_cpu, through_cpu]
                print(alone_cpu, through_cpu, sep="\n", flush=True)
                if users in web_users and not pause:
                    browsers, browsers_cpu = meter.measure(partial(web.load, users), everything)
                    print(browsers.line(), browsers_cpu, sep="\n", flush=True)
                    lines.append(browsers.line())
                    cpu.append(browsers_cpu)
                    web_ratios[users] = browsers.rate / alone.rate
            rasa_peak = max(peak_memory_mb(pid) for pid in rasa)
            memory = (
                f"Peak memory: Rasa {rasa_peak:.0f} MB (largest of {len(rasa)} processes), "
                f"actions {sum(peak_memory_mb(pid) for pid in actions):.0f} MB "
                f"({len(actions)} processes together), "
                f"adapter {peak_memory_mb(adapter.pid):.0f} MB"
            )
            idle = idle_chats_memory(f"http://127.0.0.1:{env['WEB_PORT']}", adapter.pid)
            print(idle, flush=True)
    return [
        *lines,
        "",
        f"Replies per turn through Telegram (learned from one quiet run): {pipeline.replies}; "
        f"through the web chat: {web.replies}.",
        "Adapter overhead (median time per message through Telegram over Rasa alone, minus one): "
        + "; ".join(overheads)
        + ".",
        *(line + "." for line in cpu),
        memory + ".",
        idle + ".",
        "",
        *targets,
        *web_lines(web_ratios),
        "",
    ]


def profiles(args: argparse.Namespace) -> list[Profile]:
    """The embedded default always; the production profile when PostgreSQL and Redis are given."""
    found = [Profile("Embedded (`make run`)")]
    if args.postgres and args.redis:
        found.append(Profile("Production profile", args.postgres, args.redis, args.rasa_workers))
    return found


def write_report(lines: list[str], command: str) -> None:
    """Replace the generated section of docs/benchmarks.md with this run's figures."""
    text = REPORT.read_text()
    if START_MARK not in text or END_MARK not in text:
        text = text.rstrip() + f"\n\n{START_MARK}\n{END_MARK}\n"
    before, rest = text.split(START_MARK, 1)
    after = rest.split(END_MARK, 1)[1]
    section = "\n".join(
        [
            START_MARK,
            "## Latest `make bench`",
            "",
            f"Written by `{command}` on {dt.date.today().isoformat()}. Machine: {machine()}.",
            "",
            *lines,
            END_MARK,
        ]
    )
    REPORT.write_text(before + section + after)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--users", type=int, nargs="+", default=[1, 20, 50])
    parser.add_argument(
        "--web-users",
        type=int,
        nargs="*",
        default=[20, 50],
        help="numbers of people (among --users) who also talk through the web chat (none: skip it)",
    )
    parser.add_argument(
        "--no-telegram-limits",
        action="store_true",
        help="skip what Telegram's limits carry (scripts/bench_telegram.py, about 2½ minutes)",
    )
    parser.add_argument(
        "--paced",
        type=float,
        nargs=2,
        default=[20, 1.0],
        metavar=("USERS", "PAUSE"),
        help="a last run of USERS people who pause PAUSE seconds after each reply, as people do",
    )
    parser.add_argument("--services", type=int, default=10_000, help="services loaded for the find benchmark")
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument(
        "--directory-url", help="database for the find benchmark (default: a new SQLite file)"
    )
    parser.add_argument("--directory-only", action="store_true", help="only the find benchmark")
    parser.add_argument("--no-report", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("TEST_DATABASE_URL") or None,
        help="PostgreSQL server URL for the production profile (default: TEST_DATABASE_URL)",
    )
    parser.add_argument(
        "--redis",
        default=os.environ.get("TEST_REDIS_URL") or None,
        help="Redis URL for the production profile's lock store (default: TEST_REDIS_URL)",
    )
    parser.add_argument(
        "--rasa-timeout",
        type=float,
        help="the adapter's RASA_TIMEOUT_SECONDS (e.g. 0.5 to take the slow-Rasa path, as a cold Rasa does)",
    )
    parser.add_argument(
        "--rasa-workers", type=int, default=os.cpu_count() or 1, help="Rasa worker processes (production)"
    )
    args = parser.parse_args(argv)
    print(f"Machine: {machine()}; model {args.model.name}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        url = load_settings({"DATABASE_URL": args.directory_url or f"sqlite:///{tmp}/bench.db"}).database_url
        report = [directory_bench(url, args.services, args.queries)]
    print(report[0], flush=True)
    if not args.directory_only:
        train = ROOT / "build" / "train_seconds"
        if train.exists():
            report.append(f"Last training time (`make train`): {train.read_text().strip()} s.")
            print(report[-1])
        report.append("")
        for profile in profiles(args):
            print(profile.describe(), flush=True)
            with tempfile.TemporaryDirectory() as tmp:
                paced = (int(args.paced[0]), args.paced[1])
                report += conversations(
                    profile,
                    args.model,
                    args.users,
                    paced,
                    Path(tmp),
                    args.rasa_timeout,
                    tuple(args.web_users),
                )
    if not args.directory_only and not args.no_telegram_limits:
        print("What Telegram's limits carry (scripts/bench_telegram.py, its defaults)", flush=True)
        limits = bench_telegram.report(asyncio.run(bench_telegram.run(40, 3, 10, 3)))
        print(limits, flush=True)
        report += [
            "### What Telegram's limits carry (`python -m scripts.bench_telegram`, run by `make bench`)",
            "",
            "```",
            limits,
            "```",
        ]
    if not args.directory_only:
        exit_seconds = asyncio.run(bench_telegram.quick_exit_while_rasa_thinks())
        report.append(
            f"Quick exit while Rasa takes {bench_telegram.QUICK_EXIT_RASA_SECONDS:g} s over the message "
            f"before it (/exit sent → the neutral message shown): **{exit_seconds:.2f} s** (target ≤ 1 s)."
        )
        print(report[-1], flush=True)
    if not args.no_report:
        command = ["python -m scripts.bench", *(argv if argv is not None else sys.argv[1:])]
        if args.postgres and args.redis and "--postgres" not in command:
            # Say which servers the production profile ran on (passwords hidden).
            hidden = make_url(args.postgres).render_as_string(hide_password=True)
            command += ["--postgres", hidden, "--redis", re.sub(r"//[^/@]*@", "//***@", args.redis)]
        write_report(report, " ".join(command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
