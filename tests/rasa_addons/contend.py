"""Several processes take one conversation's lock at once and each bumps a counter inside it.

Run with the Rasa environment's Python: `contend.py <lock store class> <redis url> <processes> <rounds>`.
Inside the lock each process reads the counter, yields, then writes it plus one, so any two turns
that overlap lose an increment. Prints the final counter as JSON.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import sys
import uuid
from urllib.parse import urlparse

import redis
from rasa.shared.utils.common import class_from_module_path
from rasa.utils.endpoints import EndpointConfig


def work(store_path: str, url: str, conversation: str, rounds: int) -> None:
    """Take the lock `rounds` times and bump the counter non-atomically inside it."""
    parts = urlparse(url)
    config = EndpointConfig(url=parts.hostname, port=parts.port or 6379, db=int(parts.path.strip("/") or 0))
    store_class = class_from_module_path(store_path)
    if store_path.startswith("rasa."):
        store = store_class(host=config.url, **config.kwargs)
    else:
        store = store_class(endpoint_config=config)
    red = store.red
    counter = f"contend:{conversation}"

    async def turns() -> None:
        for _ in range(rounds):
            async with store.lock(conversation, wait_time_in_seconds=0.01):
                seen = int(red.get(counter) or 0)
                await asyncio.sleep(0.002)
                red.set(counter, seen + 1)

    asyncio.run(turns())


def main() -> None:
    store_path, url, processes, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    conversation = uuid.uuid4().hex
    workers = [
        multiprocessing.Process(target=work, args=(store_path, url, conversation, rounds))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    parts = urlparse(url)
    red = redis.Redis(host=parts.hostname, port=parts.port or 6379, db=int(parts.path.strip("/") or 0))
    count = int(red.get(f"contend:{conversation}") or 0)
    red.delete(f"contend:{conversation}")
    print(
        json.dumps(
            {"count": count, "expected": processes * rounds, "exit_codes": [w.exitcode for w in workers]}
        )
    )


if __name__ == "__main__":
    main()
