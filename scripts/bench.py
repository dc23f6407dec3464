"""`make bench`: speed of the assistant on this machine, loopback only, bounded in count and time.

Starts the real Rasa server and action server, then N simulated users each send a short conversation
to Rasa's REST channel at the same time. Prints messages per second, p50/p95/p99 latency from request
to reply, the peak memory of each process, and the last training time (build/train_seconds).
Then the directory lookup: `find` p50/p95 over random places, needs and ages with 10,000 services
loaded into a fresh database (SQLite, or DATABASE_URL's engine with --directory-url).
The Telegram adapter's overhead is measured from the adapter issue on.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from actions.db import analyze, sessionmaker_for, upgrade
from actions.hsds import SEED_FILE, import_records, read_records
from actions.locate import gazetteer
from actions.models import NEEDS, STATISTICAL_GEOGRAPHY
from actions.services import find_services
from actions.settings import DEFAULT_GEO_TABLES, load_settings
from scripts.stack import MODEL, ROOT, running_stack

CONVERSATION = (
    "hi",
    "/affirm",
    "someone on snap says he'll post my pics unless i send him money",
    '/inform_age{"age_group": "13_17"}',
    "i want to talk to someone",
    "thanks",
)
MAX_SECONDS = 300


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


async def user(client: httpx.AsyncClient, latencies: list[float], deadline: float) -> None:
    """One simulated person sending a whole conversation, one message after each reply."""
    sender = uuid.uuid4().hex
    for message in CONVERSATION:
        if time.monotonic() > deadline:
            return
        start = time.perf_counter()
        response = await client.post("/webhooks/rest/webhook", json={"sender": sender, "message": message})
        response.raise_for_status()
        latencies.append(time.perf_counter() - start)


async def load(rasa_url: str, users: int) -> tuple[list[float], float]:
    """Run `users` conversations at once; return latencies and wall time."""
    latencies: list[float] = []
    deadline = time.monotonic() + MAX_SECONDS
    async with httpx.AsyncClient(base_url=rasa_url, timeout=60) as client:
        await user(client, [], deadline)  # warm-up, not counted
        start = time.perf_counter()
        await asyncio.gather(*(user(client, latencies, deadline) for _ in range(users)))
        return latencies, time.perf_counter() - start


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


def directory_bench(url: str, services: int, queries: int) -> None:
    """Load the seed plus `services` made-up services, then time `find` for random queries."""
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
    print(
        f"Directory find, {services} services loaded in {load_seconds:.0f} s, {queries} queries: "
        f"p50 {1000 * statistics.median(timings):.1f} ms, p95 {1000 * percentile(timings, 0.95):.1f} ms, "
        f"p99 {1000 * percentile(timings, 0.99):.1f} ms ({url.split(':', 1)[0]})"
    )


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--users", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--services", type=int, default=10_000, help="services loaded for the find benchmark")
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument(
        "--directory-url", help="database for the find benchmark (default: a new SQLite file)"
    )
    parser.add_argument("--directory-only", action="store_true", help="only the find benchmark")
    args = parser.parse_args(argv)
    print(
        f"Machine: {platform.processor() or platform.machine()}, {platform.system()}, Python "
        f"{platform.python_version()}; model {args.model.name}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        url = load_settings({"DATABASE_URL": args.directory_url or f"sqlite:///{tmp}/bench.db"}).database_url
        directory_bench(url, args.services, args.queries)
    if args.directory_only:
        return 0
    train = ROOT / "build" / "train_seconds"
    if train.exists():
        print(f"Last training time: {train.read_text().strip()} s")
    with tempfile.TemporaryDirectory() as tmp, running_stack(Path(tmp), args.model) as stack:
        for users in args.users:
            latencies, wall = asyncio.run(load(stack.rasa_url, users))
            print(
                f"{users:3d} users, {len(latencies)} messages: {len(latencies) / wall:6.1f} msg/s, "
                f"p50 {1000 * statistics.median(latencies):6.0f} ms, "
                f"p95 {1000 * percentile(latencies, 0.95):6.0f} ms, "
                f"p99 {1000 * percentile(latencies, 0.99):6.0f} ms"
            )
        print(
            f"Peak memory: Rasa {peak_memory_mb(stack.rasa.pid):.0f} MB, "
            f"actions {peak_memory_mb(stack.actions.pid):.0f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
