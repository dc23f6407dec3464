"""`make bench`: speed of the assistant on this machine, loopback only, bounded in count and time.

Starts the real Rasa server and action server, then N simulated users each send a short conversation
to Rasa's REST channel at the same time. Prints messages per second, p50/p95/p99 latency from request
to reply, the peak memory of each process, and the last training time (build/train_seconds).
The Telegram adapter's overhead is measured from the adapter issue on.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

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


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--users", type=int, nargs="+", default=[1, 20])
    args = parser.parse_args(argv)
    print(
        f"Machine: {platform.processor() or platform.machine()}, {platform.system()}, Python "
        f"{platform.python_version()}; model {args.model.name}"
    )
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
