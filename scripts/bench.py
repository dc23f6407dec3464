"""`make bench`: speed of the assistant on this machine, loopback only, bounded in count and time.

Starts the real action server and Rasa server, then for each number of simulated users N:
  * Rasa alone: N people each send a short conversation to Rasa's REST channel at the same time;
  * the pipeline: N people send the same messages through the local fake Telegram Bot API
    (tests/e2e/fake_telegram.py) to the real adapter (`python -m bot`, TELEGRAM_RATE_LIMIT=off),
    which passes them to the same Rasa server; latency is from the update being queued at the fake
    Bot API to the turn's last reply arriving there.
It prints messages per second, p50/p95/p99 latency, the adapter's overhead as a ratio to Rasa alone,
the peak memory of each process, the directory `find` p95 with 10,000 services and the last training
time, and writes them with the machine's description to docs/benchmarks.md (between the markers).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from actions.db import analyze, sessionmaker_for, upgrade
from actions.hsds import SEED_FILE, import_records, read_records
from actions.locate import gazetteer
from actions.models import NEEDS, STATISTICAL_GEOGRAPHY
from actions.services import find_services
from actions.settings import DEFAULT_GEO_TABLES, load_settings
from bot.crypto import new_key
from scripts.stack import MODEL, ROOT, Stack, running_adapter, running_stack
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
GROUP = -1009000000001
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


async def _rest_user(client: httpx.AsyncClient, latencies: list[float], deadline: float) -> None:
    """One simulated person sending the conversation to Rasa, one message after each reply."""
    sender = uuid.uuid4().hex
    for message in CONVERSATION:
        if time.monotonic() > deadline:
            return
        start = time.perf_counter()
        response = await client.post("/webhooks/rest/webhook", json={"sender": sender, "message": message})
        response.raise_for_status()
        latencies.append(time.perf_counter() - start)


async def _rest_load(rasa_url: str, users: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    deadline = time.monotonic() + MAX_SECONDS
    async with httpx.AsyncClient(base_url=rasa_url, timeout=REPLY_TIMEOUT_SECONDS) as client:
        await _rest_user(client, [], deadline)  # warm-up, not counted
        start = time.perf_counter()
        await asyncio.gather(*(_rest_user(client, latencies, deadline) for _ in range(users)))
        return latencies, time.perf_counter() - start


def rasa_alone(rasa_url: str, users: int) -> Run:
    """N people talking straight to Rasa's REST channel at once."""
    latencies, wall = asyncio.run(_rest_load(rasa_url, users))
    return Run("Rasa alone (REST)", users, latencies, wall)


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

    def learn_replies(self) -> None:
        """Count each turn's replies once, one message at a time (the conversation is deterministic)."""
        person, counts = self._person(), []
        for message in CONVERSATION:
            before = len(self.fake.messages(person))
            self.fake.user_sends_text(person, message)
            self.fake.wait_for_message(person, after=before, timeout=REPLY_TIMEOUT_SECONDS)
            settled = len(self.fake.messages(person))
            while True:  # the turn is over when nothing more arrives for 3 s
                time.sleep(3)
                now = len(self.fake.messages(person))
                if now == settled:
                    break
                settled = now
            counts.append(settled - before)
        self.replies = counts

    def _talk(self, latencies: list[float], deadline: float) -> None:
        assert self.replies is not None
        person = self._person()
        for message, expected in zip(CONVERSATION, self.replies, strict=True):
            if time.monotonic() > deadline:
                return
            before = len(self.fake.messages(person))
            start = time.perf_counter()
            self.fake.user_sends_text(person, message)
            self.fake.wait_for_message(person, after=before + expected - 1, timeout=REPLY_TIMEOUT_SECONDS)
            latencies.append(time.perf_counter() - start)

    def load(self, users: int) -> Run:
        """N people talking through Telegram at once."""
        latencies: list[float] = []
        deadline = time.monotonic() + MAX_SECONDS
        self._talk([], deadline)  # warm-up, not counted
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=users) as pool:
            for done in [pool.submit(self._talk, latencies, deadline) for _ in range(users)]:
                done.result()
        return Run("Adapter + Rasa (Telegram)", users, latencies, time.perf_counter() - start)


def adapter_env(fake: FakeTelegram, stack: Stack) -> dict[str, str]:
    """The adapter's settings for the bench: the fake Bot API, rate limiting off (it is Telegram's)."""
    return {
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
    now = dt.datetime.now(dt.timezone.utc)
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


def conversations(model: Path, user_counts: list[int], workdir: Path) -> list[str]:
    """Rasa alone and the whole pipeline at each number of users; return the report's lines."""
    lines = [
        "| Path | Users | Messages | msg/s | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    overheads = []
    with running_stack(workdir, model) as stack, FakeTelegram() as fake:
        fake.add_group(GROUP, "Signpost moderators (bench)")
        with running_adapter(workdir, adapter_env(fake, stack), name="bench-adapter") as adapter:
            fake.wait_for_call("getUpdates", timeout=120)
            pipeline = Pipeline(fake)
            pipeline.learn_replies()
            for users in user_counts:
                alone = rasa_alone(stack.rasa_url, users)
                through = pipeline.load(users)
                for run in (alone, through):
                    print(run.line(), flush=True)
                    lines.append(run.line())
                overheads.append(f"{users} users: {overhead(alone, through)}")
            memory = (
                f"Peak memory: Rasa {peak_memory_mb(stack.rasa.pid):.0f} MB, actions "
                f"{peak_memory_mb(stack.actions.pid):.0f} MB, adapter {peak_memory_mb(adapter.pid):.0f} MB"
            )
    return [
        *lines,
        "",
        f"Replies per turn through Telegram (learned from one quiet run): {pipeline.replies}.",
        "Adapter overhead (median time per message through Telegram over Rasa alone, minus one): "
        + "; ".join(overheads)
        + ".",
        memory + ".",
    ]


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
    parser.add_argument("--services", type=int, default=10_000, help="services loaded for the find benchmark")
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument(
        "--directory-url", help="database for the find benchmark (default: a new SQLite file)"
    )
    parser.add_argument("--directory-only", action="store_true", help="only the find benchmark")
    parser.add_argument("--no-report", action="store_true", help="print only; leave docs/benchmarks.md alone")
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
        with tempfile.TemporaryDirectory() as tmp:
            report += ["", *conversations(args.model, args.users, Path(tmp))]
        print("\n".join(report[-3:]))
    if not args.no_report:
        write_report(
            report, "python -m scripts.bench " + " ".join(argv if argv is not None else sys.argv[1:])
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
